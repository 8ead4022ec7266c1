"""Contacts over the lifecycle, and the sequences of contacts that came before conversions: which of the
10 to 15 contacts of a customer's lifecycle pay off. Each is one statement run by the database.

A **contact** is a trigger firing that was acted on (not held out, and not a message the contact policy
dropped) or an outbound activity a member of staff logged as done (a call, an email, an SMS, a chat).
See ``docs/kpis.md`` for the definitions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, union_all
from sqlalchemy.sql.selectable import CTE

from crmkit.db.functions import shift_minutes
from crmkit.db.models import Activity, StageHistory, TriggerFiring
from crmkit.db.types import UTCDateTime
from crmkit.errors import ValidationError
from crmkit.reports.spec import ReportContext

#: The kinds of activity that are a member of staff contacting the customer (when outbound and done).
CONTACT_KINDS = ("call", "email", "sms", "chat")
#: How many contacts before a conversion make its sequence.
SEQUENCE_LENGTH = 3


def _moment(day: dt.date) -> Any:
    return literal(dt.datetime.combine(day, dt.time(), dt.UTC), UTCDateTime())


def contacts(ctx: ReportContext, since: dt.date, until: dt.date) -> CTE:
    """``(customer_id, at, label)`` of every contact in ``[since, until)`` with a reached customer."""
    f, a = TriggerFiring.__table__, Activity.__table__
    fired = select(f.c.customer_id.label("customer_id"), f.c.as_of.label("at"), f.c.trigger.label("label")).where(
        f.c.held_out.is_(False),
        or_(f.c.contact.is_(None), f.c.contact != "dropped"),
        f.c.as_of >= _moment(since),
        f.c.as_of < _moment(until),
        ctx.reaches(f.c.customer_id),
    )
    staff = select(a.c.customer_id, a.c.occurred_at, a.c.kind).where(
        a.c.kind.in_(CONTACT_KINDS),
        a.c.direction == "outbound",
        a.c.status.in_(ctx.registry.happened),
        a.c.occurred_at >= _moment(since),
        a.c.occurred_at < _moment(until),
        ctx.reaches(a.c.customer_id),
    )
    return union_all(fired, staff).cte("contacts")


def contacts_per_lifecycle(ctx: ReportContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Per lifecycle stage: the customers who were contacted while in it, the contacts, and the contacts per
    such customer. A contact counts in the stage its customer was in at that moment (the stage history)."""
    since, until = params["since"], params["until"]
    c = contacts(ctx, since, until)
    h = StageHistory.__table__
    following = func.lead(h.c.at).over(partition_by=h.c.customer_id, order_by=(h.c.at, h.c.id))
    spans = select(h.c.customer_id, h.c.to_lifecycle, h.c.at.label("start"), following.label("end")).subquery("spans")
    joined = (
        select(spans.c.to_lifecycle.label("lifecycle"), c.c.customer_id)
        .select_from(c)
        .join(
            spans,
            and_(
                spans.c.customer_id == c.c.customer_id,
                spans.c.start <= c.c.at,
                or_(spans.c.end.is_(None), c.c.at < spans.c.end),
            ),
        )
        .subquery("attributed")
    )
    query = (
        select(
            joined.c.lifecycle,
            func.count(func.distinct(joined.c.customer_id)).label("customers"),
            func.count().label("contacts"),
        )
        .group_by(joined.c.lifecycle)
        .order_by(joined.c.lifecycle)
    )
    order = {name: i for i, name in enumerate(_lifecycles(ctx))}
    rows = [
        {
            "lifecycle": r["lifecycle"],
            "customers": int(r["customers"]),
            "contacts": int(r["contacts"]),
            "per_customer": round(int(r["contacts"]) / int(r["customers"]), 2) if r["customers"] else None,
        }
        for r in ctx.fetch(query)
    ]
    return sorted(rows, key=lambda r: (order.get(r["lifecycle"], len(order)), r["lifecycle"]))


def sequences_before_conversion(ctx: ReportContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each customer's first conversion in ``[since, until)`` (a ``done`` activity of ``kinds``), with the
    last :data:`SEQUENCE_LENGTH` contacts in the ``lookback_days`` before it, oldest first, counted by
    sequence: which paths came before a purchase. ``(no contact)`` for conversions nobody contacted."""
    since, until = params["since"], params["until"]
    kinds = [k.strip() for k in str(params.get("kinds") or "purchase").split(",") if k.strip()]
    days = params.get("lookback_days")
    days = 60 if days is None else days
    errors: dict[str, list[str]] = {}
    unknown = [k for k in kinds if k not in ctx.registry.activity_kinds]
    if unknown or not kinds:
        errors["kinds"] = [f"not activity kinds: {', '.join(unknown) or '(none given)'}"]
    if not isinstance(days, int) or not 1 <= days <= 3660:
        errors["lookback_days"] = ["must be a whole number of days from 1 to 3660"]
    if errors:
        raise ValidationError(errors, "invalid parameters for report 'crm.contact_sequences'")
    lookback = dt.timedelta(days=days)
    a = Activity.__table__
    first = (
        select(a.c.customer_id, func.min(a.c.occurred_at).label("at"))
        .where(
            a.c.kind.in_(kinds),
            a.c.status.in_(ctx.registry.happened),
            a.c.occurred_at >= _moment(since),
            a.c.occurred_at < _moment(until),
            ctx.reaches(a.c.customer_id),
        )
        .group_by(a.c.customer_id)
        .cte("conversions")
    )
    c = contacts(ctx, since - lookback, until)
    recent = func.row_number().over(partition_by=c.c.customer_id, order_by=(c.c.at.desc(), c.c.label.desc()))
    before = (
        select(c.c.customer_id, c.c.label, recent.label("n"))
        .select_from(c)
        .join(first, first.c.customer_id == c.c.customer_id)
        .where(c.c.at < first.c.at, c.c.at >= _minus(first.c.at, lookback))
        .subquery("before")
    )
    steps = [func.max(case((before.c.n == n, before.c.label))).label(f"step{n}") for n in range(1, SEQUENCE_LENGTH + 1)]
    paths = select(first.c.customer_id, *steps).select_from(first).outerjoin(
        before, before.c.customer_id == first.c.customer_id
    ).group_by(first.c.customer_id).subquery("paths")  # fmt: skip
    arrow = literal(" → ")
    # oldest first: step3 → step2 → step1, leaving out the steps a customer did not have
    sequence = func.coalesce(
        func.nullif(
            func.coalesce(paths.c.step3 + arrow, literal(""))
            + func.coalesce(paths.c.step2 + arrow, literal(""))
            + func.coalesce(paths.c.step1, literal("")),
            literal(""),
        ),
        literal("(no contact)"),
    )
    query = select(sequence.label("sequence"), func.count().label("conversions")).group_by(sequence)
    rows = [{"sequence": r["sequence"], "conversions": int(r["conversions"])} for r in ctx.fetch(query)]
    total = sum(r["conversions"] for r in rows)
    for r in rows:
        r["share_pct"] = round(r["conversions"] * 100 / total, 2) if total else None
    return sorted(rows, key=lambda r: (-r["conversions"], r["sequence"]))


def _minus(column: Any, delta: dt.timedelta) -> Any:
    """``column - delta`` on both databases, for a window before a timestamp."""
    return shift_minutes(column, literal(-int(delta.total_seconds() // 60)))


def _lifecycles(ctx: ReportContext) -> list[str]:
    seen: list[str] = []
    for stage in ctx.registry.stages.values():
        if stage.lifecycle not in seen:
            seen.append(stage.lifecycle)
    return seen
