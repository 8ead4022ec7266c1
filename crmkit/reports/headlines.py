"""The core's headline numbers for the dashboard: one SQL statement each, over the reached customers.

Counts over the period count what happened in ``[since, until)``; states (active customers) are read as
of ``until`` from the stage history, so the previous period's figure is what the dashboard showed then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, select

from crmkit.db.models import Activity, Customer, StageHistory
from crmkit.reports.spec import Headline, ReportContext


def count_in(ctx: ReportContext, query: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def lifecycle_at(ctx: ReportContext, moment: dt.datetime, lifecycles: tuple[str, ...]) -> int:
    """Reached customers whose latest stage move before ``moment`` put them in one of ``lifecycles``."""
    stages = ctx.stages_at(moment)
    query = select(func.count()).where(stages.c.lifecycle.in_(lifecycles), ctx.reaches(stages.c.customer_id))
    return count_in(ctx, query)


def _in(column: ColumnElement[dt.datetime], since: dt.datetime, until: dt.datetime) -> ColumnElement[bool]:
    return and_(column >= since, column < until)


def new_customers(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> int:
    c: Table = Customer.__table__
    return count_in(
        ctx, select(func.count()).select_from(c).where(_in(c.c.created_at, since, until), ctx.customer_scope(c))
    )


def active_customers(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> int:
    return lifecycle_at(ctx, until, ("active", "loyal"))


def lost_customers(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> int:
    h: Table = StageHistory.__table__
    query = select(func.count(h.c.customer_id.distinct())).where(
        _in(h.c.at, since, until), h.c.to_lifecycle == "lost", ctx.reaches(h.c.customer_id)
    )
    return count_in(ctx, query)


def revenue(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> float:
    a: Table = Activity.__table__
    query = select(func.coalesce(func.sum(a.c.amount), 0)).where(
        a.c.kind == "purchase",
        a.c.status.in_(ctx.registry.happened),
        a.c.currency == ctx.currency,
        _in(a.c.occurred_at, since, until),
        ctx.reaches(a.c.customer_id),
    )
    with ctx.engine.connect() as conn:
        return round(float(conn.execute(query).scalar() or 0), 2)


def core_headlines() -> list[Headline]:
    return [
        Headline(
            "crm.active_customers",
            "Active customers",
            active_customers,
            description="Customers in the active or loyal stage at the end of the period.",
            report="crm.customer_growth",
            order=10,
        ),
        Headline(
            "crm.new_customers",
            "New customers",
            new_customers,
            description="Customers created in the period.",
            report="crm.leads_to_deals",
            order=20,
        ),
        Headline(
            "crm.revenue",
            "Revenue",
            revenue,
            type="money",
            description="Purchases in the CRM's currency in the period.",
            report="crm.average_check",
            order=30,
        ),
        Headline(
            "crm.lost_customers",
            "Customers lost",
            lost_customers,
            description="Customers who moved to the lost stage in the period.",
            report="crm.lifecycle_funnel",
            better="down",
            order=40,
        ),
    ]
