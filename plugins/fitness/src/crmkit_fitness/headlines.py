"""The fitness edition's headline numbers: check-ins in the period and members at risk at its end."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from crmkit.reports import Headline, ReportContext


def _count(ctx: ReportContext, query: object) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)  # type: ignore[call-overload]


def checkins(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> int:
    """Turnstile check-ins that happened in ``[since, until)``."""
    a = ctx.table("crm_activities")
    query = select(func.count()).where(
        a.c.kind == "checkin",
        a.c.status.in_(ctx.registry.happened),
        a.c.occurred_at >= since,
        a.c.occurred_at < until,
        ctx.reaches(a.c.customer_id),
    )
    return _count(ctx, query)


def members_at_risk(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> int:
    """Members whose latest stage move before ``until`` put them in the at-risk stage."""
    stages = ctx.stages_at(until)
    query = select(func.count()).where(stages.c.stage == "at_risk", ctx.reaches(stages.c.customer_id))
    return _count(ctx, query)


def fitness_headlines() -> list[Headline]:
    return [
        Headline(
            "fitness.checkins",
            "Check-ins",
            checkins,
            description="Turnstile check-ins in the period.",
            report="fitness.attendance",
            order=15,
        ),
        Headline(
            "fitness.members_at_risk",
            "Members at risk",
            members_at_risk,
            description="Members in the at-risk stage at the end of the period: who to call today.",
            report="fitness.members_at_risk",
            better="down",
            order=35,
        ),
    ]
