"""What the docs promise about activity statuses, ``q.planned()`` and the trigger defaults is what the code
does: each test builds the cases by hand around the documented boundaries."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from sqlalchemy import literal, select

from crmkit import CRM
from crmkit.db.models import ACTIVITY_STATUSES
from crmkit.triggers import TaskAction, Trigger

DOCS = Path(__file__).resolve().parent.parent / "docs"
AS_OF = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def matching(crm: CRM, condition: Any) -> set[int]:
    q = crm.triggers.query(AS_OF)
    where = condition(q)
    with crm.engine.connect() as conn:
        return set(conn.execute(select(q.customer.c.id).select_from(q.from_clause()).where(where)).scalars())


def visit(crm: CRM, name: str, status: str, at: dt.datetime) -> int:
    customer = crm.customers.create({"name": name}, allow_duplicate=True)
    crm.activities.log({"customer_id": customer["id"], "kind": "visit", "status": status, "occurred_at": at})
    return int(customer["id"])


def test_every_status_is_explained_in_the_tutorial_and_the_architecture_page() -> None:
    for page in ("tutorial.md", "architecture.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        rows = set(re.findall(r"^\| `(\w+)` \| ", text, re.MULTILINE))
        assert set(ACTIVITY_STATUSES) <= rows, f"{page} does not explain {set(ACTIVITY_STATUSES) - rows}"


def test_planned_is_status_planned_strictly_after_as_of_and_within_the_bound(crm: CRM) -> None:
    second = dt.timedelta(seconds=1)
    at_as_of = visit(crm, "booked for as_of itself", "planned", AS_OF)
    just_after = visit(crm, "booked one second after", "planned", AS_OF + second)
    at_bound = visit(crm, "booked at as_of + a week", "planned", AS_OF + WEEK)
    past_bound = visit(crm, "booked a second later", "planned", AS_OF + WEEK + second)
    visit(crm, "booked in the past", "planned", AS_OF - dt.timedelta(hours=1))
    visit(crm, "under way", "in_progress", AS_OF + dt.timedelta(hours=1))
    visit(crm, "done ahead", "done", AS_OF + dt.timedelta(hours=1))
    visit(crm, "cancelled", "cancelled", AS_OF + dt.timedelta(hours=1))
    assert at_as_of not in matching(crm, lambda q: q.planned("visit"))
    assert matching(crm, lambda q: q.planned("visit")) == {just_after, at_bound, past_bound}
    assert matching(crm, lambda q: q.planned("visit", within=WEEK)) == {just_after, at_bound}


def test_only_done_counts_as_happened(crm: CRM) -> None:
    customer = crm.customers.create({"name": "Anna"})
    for status in ACTIVITY_STATUSES:  # one of each, all in the past
        crm.activities.log(
            {"customer_id": customer["id"], "kind": "note", "status": status, "occurred_at": AS_OF - WEEK}
        )
    assert matching(crm, lambda q: q.count("note") == 1) == {customer["id"]}
    assert matching(crm, lambda q: q.count("note", statuses=ACTIVITY_STATUSES) == 5) == {customer["id"]}


def test_a_trigger_without_stages_sees_every_stage_and_its_task_is_due_a_day_after_as_of(crm: CRM) -> None:
    lead = crm.customers.create({"name": "Lead"})
    lost = crm.customers.create({"name": "Lost"})
    crm.lifecycle.move(lost["id"], "lost", cause="moved away")
    crm.triggers.register(Trigger("test.everyone", condition=lambda q: literal(True), task=TaskAction("Call")))
    report = crm.triggers.run(as_of=AS_OF, names=["test.everyone"])
    assert report["test.everyone"].fired == 2
    tasks = crm.tasks.open()
    assert sorted(t["customer_id"] for t in tasks) == sorted([lead["id"], lost["id"]])
    due = {dt.datetime.fromisoformat(t["due_at"]) if isinstance(t["due_at"], str) else t["due_at"] for t in tasks}
    assert due == {AS_OF + dt.timedelta(days=1)}
