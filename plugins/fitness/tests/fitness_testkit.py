"""Helpers shared by the fitness tests: a fixed clock and members built through the public API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmkit import CRM

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TODAY = AS_OF.date()
DAY = dt.timedelta(days=1)

STAGE_MOVES = (
    "fitness.stage_joined",
    "fitness.stage_adapted",
    "fitness.stage_at_risk",
    "fitness.stage_recovered",
    "fitness.stage_lapsed",
)


def member(crm: CRM, name: str, *, stage: str = "active", **fields: Any) -> int:
    return crm.customers.create({"name": name, "stage": stage, **fields}, allow_duplicate=True)["id"]


def ago(days: float = 0, hours: float = 0) -> dt.datetime:
    return AS_OF - dt.timedelta(days=days, hours=hours)


def checkins(crm: CRM, cid: int, *moments: dt.datetime) -> None:
    rows = [
        {"customer_id": cid, "kind": "checkin", "occurred_at": m.isoformat(), "data": {"club": "main"}} for m in moments
    ]
    report = crm.activities.ingest(rows)
    assert report.ok, report
