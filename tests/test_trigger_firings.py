"""What a firing looks like to the actions and hooks (the read model), and listing whom a trigger fired for."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from probe import Probe
from sqlalchemy import select

from crmkit import CRM, PluginError, ValidationError
from crmkit.db.models import Activity, TriggerFiring
from crmkit.triggers import Goal, MessageAction, TaskAction, Trigger

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def crm(crm_factory: Any, probe: Probe) -> CRM:
    return crm_factory([probe])


def low_score(name: str, **kwargs: Any) -> Trigger:
    return Trigger(name, condition=lambda q: q.field("score") <= 2, **kwargs)


def test_a_firing_is_a_json_safe_dict_with_the_customer_as_get_returns_it(crm: CRM) -> None:
    anna = crm.customers.create(
        {"name": "Anna", "score": 1, "birthday": "1990-04-02", "balance": "12.50", "last_seen": "2026-06-01T08:00:00Z"}
    )
    crm.activities.log({"customer_id": anna["id"], "kind": "visit", "occurred_at": (AS_OF - 3 * DAY).isoformat()})
    bought = {"kind": "purchase", "amount": "12.50", "currency": "EUR", "occurred_at": (AS_OF - 4 * DAY).isoformat()}
    crm.activities.log({"customer_id": anna["id"], **bought})
    seen: list[Any] = []
    crm.triggers.register(
        low_score(
            "t.seen",
            evidence={"last_visit": lambda q: q.last("visit"), "spent": lambda q: q.total("purchase")},
            goal=Goal(("visit",), window=7 * DAY),
            call=lambda tx, firing: seen.append(firing),
        )
    )
    crm.triggers.run(AS_OF)
    [firing] = seen
    assert type(firing) is dict
    assert firing["customer"] == crm.customers.get(anna["id"])
    assert firing["customer"]["birthday"] == "1990-04-02" and firing["customer"]["balance"] == "12.50"
    assert firing["evidence"] == {"last_visit": (AS_OF - 3 * DAY).isoformat(), "spent": "12.50"}
    with crm.session() as s:
        row = s.execute(select(TriggerFiring)).scalar_one()
    assert {k: v for k, v in firing.items() if k not in ("customer", "evidence")} == {
        "id": row.id,
        "trigger": "t.seen",
        "customer_id": anna["id"],
        "run_id": row.run_id,
        "as_of": AS_OF.isoformat(),
        "window": row.window_key,
        "held_out": False,
        "goal_until": (AS_OF + 7 * DAY).isoformat(),
    }
    assert json.loads(json.dumps(firing)) == firing


def test_templates_format_dates_of_the_read_model(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "score": 1, "birthday": "1990-04-02"})
    crm.activities.log({"customer_id": anna["id"], "kind": "visit", "occurred_at": (AS_OF - 3 * DAY).isoformat()})
    crm.triggers.register(
        low_score(
            "t.dates",
            evidence={"last_visit": lambda q: q.last("visit")},
            task=TaskAction(
                "{{ (customer.birthday | as_date).strftime('%d %B') }} {{ (as_of | as_datetime).year }}",
                "{{ days_since(last_visit) }} {{ days_since(customer.birthday) }} {{ last_visit }}",
            ),
        )
    )
    crm.triggers.run(AS_OF)
    [task] = crm.tasks.open(customer_id=anna["id"])
    assert task["title"] == "02 April 2026"
    born = (AS_OF.date() - dt.date(1990, 4, 2)).days
    assert task["reason"] == f"3 {born} {(AS_OF - 3 * DAY).isoformat()}"


def test_trigger_actions_are_validated_like_the_public_api(crm: CRM) -> None:
    crm.customers.create({"name": "Anna", "score": 1})
    # an empty message body is refused by the outbox's validation: that firing fails and is rolled back
    crm.triggers.register(low_score("t.empty", message=MessageAction("sms", "{{ '' }}", purpose="service")))
    result = crm.triggers.run(AS_OF)["t.empty"]
    assert (result.fired, result.failed) == (0, 1) and "body" in result.errors[0]
    assert crm.triggers.firings("t.empty").items == []


def test_declarations_that_could_never_act_fail_at_load(crm: CRM) -> None:
    with pytest.raises(PluginError, match="bad channel"):
        crm.triggers.register(low_score("t.x", message=MessageAction("SMS!", "hi")))
    with pytest.raises(PluginError, match="priority from 0 to 100"):
        crm.triggers.register(low_score("t.x", priority=120, task=TaskAction("hi")))
    with pytest.raises(ValueError, match="trigger name"):  # "trigger:<name>" must fit the tasks' source
        Trigger("t" * 93, condition=lambda q: q.field("score") <= 2)
    Trigger("t" * 92, condition=lambda q: q.field("score") <= 2)


# -- listing firings ---------------------------------------------------------------------------------


def _everything(crm: CRM, **filters: Any) -> list[dict[str, Any]]:
    """Every page of the list, following the cursors."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = crm.triggers.firings(**filters, after=after, limit=3)
        assert len(page.items) <= 3
        rows += page.items
        if page.next_cursor is None:
            return rows
        after = page.next_cursor


