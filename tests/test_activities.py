"""Activities and tasks: per-kind rules, bulk ingest, calendar conflicts, next actions."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from unittest import mock

import pytest
from probe import Probe
from sqlalchemy import func, select

from crmkit import CRM, CalendarConflictError, NotFound, ValidationError, hookimpl
from crmkit.activities import _RowWriter
from crmkit.db import Activity

T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def people(pcrm: CRM) -> dict[str, Any]:
    agent = pcrm.users.create({"name": "Agent", "role": "manager"})
    other = pcrm.users.create({"name": "Other", "role": "operator"})
    anna = pcrm.customers.create({"name": "Anna"})
    ben = pcrm.customers.create({"name": "Ben"})
    contact = pcrm.customers.add_contact(anna["id"], {"name": "Anna's husband"})
    return {"agent": agent["id"], "other": other["id"], "anna": anna["id"], "ben": ben["id"], "contact": contact["id"]}


def n_activities(crm: CRM) -> int:
    with crm.session() as s:
        return s.scalar(select(func.count()).select_from(Activity)) or 0


def meeting(p: dict[str, Any], at: dt.datetime = T0, **over: Any) -> dict[str, Any]:
    return {
        "customer_id": p["anna"],
        "kind": "meeting",
        "occurred_at": at.isoformat(),
        "contact_id": p["contact"],
        "subject": "Viewing",
        "result": "wants a second viewing",
        "owner_id": p["agent"],
        **over,
    }


def test_log_a_call_with_defaults(pcrm: CRM, people: dict[str, Any], probe: Probe) -> None:
    call = pcrm.activities.log(
        {
            "customer_id": people["anna"],
            "kind": "call",
            "direction": "outbound",
            "status": "in_progress",
            "result": "call back at 5",
        }
    )
    assert (call["channel"], call["status"], call["direction"]) == ("phone", "in_progress", "outbound")
    assert call["occurred_at"] is not None
    assert probe.of("activity") == [call["id"]]


def test_a_meeting_needs_date_contact_topic_and_result(pcrm: CRM, people: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        pcrm.activities.log({"customer_id": people["anna"], "kind": "meeting"})
    assert set(err.value.errors) == {"occurred_at", "contact_id", "subject", "result"}
    assert pcrm.activities.log(meeting(people))["kind"] == "meeting"


def test_statuses_and_kinds_come_from_short_lists(pcrm: CRM, people: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        pcrm.activities.log({"customer_id": people["anna"], "kind": "telepathy", "status": "kinda done"})
    assert set(err.value.errors) == {"kind", "status"}


def test_purchases_need_amount_and_currency(pcrm: CRM, people: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        pcrm.activities.log({"customer_id": people["anna"], "kind": "purchase", "currency": "euro"})
    assert set(err.value.errors) == {"amount", "currency"}
    sale = pcrm.activities.log(
        {"customer_id": people["anna"], "kind": "purchase", "amount": "49.90", "currency": "EUR"}
    )
    assert (sale["amount"], sale["currency"]) == ("49.90", "EUR")


def test_plugin_kind_validates_its_data_fields(pcrm: CRM, people: dict[str, Any]) -> None:
    base = {"customer_id": people["anna"], "kind": "session", "occurred_at": T0.isoformat()}
    with pytest.raises(ValidationError) as err:
        pcrm.activities.log({**base, "data": {"room": "z", "weight": "heavy", "colour": "red"}})
    assert set(err.value.errors) == {"owner_id", "data.room", "data.weight", "data.colour"}
    ok = pcrm.activities.log({**base, "owner_id": people["agent"], "data": {"room": "a", "weight": 12.5}})
    assert ok["data"] == {"room": "a", "weight": 12.5}


def test_references_must_exist_and_contacts_belong_to_the_customer(pcrm: CRM, people: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="no customer with id 999"):
        pcrm.activities.log({"customer_id": 999, "kind": "note"})
    with pytest.raises(ValidationError, match="does not belong"):
        pcrm.activities.log(meeting(people, customer_id=people["ben"]))
    with pytest.raises(ValidationError, match="no user"):
        pcrm.activities.log({"customer_id": people["anna"], "kind": "note", "owner_id": 999})
    assert n_activities(pcrm) == 0


def test_hook_that_raises_rolls_back_the_activity(pcrm: CRM, people: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError):
        pcrm.activities.log({"customer_id": people["anna"], "kind": "note", "subject": "VETO"})
    assert n_activities(pcrm) == 0


def test_overlapping_meetings_of_one_owner_conflict(pcrm: CRM, people: dict[str, Any]) -> None:
    first = pcrm.activities.log(meeting(people, duration_min=60))
    with pytest.raises(CalendarConflictError) as err:
        pcrm.activities.log(
            {
                "customer_id": people["ben"],
                "kind": "visit",
                "owner_id": people["agent"],
                "occurred_at": (T0 + dt.timedelta(minutes=30)).isoformat(),
                "status": "planned",
            }
        )
    assert err.value.conflicting_ids == [first["id"]]
    # back to back is not a conflict; another owner, a cancelled booking and a phone call are not either
    pcrm.activities.log(
        {
            "customer_id": people["ben"],
            "kind": "visit",
            "owner_id": people["agent"],
            "occurred_at": (T0 + dt.timedelta(minutes=60)).isoformat(),
            "duration_min": 30,
        }
    )
    pcrm.activities.log(
        {"customer_id": people["ben"], "kind": "visit", "owner_id": people["other"], "occurred_at": T0.isoformat()}
    )
    pcrm.activities.log(
        {
            "customer_id": people["ben"],
            "kind": "visit",
            "owner_id": people["agent"],
            "occurred_at": T0.isoformat(),
            "status": "cancelled",
        }
    )
    pcrm.activities.log(
        {
            "customer_id": people["ben"],
            "kind": "call",
            "owner_id": people["agent"],
            "direction": "outbound",
            "occurred_at": T0.isoformat(),
        }
    )
    booked = pcrm.activities.log(meeting(people, subject="Overbooked"), allow_conflict=True)
    clashes = pcrm.activities.conflicts(people["agent"], T0, T0 + dt.timedelta(minutes=15))
    assert [c["id"] for c in clashes] == [first["id"], booked["id"]]


def test_bulk_ingest_keeps_good_rows_and_reports_every_bad_one(pcrm: CRM, people: dict[str, Any], probe: Probe) -> None:
    rows = [
        {"customer_id": people["anna"], "kind": "visit", "occurred_at": (T0 + dt.timedelta(days=i)).isoformat()}
        for i in range(7)
    ]
    rows.insert(2, {"customer_id": 999, "kind": "visit"})
    rows.insert(5, {"customer_id": people["anna"], "kind": "visit", "occurred_at": "yesterday"})
    rows.append({"kind": "purchase", "customer_id": people["ben"], "amount": "-5", "currency": "EUR"})
    report = pcrm.activities.ingest(rows, batch_size=3)
    assert report.inserted == 7
    assert [(r.index, sorted(r.errors)) for r in report.rejected] == [
        (2, ["customer_id"]),
        (5, ["occurred_at"]),
        (9, ["amount"]),
    ]
    assert n_activities(pcrm) == 7
    assert sum(c for c, _ in probe.of("ingested")) == 7
    assert all(k == {"visit": k["visit"]} for _, k in probe.of("ingested"))


def test_bulk_ingest_all_or_nothing(pcrm: CRM, people: dict[str, Any]) -> None:
    rows = [{"customer_id": people["anna"], "kind": "visit"}, {"customer_id": 999, "kind": "visit"}]
    with pytest.raises(ValidationError, match="1 rows rejected, nothing written"):
        pcrm.activities.ingest(rows, all_or_nothing=True)
    assert n_activities(pcrm) == 0


def test_hook_that_raises_aborts_the_whole_ingest(pcrm: CRM, people: dict[str, Any]) -> None:
    rows = [{"customer_id": people["anna"], "kind": "visit"}] * 3 + [{"customer_id": people["anna"], "kind": "note"}]
    with pytest.raises(RuntimeError, match="refuses notes"):
        pcrm.activities.ingest(rows, batch_size=3)
    assert n_activities(pcrm) == 0


def test_ingest_accepts_a_generator_and_stores_every_column(pcrm: CRM, people: dict[str, Any]) -> None:
    def rows() -> Any:
        for i in range(25):
            yield {
                "customer_id": people["ben"],
                "kind": "payment",
                "amount": f"{i}.50",
                "currency": "USD",
                "occurred_at": (T0 - dt.timedelta(hours=i)).isoformat(),
                "data": {"receipt": i},
            }

    assert pcrm.activities.ingest(rows(), batch_size=10).inserted == 25
    latest = pcrm.activities.for_customer(people["ben"], limit=2)
    assert [(a["amount"], a["data"]) for a in latest] == [("0.50", {"receipt": 0}), ("1.50", {"receipt": 1})]
    assert latest[0]["occurred_at"] == T0.isoformat()


def test_typed_rows_are_stored_as_their_text_form_would_be(pcrm: CRM, people: dict[str, Any]) -> None:
    """The fast path (typed values) and marshmallow (the same activity as text) store the same thing."""
    zone = dt.timezone(dt.timedelta(hours=2))
    typed = [
        {
            "customer_id": people["anna"],
            "kind": "visit",
            "occurred_at": T0.astimezone(zone),
            "owner_id": people["agent"],
        },
        {"customer_id": people["anna"], "kind": "call", "direction": "inbound", "occurred_at": T0, "duration_min": 5},
        {"customer_id": people["anna"], "kind": "session", "owner_id": people["agent"], "data": {"room": "b"}}
        | {"occurred_at": T0.replace(microsecond=0)},
        {"customer_id": people["anna"], "kind": "chat", "occurred_at": T0, "data": {"b": 1, "a": [True, None]}},
    ]
    as_text = [
        {**row, "occurred_at": row["occurred_at"].isoformat(), "customer_id": str(people["ben"])} for row in typed
    ]
    assert pcrm.activities.ingest(typed).inserted == 4
    assert pcrm.activities.ingest(as_text).inserted == 4

    def stored(customer_id: int) -> list[dict[str, Any]]:
        rows = pcrm.activities.for_customer(customer_id)
        return [{k: v for k, v in a.items() if k not in ("id", "created_at", "customer_id")} for a in rows]

    assert stored(people["anna"]) == stored(people["ben"])
    visit = next(a for a in pcrm.activities.for_customer(people["anna"]) if a["kind"] == "visit")
    assert (visit["occurred_at"], visit["ends_at"], visit["channel"]) == (
        T0.isoformat(),
        (T0 + dt.timedelta(minutes=60)).isoformat(),
        "in_person",
    )


def test_typed_rows_get_the_reference_check_across_batches(pcrm: CRM, people: dict[str, Any], probe: Probe) -> None:
    def row(**over: Any) -> dict[str, Any]:
        return {"customer_id": people["anna"], "kind": "chat", "occurred_at": T0, **over}

    rows = [
        row(),
        row(customer_id=999),
        row(kind="call", direction="outbound"),
        row(owner_id=999),
        row(kind="meeting", contact_id=people["contact"], subject="Viewing", result="ok", customer_id=people["ben"]),
        row(kind="meeting", contact_id=people["contact"], subject="Viewing", result="ok"),
        row(contact_id=999),
    ]
    report = pcrm.activities.ingest(rows, batch_size=2)
    assert report.inserted == 3
    assert [(r.index, sorted(r.errors)) for r in report.rejected] == [
        (1, ["customer_id"]),
        (3, ["owner_id"]),
        (4, ["contact_id"]),
        (6, ["contact_id"]),
    ]
    assert report.rejected[0].errors == {"customer_id": ["no customer with id 999"]}
    assert [k for _, k in probe.of("ingested")] == [{"chat": 1}, {"call": 1}, {"meeting": 1}]
    with pytest.raises(ValidationError, match="4 rows rejected, nothing written"):
        pcrm.activities.ingest(rows, batch_size=2, all_or_nothing=True)
    assert n_activities(pcrm) == 3


def test_ingest_takes_one_batch_of_rows_as_one_insert(pcrm: CRM, people: dict[str, Any], probe: Probe) -> None:
    rows = [
        {"customer_id": people["ben"], "kind": "visit", "occurred_at": T0 + dt.timedelta(hours=i)} for i in range(7)
    ]
    report = pcrm.activities.ingest(rows, batch_size=3)
    assert (report.inserted, report.rejected) == (7, ())
    assert [c for c, _ in probe.of("ingested")] == [3, 3, 1]
    with pcrm.session() as s:
        created = s.execute(select(Activity.created_at).order_by(Activity.id)).scalars().all()
    assert len(set(created[:3])) == 1  # one created_at per batch


def test_tasks_rank_by_priority_then_due_time(pcrm: CRM, people: dict[str, Any]) -> None:
    make = pcrm.tasks.create
    later = make({"title": "later", "assignee_id": people["agent"], "due_at": (T0 + dt.timedelta(days=2)).isoformat()})
    undated = make({"title": "someday", "assignee_id": people["agent"]})
    urgent = make(
        {
            "title": "urgent",
            "assignee_id": people["agent"],
            "priority": 90,
            "customer_id": people["anna"],
            "reason": "2 sessions left",
            "source": "trigger",
            "source_id": "probe.ping",
        }
    )
    sooner = make({"title": "sooner", "assignee_id": people["agent"], "due_at": T0.isoformat()})
    make({"title": "not mine", "assignee_id": people["other"]})
    assert [t["id"] for t in pcrm.tasks.open(assignee_id=people["agent"])] == [
        urgent["id"],
        sooner["id"],
        later["id"],
        undated["id"],
    ]
    pcrm.tasks.complete(sooner["id"])
    assert pcrm.tasks.get(sooner["id"])["status"] == "done"
    with pytest.raises(ValidationError, match="already done"):
        pcrm.tasks.complete(sooner["id"])
    assert pcrm.tasks.open(customer_id=people["anna"])[0]["reason"] == "2 sessions left"


def test_task_input_is_validated(pcrm: CRM, people: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        pcrm.tasks.create({"title": "", "priority": 1000, "due_at": "soon"})
    assert set(err.value.errors) == {"title", "priority", "due_at"}
    with pytest.raises(ValidationError) as err:
        pcrm.tasks.create({"title": "x", "customer_id": 999, "assignee_id": 999})
    assert set(err.value.errors) == {"customer_id", "assignee_id"}
    with pytest.raises(NotFound):
        pcrm.tasks.complete(12345)


def test_reminders_due_respect_as_of(pcrm: CRM, people: dict[str, Any]) -> None:
    task = pcrm.tasks.create({"title": "follow up", "remind_at": T0.isoformat()})
    assert pcrm.tasks.reminders_due(as_of=T0 - dt.timedelta(seconds=1)) == []
    assert [t["id"] for t in pcrm.tasks.reminders_due(as_of=T0)] == [task["id"]]
    pcrm.tasks.cancel(task["id"])
    assert pcrm.tasks.reminders_due(as_of=T0) == []


def test_kind_data_is_stored_converted_with_defaults(crm_factory: Any) -> None:
    from crmkit import ActivityKindSpec, FieldSpec, hookimpl

    class Salon:
        plugin_name = "salon_x"

        @hookimpl
        def crmkit_register_activity_kinds(self) -> list[ActivityKindSpec]:
            return [
                ActivityKindSpec(
                    "colour",
                    required=("grams",),
                    data_fields=(
                        FieldSpec("grams", "integer", required=True),
                        FieldSpec("brand", default="Wella"),
                        FieldSpec("patch_test_on", "date"),
                    ),
                )
            ]

    crm = crm_factory([Salon()])
    anna = crm.customers.create({"name": "Anna"})
    logged = crm.activities.log({"customer_id": anna["id"], "kind": "colour", "data": {"grams": "40"}})
    assert logged["data"] == {"grams": 40, "brand": "Wella"}
    dated = crm.activities.log(
        {"customer_id": anna["id"], "kind": "colour", "data": {"grams": 30, "patch_test_on": "2026-05-01"}}
    )
    assert dated["data"]["patch_test_on"] == "2026-05-01"  # kept as ISO text in the JSON column
    report = crm.activities.ingest(
        [{"customer_id": anna["id"], "kind": "colour", "data": {"grams": 1, "patch_test_on": "2026-05-02"}}]
    )
    assert report.inserted == 1
    with pytest.raises(ValidationError) as err:
        crm.activities.log({"customer_id": anna["id"], "kind": "colour"})
    assert err.value.errors == {"data.grams": ["Missing data for required field."]}  # reported once


def test_a_planned_meeting_needs_no_result_yet(pcrm: CRM, people: dict[str, Any]) -> None:
    planned = meeting(people, status="planned")
    del planned["result"]
    assert pcrm.activities.log(planned)["status"] == "planned"
    with pytest.raises(ValidationError, match="result"):
        pcrm.activities.log({**planned, "status": "done", "occurred_at": (T0 + dt.timedelta(days=1)).isoformat()})


def test_activity_kind_channels_come_from_the_list() -> None:
    from crmkit import ActivityKindSpec

    with pytest.raises(ValueError, match="telefax"):
        ActivityKindSpec("fax", channel="telefax")


# -- the idempotency key ---------------------------------------------------------------------------------


def keyed_visits(p: dict[str, Any], n: int, source: str = "turnstile") -> list[dict[str, Any]]:
    """``n`` check-ins of Anna and Ben, each with its own id at the turnstile, typed (the fast path)."""
    return [
        {
            "customer_id": p["anna"] if i % 2 else p["ben"],
            "kind": "visit",
            "occurred_at": T0 + dt.timedelta(minutes=i),
            "source": source,
            "external_id": f"gate-1:{i}",
        }
        for i in range(n)
    ]


def stored_keys(crm: CRM) -> list[tuple[int, str | None, str | None]]:
    with crm.session() as s:
        rows = s.execute(select(Activity.customer_id, Activity.source, Activity.external_id))
        return [(customer_id, source, key) for customer_id, source, key in rows]


def test_ingesting_the_same_keyed_rows_twice_stores_them_once(pcrm: CRM, people: dict[str, Any], probe: Probe) -> None:
    rows = keyed_visits(people, 1000)
    first = pcrm.activities.ingest(rows, batch_size=300)
    assert (first.inserted, first.skipped, first.rejected) == (1000, 0, ())
    again = pcrm.activities.ingest(rows, batch_size=300)
    assert (again.inserted, again.skipped, again.rejected) == (0, 1000, ())
    assert n_activities(pcrm) == 1000
    assert sorted(stored_keys(pcrm)) == sorted((r["customer_id"], r["source"], r["external_id"]) for r in rows)
    # the hook heard of the first call's rows only
    assert sum(c for c, _ in probe.of("ingested")) == 1000
    # as text (marshmallow's way) the same rows are the same keys
    as_text = [{**r, "occurred_at": r["occurred_at"].isoformat(), "customer_id": str(r["customer_id"])} for r in rows]
    third = pcrm.activities.ingest(as_text[:10])
    assert (third.inserted, third.skipped) == (0, 10)


def test_a_rerun_after_a_crash_between_chunked_calls_stores_each_row_once(pcrm: CRM, people: dict[str, Any]) -> None:
    rows = keyed_visits(people, 1000)
    assert pcrm.activities.ingest(rows[:500]).inserted == 500  # the first chunk committed

    def crashing() -> Any:
        yield from rows[500:800]
        raise KeyboardInterrupt("the import was killed")

    with pytest.raises(KeyboardInterrupt):
        pcrm.activities.ingest(crashing(), batch_size=100)
    assert n_activities(pcrm) == 500  # the killed chunk left nothing
    rerun = pcrm.activities.ingest(rows, batch_size=128)
    assert (rerun.inserted, rerun.skipped, rerun.rejected) == (500, 500, ())
    assert n_activities(pcrm) == 1000
    assert len(set(stored_keys(pcrm))) == 1000


def test_the_same_key_twice_in_one_call_is_stored_once(pcrm: CRM, people: dict[str, Any], probe: Probe) -> None:
    anna, ben = people["anna"], people["ben"]
    rows = [
        {"customer_id": anna, "kind": "visit", "source": "turnstile", "external_id": "e1"},
        {"customer_id": anna, "kind": "visit", "source": "turnstile", "external_id": "e1"},  # same batch
        {"customer_id": anna, "kind": "visit"},  # no key: unrestricted
        {"customer_id": anna, "kind": "visit"},
        {"customer_id": anna, "kind": "visit", "source": "turnstile", "external_id": "e1"},  # next batch
        {"customer_id": anna, "kind": "visit", "source": "pbx", "external_id": "e1"},  # another source
        {"customer_id": ben, "kind": "visit", "source": "turnstile", "external_id": "e1"},  # another customer
        {"customer_id": anna, "kind": "visit", "source": "turnstile"},  # a source alone is no key
        {"customer_id": anna, "kind": "visit", "source": "turnstile"},
        {"customer_id": anna, "kind": "visit", "external_id": "e2"},  # a key needs its source
        {"customer_id": anna, "kind": "visit", "source": "turnstile", "external_id": "x" * 201},
    ]
    report = pcrm.activities.ingest(rows, batch_size=4)
    assert (report.inserted, report.skipped) == (7, 2)
    assert [(r.index, sorted(r.errors)) for r in report.rejected] == [(9, ["source"]), (10, ["external_id"])]
    assert report.inserted + report.skipped + len(report.rejected) == len(rows)
    assert n_activities(pcrm) == 7
    assert sorted(probe.of("ingested")) == sorted([(3, {"visit": 3}), (3, {"visit": 3}), (1, {"visit": 1})])


class RowListener:
    """A plugin that reads the stored rows of every ingested batch, as the fitness plugin does."""

    plugin_name = "row_listener"

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    @hookimpl
    def crmkit_activities_ingested(self, count: int, kinds: Any, activities: Any) -> None:
        assert count == len(activities)
        rows = [dict(a) for a in activities]
        assert [{k: a.get(k) for k in a} for a in activities] == rows  # get() reads as [] does
        self.batches.append(rows)


def test_the_hook_gets_the_stored_rows_and_never_a_skipped_one(crm_factory: Any) -> None:
    listener = RowListener()
    crm = crm_factory([listener])
    anna = crm.customers.create({"name": "Anna"})["id"]
    zone = dt.timezone(dt.timedelta(hours=7))
    rows = [
        {"customer_id": anna, "kind": "visit", "occurred_at": T0.astimezone(zone), "source": "t", "external_id": "a"},
        {"customer_id": anna, "kind": "chat", "occurred_at": T0.isoformat(), "data": {"n": [1, "x"]}},
        {
            "customer_id": anna,
            "kind": "payment",
            "amount": "12.30",
            "currency": "EUR",
            "source": "t",
            "external_id": "b",
        },
    ]
    crm.activities.ingest(rows[:1])
    report = crm.activities.ingest(rows)
    assert (report.inserted, report.skipped) == (2, 1)
    assert [len(b) for b in listener.batches] == [1, 2]
    chat, payment = sorted(listener.batches[1], key=lambda a: a["kind"])
    # the read model of crm.activities.get: ISO 8601 in UTC, amounts as text
    assert chat["occurred_at"] == T0.isoformat()
    assert (chat["kind"], chat["data"], chat["source"], chat["external_id"]) == ("chat", {"n": [1, "x"]}, None, None)
    assert (payment["customer_id"], payment["amount"], payment["source"], payment["external_id"]) == (
        anna,
        "12.30",
        "t",
        "b",
    )
    assert listener.batches[0][0]["occurred_at"] == T0.isoformat()
    assert (listener.batches[0][0]["ends_at"], listener.batches[0][0]["external_id"]) == (
        (T0 + dt.timedelta(hours=1)).isoformat(),
        "a",
    )


def test_the_hooks_rows_read_as_crm_activities_get_reads_them(crm_factory: Any) -> None:
    listener = RowListener()
    crm = crm_factory([listener])
    anna = crm.customers.create({"name": "Anna"})["id"]
    moments = [T0, T0.replace(microsecond=120_000), T0.replace(microsecond=999_999) + dt.timedelta(days=400)]
    rows = [
        {"customer_id": anna, "kind": "visit", "occurred_at": at, "source": "t", "external_id": str(n)}
        for n, at in enumerate(moments)
    ]
    crm.activities.ingest(rows)
    stored = {a["external_id"]: a for a in crm.activities.for_customer(anna)}
    assert len(stored) == len(listener.batches[0]) == 3
    for row in listener.batches[0]:
        expected = stored[row["external_id"]]
        for column in ("occurred_at", "ends_at", "kind", "status", "customer_id"):
            assert row[column] == expected[column], column
    assert [dt.datetime.fromisoformat(stored[str(n)]["occurred_at"]) for n in range(3)] == moments


def test_the_stored_rows_are_not_built_when_no_hook_reads_them(pcrm: CRM, people: dict[str, Any]) -> None:
    # the probe's implementation takes count and kinds only: a 2M-row ingest must not pay for dicts
    with mock.patch.object(_RowWriter, "records", side_effect=AssertionError("built for nobody")):
        assert pcrm.activities.ingest(keyed_visits(people, 10)).inserted == 10


def test_logging_a_known_key_returns_the_stored_activity_and_writes_nothing(
    pcrm: CRM, people: dict[str, Any], probe: Probe
) -> None:
    event = meeting(people, source="calendar", external_id="evt-42")
    first = pcrm.activities.log(event)
    assert (first["source"], first["external_id"]) == ("calendar", "evt-42")
    # delivered again, even with other details: the stored meeting, no calendar conflict with itself, no hook
    again = pcrm.activities.log({**event, "subject": "Changed"})
    assert again == first
    assert probe.of("activity") == [first["id"]]
    assert n_activities(pcrm) == 1
    # ingest knows it too
    assert pcrm.activities.ingest([event]).skipped == 1
    # the key is per customer
    other = pcrm.activities.log(
        {"customer_id": people["ben"], "kind": "note", "source": "calendar", "external_id": "evt-42"}
    )
    assert other["id"] != first["id"]
    assert n_activities(pcrm) == 2


def test_the_key_is_validated(pcrm: CRM, people: dict[str, Any]) -> None:
    note = {"customer_id": people["anna"], "kind": "note"}
    with pytest.raises(ValidationError) as info:
        pcrm.activities.log({**note, "external_id": "e1"})
    assert info.value.errors == {"source": ["required with an external_id"]}
    with pytest.raises(ValidationError) as info:
        pcrm.activities.log({**note, "source": "s" * 101, "external_id": "e" * 201})
    assert sorted(info.value.errors) == ["external_id", "source"]
    with pytest.raises(ValidationError) as info:
        pcrm.activities.log({**note, "source": "pbx", "external_id": ""})
    assert sorted(info.value.errors) == ["external_id"]
    limit = pcrm.activities.log({**note, "source": "s" * 100, "external_id": "e" * 200})
    assert (len(limit["source"]), len(limit["external_id"])) == (100, 200)
    assert n_activities(pcrm) == 1


def test_an_ingest_report_has_a_json_safe_form(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna"})["id"]
    report = crm.activities.ingest([{"customer_id": anna, "kind": "visit"}, {"customer_id": anna, "kind": "?"}])
    assert report.to_dict() == {
        "inserted": 1,
        "skipped": 0,
        "rejected": [{"index": 1, "errors": report.rejected[0].errors}],
    }
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()
