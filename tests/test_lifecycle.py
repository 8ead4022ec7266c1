"""Lifecycle: declared transitions only, backward moves need a cause, everything in the history."""

from __future__ import annotations

import datetime as dt

import pytest
from probe import Probe

from crmkit import CRM, NotFound, TransitionError


def test_core_path_lead_active_loyal_lost_and_win_back(crm: CRM) -> None:
    c = crm.customers.create({"name": "Anna"})
    for target in ("active", "loyal", "lost"):
        crm.lifecycle.move(c["id"], target, cause=f"to {target}")
    crm.lifecycle.move(c["id"], "active", cause="win-back offer accepted")
    assert [(h["from_stage"], h["to_stage"]) for h in crm.lifecycle.history(c["id"])] == [
        (None, "lead"),
        ("lead", "active"),
        ("active", "loyal"),
        ("loyal", "lost"),
        ("lost", "active"),
    ]
    assert crm.customers.get(c["id"])["stage"] == "active"


def test_forbidden_transition_raises_and_changes_nothing(crm: CRM) -> None:
    c = crm.customers.create({"name": "Anna"})
    with pytest.raises(TransitionError, match="'lead' -> 'loyal'"):
        crm.lifecycle.move(c["id"], "loyal", cause="skip ahead")
    with pytest.raises(TransitionError, match="unknown stage"):
        crm.lifecycle.move(c["id"], "platinum", cause="?")
    assert crm.customers.get(c["id"])["stage"] == "lead"
    assert len(crm.lifecycle.history(c["id"])) == 1


def test_backward_move_needs_a_cause(crm: CRM) -> None:
    c = crm.customers.create({"name": "Anna", "stage": "active"})
    crm.lifecycle.move(c["id"], "lost", cause="stopped coming")
    with pytest.raises(TransitionError, match="needs a cause"):
        crm.lifecycle.move(c["id"], "active", cause="  ")


def test_history_keeps_cause_actor_and_time(crm: CRM) -> None:
    boss = crm.users.create({"name": "Boss", "role": "manager"})
    c = crm.customers.create({"name": "Anna"}, actor_id=boss["id"])
    with pytest.raises(TransitionError, match="before the last one"):
        crm.lifecycle.move(c["id"], "active", cause="backdated", at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    change = crm.lifecycle.move(c["id"], "active", cause="first purchase", actor_id=boss["id"], at=at)
    assert (change["from_stage"], change["to_stage"], change["actor_id"]) == ("lead", "active", boss["id"])
    first, second = crm.lifecycle.history(c["id"])
    assert (first["cause"], first["actor_id"]) == ("created", boss["id"])
    assert (second["cause"], second["actor_id"], second["at"]) == ("first purchase", boss["id"], at.isoformat())
    assert change == {**second, "customer_id": c["id"]}
    assert crm.customers.get(c["id"])["stage_changed_at"] == at.isoformat()


def test_plugin_sub_stages_map_onto_core_stages(pcrm: CRM, probe: Probe) -> None:
    c = pcrm.customers.create({"name": "Anna", "stage": "trial"})
    assert (c["stage"], c["lifecycle"]) == ("trial", "lead")
    pcrm.lifecycle.move(c["id"], "active", cause="bought")
    pcrm.lifecycle.move(c["id"], "at_risk", cause="no visit for 21 days")
    record = pcrm.customers.get(c["id"])
    assert (record["stage"], record["lifecycle"]) == ("at_risk", "active")
    with pytest.raises(TransitionError):
        pcrm.lifecycle.move(c["id"], "loyal", cause="not declared from at_risk")
    assert probe.of("stage")[-1] == ("active", "at_risk", "no visit for 21 days")
    assert pcrm.lifecycle.allowed_targets("at_risk") == ["active", "lost"]


def test_only_initial_stages_are_accepted_on_create(pcrm: CRM) -> None:
    from crmkit import ValidationError

    with pytest.raises(ValidationError) as err:
        pcrm.customers.create({"name": "Anna", "stage": "at_risk"})
    assert "stage" in err.value.errors


def test_stage_hook_that_raises_rolls_back_the_move(pcrm: CRM) -> None:
    c = pcrm.customers.create({"name": "Anna", "stage": "active"})
    with pytest.raises(RuntimeError):
        pcrm.lifecycle.move(c["id"], "lost", cause="VETO")
    assert pcrm.customers.get(c["id"])["stage"] == "active"
    assert len(pcrm.lifecycle.history(c["id"])) == 1


def test_moving_a_missing_customer(crm: CRM) -> None:
    with pytest.raises(NotFound):
        crm.lifecycle.move(404, "active", cause="?")


def test_every_move_needs_a_cause(crm: CRM) -> None:
    c = crm.customers.create({"name": "Anna"})
    with pytest.raises(TransitionError, match="needs a cause"):
        crm.lifecycle.move(c["id"], "active", cause=" ")