def test_firings_lists_whom_a_trigger_fired_for_or_held_out(crm: CRM) -> None:
    ids = [crm.customers.create({"name": f"C{i}", "score": i % 3})["id"] for i in range(40)]
    crm.triggers.register(low_score("t.low", holdout=0.3, goal=Goal(("visit",), window=10 * DAY)))
    crm.triggers.register(Trigger("t.zero", condition=lambda q: q.field("score") == 0))
    first = crm.triggers.run(AS_OF - 20 * DAY, names=["t.low", "t.zero"])
    second = crm.triggers.run(AS_OF, names=["t.low"])
    # visits: within the goal window of the first run for some, after it for others
    for i, cid in enumerate(ids):
        if i % 4 == 0:
            crm.activities.log({"customer_id": cid, "kind": "visit", "occurred_at": (AS_OF - 15 * DAY).isoformat()})
        if i % 4 == 1:
            crm.activities.log({"customer_id": cid, "kind": "visit", "occurred_at": (AS_OF - 5 * DAY).isoformat()})

    with crm.session() as s:
        table = [
            (f.id, f.trigger, f.customer_id, f.run_id, f.as_of, f.held_out, f.goal_until)
            for f in s.scalars(select(TriggerFiring).order_by(TriggerFiring.id))
        ]
        visits = [(a.customer_id, a.occurred_at) for a in s.scalars(select(Activity).where(Activity.kind == "visit"))]
    assert first.fired and second.fired and any(t[5] for t in table) and not all(t[5] for t in table)

    def converted(row: tuple[Any, ...]) -> bool | None:
        if row[1] != "t.low":
            return None
        return any(cid == row[2] and row[4] < at <= row[6] for cid, at in visits)

    everything = _everything(crm)
    assert [r["id"] for r in everything] == [t[0] for t in table]
    by_id = {t[0]: t for t in table}
    for r in everything:
        t = by_id[r["id"]]
        assert (r["trigger"], r["customer_id"], r["run_id"], r["held_out"]) == (t[1], t[2], t[3], t[5])
        assert r["as_of"] == t[4].isoformat() and r["goal_until"] == (t[6] and t[6].isoformat())
        assert r["converted"] == converted(t)
    assert {r["converted"] for r in everything} == {True, False, None}

    def ids_of(rows: list[dict[str, Any]]) -> list[int]:
        return [r["id"] for r in rows]

    held = [t[0] for t in table if t[1] == "t.low" and t[5]]
    assert held and ids_of(_everything(crm, name="t.low", held_out=True)) == held
    contacted = [t[0] for t in table if t[1] == "t.low" and not t[5]]
    assert contacted and ids_of(_everything(crm, name="t.low", held_out=False)) == contacted
    zero = [t[0] for t in table if t[1] == "t.zero"]
    assert zero and ids_of(_everything(crm, name="t.zero")) == zero
    run_ids = {t[3] for t in table}
    assert len(run_ids) == 2
    for run in run_ids:
        in_run = [t[0] for t in table if t[3] == run]
        assert in_run and ids_of(_everything(crm, run_id=run)) == in_run
    recent = [t[0] for t in table if t[4] >= AS_OF - DAY]
    assert recent and ids_of(_everything(crm, since=AS_OF - DAY)) == recent
    assert crm.triggers.firings("t.nobody").to_dict() == {"items": [], "next_cursor": None}
    assert crm.triggers.firings(run_id=2**31).items == []  # beyond the run id column: nobody
    cursor = crm.triggers.firings(limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError, match="garbled or edited"):
        crm.triggers.firings(after=cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1])


def test_firings_in_a_unit_of_work_sees_its_own_writes(crm: CRM) -> None:
    crm.customers.create({"name": "Anna", "score": 1})
    crm.triggers.register(low_score("t.low"))
    crm.triggers.run(AS_OF)
    with crm.transaction() as tx:
        tx.session.execute(TriggerFiring.__table__.delete())
        assert crm.triggers.firings(tx=tx).items == []
        assert len(crm.triggers.firings().items) == 1  # outside it, not yet


@pytest.mark.parametrize(
    ("filters", "key"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"name": 5}, "name"),
        ({"held_out": "yes"}, "held_out"),
        ({"since": "yesterday"}, "since"),
        ({"after": "abc"}, "after"),
        ({"after": 5}, "after"),
        ({"after": "9" * 19}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"run_id": "1"}, "run_id"),
    ],
)
def test_firings_filters_are_validated(crm: CRM, filters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        crm.triggers.firings(**filters)
    assert key in caught.value.errors
