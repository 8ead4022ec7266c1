"""Helpers shared by the fitness tests: a fixed clock and members built through the public API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmkit_fitness.models import Plan
from crmkit_fitness.service import fitness
from sqlalchemy import select

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


def plan(crm: CRM, *, days: int = 30, sessions: int | None = None, freeze_days: int = 0) -> int:
    """The plan with these terms, created the first time it is asked for."""
    name = f"{days} days, {sessions or 'unlimited'} sessions, {freeze_days} freeze days"
    with crm.session() as s:
        existing = s.scalar(select(Plan.id).where(Plan.name == name))
    if existing is not None:
        return existing
    return fitness(crm).create_plan(
        {"name": name, "duration_days": days, "price": "49.00", "sessions": sessions, "freeze_days": freeze_days}
    )["id"]
