"""Validated bulk writes the trigger engine uses and apps may call: tasks, outbox messages, stage moves,
and the many-customer read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from probe import Probe
from sqlalchemy import func, select

from crmkit import CRM, TransitionError, ValidationError
from crmkit.db.models import Customer, OutboxMessage, StageHistory, Task
from crmkit.specs import FieldSpec

AT = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def crm(crm_factory: Any, probe: Probe) -> CRM:
    return crm_factory([probe])


def count(crm: CRM, model: Any) -> int:
    with crm.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_create_many_stores_what_create_would(crm: CRM) -> None:
    owner = crm.users.create({"name": "Coach"})["id"]
    anna = crm.customers.create({"name": "Anna"})["id"]
    rows = [
        {"title": " Call Anna ", "customer_id": anna, "assignee_id": owner, "due_at": AT, "priority": 80},
        {"title": "Order towels", "reason": "out of stock", "remind_at": AT.isoformat()},
    ]
    made = crm.tasks.create_many(rows)
    one_by_one = [crm.tasks.create(row) for row in rows]
    assert len(made) == 2
    for bulk, single in zip(made, one_by_one, strict=True):
        assert bulk["id"] != single["id"]
        assert {k: v for k, v in bulk.items() if k not in ("id", "created_at")} == {
            k: v for k, v in single.items() if k not in ("id", "created_at")
        }
    assert [t["title"] for t in made] == ["Call Anna", "Order towels"]
    assert made[0]["due_at"] == AT.isoformat() and made[0]["status"] == "open" and made[1]["priority"] == 0
    assert crm.tasks.create_many([]) == []


def test_create_many_refuses_the_whole_batch_naming_each_bad_row(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna"})["id"]
    with pytest.raises(ValidationError) as caught:
        crm.tasks.create_many([{"title": "ok", "customer_id": anna}, {"title": ""}, {"title": "x", "priority": 101}])
    assert set(caught.value.errors) == {"[1].title", "[2].priority"}
    with pytest.raises(ValidationError) as caught:
        crm.tasks.create_many([{"title": "a", "customer_id": anna}, {"title": "b", "customer_id": 999}])
    assert set(caught.value.errors) == {"[1].customer_id"}
    with pytest.raises(ValidationError) as caught:
        crm.tasks.create_many([{"title": "a", "assignee_id": 77}])
    assert set(caught.value.errors) == {"[0].assignee_id"}
    assert count(crm, Task) == 0


def test_create_many_joins_the_unit_of_work(crm: CRM) -> None:
    with pytest.raises(RuntimeError), crm.transaction() as tx:
        anna = crm.customers.create({"name": "Anna"}, tx=tx)["id"]
        assert len(crm.tasks.create_many([{"title": "a", "customer_id": anna}], tx=tx)) == 1
        raise RuntimeError("the caller changes its mind")
    assert count(crm, Task) == 0


# -- the outbox -------------------------------------------------------------------------------------


def test_enqueue_many_validates_and_delivers_only_its_messages_after_commit(crm: CRM, probe: Probe) -> None:
    anna = crm.customers.create({"name": "Anna"})["id"]
    with pytest.raises(ValidationError) as caught:
        crm.outbox.enqueue_many(
            [
                {"channel": "SMS", "body": "hi"},
                {"channel": "sms", "body": ""},
                {"channel": "sms", "body": "a\x00b", "subject": "s" * 301},
                {"channel": "sms", "body": "hi", "customer_id": 999},
                {"channel": "sms", "body": "hi", "colour": "red"},
            ]
        )
    assert set(caught.value.errors) == {"[0].channel", "[1].body", "[2].body", "[2].subject", "[4].colour"}
    with pytest.raises(ValidationError) as caught:
        crm.outbox.enqueue({"channel": "sms", "body": "hi", "customer_id": 999})
    assert set(caught.value.errors) == {"[0].customer_id"}
    with crm.transaction() as tx:
        tx.session.add(OutboxMessage(channel="sms", customer_id=anna, body="older, not ours"))
    before = list(probe.sent)
    with crm.transaction() as tx:
        [stored] = crm.outbox.enqueue_many([{"channel": "sms", "body": "Hello", "customer_id": anna}], tx=tx)
        assert probe.sent == before  # not before the commit
    assert (stored["status"], stored["attempts"], stored["body"]) == ("pending", 0, "Hello")
    assert probe.sent == [*before, f"sms to {anna}: Hello"]
    with pytest.raises(RuntimeError), crm.transaction() as tx:
        crm.outbox.enqueue({"channel": "sms", "body": "never", "customer_id": anna}, tx=tx)
        raise RuntimeError("rolled back")
    assert probe.sent == [*before, f"sms to {anna}: Hello"]
    assert count(crm, OutboxMessage) == 2


# -- stage moves --------------------------------------------------------------------------------------


def test_move_many_checks_records_and_tells_each_move(crm: CRM, probe: Probe) -> None:
    ids = [crm.customers.create({"name": f"C{i}", "stage": "active"})["id"] for i in range(3)]
    lead = crm.customers.create({"name": "Lead", "stage": "lead"})["id"]
    with pytest.raises(TransitionError):  # lead -> at_risk is not declared: nothing moves
        crm.lifecycle.move_many([*ids, lead], "at_risk", cause="absent")
    assert {crm.customers.get(i)["stage"] for i in ids} == {"active"}
    history_before = count(crm, StageHistory)
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)  # after the customers' creation
    changes = crm.lifecycle.move_many([*ids, lead], "at_risk", cause="absent", at=at, from_stages=["active"])
    assert [c["customer_id"] for c in changes] == ids
    assert changes[0] == {**crm.lifecycle.history(ids[0])[-1], "customer_id": ids[0]}
    assert count(crm, StageHistory) == history_before + 3
    for cid in ids:
        record = crm.customers.get(cid)
        assert (record["stage"], record["lifecycle"], record["stage_changed_at"]) == (
            "at_risk",
            "active",
            at.isoformat(),
        )
        last = crm.lifecycle.history(cid)[-1]
        recorded = (last["from_stage"], last["to_stage"], last["cause"], last["at"])
        assert recorded == ("active", "at_risk", "absent", at.isoformat())
    assert crm.customers.get(lead)["stage"] == "lead"
    assert probe.of("stage")[-3:] == [("active", "at_risk", "absent")] * 3


def test_move_many_never_dates_a_move_before_the_previous_one(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "stage": "active"})["id"]
    created = crm.customers.get(anna)["stage_changed_at"]
    [change] = crm.lifecycle.move_many([anna], "at_risk", cause="backfill", at=AT - dt.timedelta(days=3650))
    assert change["at"] == created == crm.customers.get(anna)["stage_changed_at"]


def test_move_many_in_a_unit_of_work_keeps_loaded_customers_fresh(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "stage": "active"})["id"]
    with crm.transaction() as tx:
        loaded = tx.session.get(Customer, anna)
        assert loaded is not None and loaded.stage == "active"
        crm.lifecycle.move_many([anna], "at_risk", cause="absent", tx=tx)
        assert loaded.stage == "at_risk"


# -- reading many customers ---------------------------------------------------------------------------


def test_get_many_gives_each_record_as_get_does(crm: CRM) -> None:
    crm.fields.define(FieldSpec("met_at", "datetime"))  # a run-time field: in the record too
    ids = [
        crm.customers.create({"name": f"C{i}", "score": i, "birthday": f"1990-01-0{i + 1}", "met_at": AT})["id"]
        for i in range(4)
    ]
    many = crm.customers.get_many([*ids, ids[0], 999, 2**40])
    assert sorted(many) == ids
    assert all(many[i] == crm.customers.get(i) and many[i]["met_at"] == AT.isoformat() for i in ids)
    with crm.transaction() as tx:
        new = crm.customers.create({"name": "New"}, tx=tx)["id"]
        assert crm.customers.get_many([new], tx=tx)[new]["name"] == "New"
        assert crm.customers.get_many([new]) == {}
    with pytest.raises(ValidationError):
        crm.customers.get_many(["1"])  # type: ignore[list-item]
