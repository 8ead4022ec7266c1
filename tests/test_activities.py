"""Activities and tasks: per-kind rules, bulk ingest, calendar conflicts, next actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from probe import Probe
from sqlalchemy import func, select

from crmkit import CRM, CalendarConflictError, NotFound, ValidationError
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
