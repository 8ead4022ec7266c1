"""What a club does with the CRM beyond the core: sell a membership, freeze it, open a trial."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, validate
from marshmallow import fields as mf
from sqlalchemy import select

from crmkit.db import Customer
from crmkit.errors import NotFound, ValidationError
from crmkit.schemas import load
from crmkit.unit import Transaction, use_transaction
from crmkit_fitness.models import Membership, Plan

if TYPE_CHECKING:
    from crmkit import CRM

#: Stages a sale moves a customer out of, into ``adaptation``: a lead or a trial joins, a lapsed one returns.
JOINING = {"lead": False, "trial": False, "lost": True, "lapsed": True}


class PlanIn(Schema):
    name = mf.String(required=True, validate=validate.Length(min=1, max=100))
    duration_days = mf.Integer(required=True, validate=validate.Range(min=1, max=3660))
    price = mf.Decimal(required=True, places=2, validate=validate.Range(min=0))
    currency = mf.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    sessions = mf.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))
    freeze_days = mf.Integer(load_default=0, validate=validate.Range(min=0))


class SaleIn(Schema):
    customer_id = mf.Integer(required=True)
    plan_id = mf.Integer(required=True)
    starts_on = mf.Date(required=True)
    owner_id = mf.Integer(allow_none=True, load_default=None)


class Fitness:
    """``fitness(crm)``: the club's own operations, each one validated transaction."""

    def __init__(self, crm: CRM) -> None:
        if "fitness" not in crm.plugins:
            raise NotFound("plugin", "fitness")
        self._crm = crm

    def create_plan(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        values = load(PlanIn(), data, message="invalid plan")
        with use_transaction(self._crm, self._crm.session_factory, tx) as t:
            if t.session.scalar(select(Plan.id).where(Plan.name == values["name"])):
                raise ValidationError({"name": [f"a plan named {values['name']!r} exists"]}, "invalid plan")
            plan = Plan(**values)
            t.session.add(plan)
            t.session.flush()
            return plan.id

    def sell(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        """Sell a membership: the membership row, a ``purchase`` activity (the renewal goal of the triggers),
        and, for a lead, a trial or a lapsed member, the move into ``adaptation``. One transaction."""
        crm = self._crm
        values = load(SaleIn(), data, message="invalid sale")
        with use_transaction(crm, crm.session_factory, tx) as t:
            plan = t.session.get(Plan, values["plan_id"])
            customer = t.session.get(Customer, values["customer_id"])
            errors = {}
            if plan is None or not plan.active:
                errors["plan_id"] = [f"no active plan with id {values['plan_id']}"]
            if customer is None:
                errors["customer_id"] = [f"no customer with id {values['customer_id']}"]
            if errors:
                raise ValidationError(errors, "invalid sale")
            assert plan is not None and customer is not None
            starts = values["starts_on"]
            membership = Membership(
                customer_id=customer.id,
                plan_id=plan.id,
                starts_on=starts,
                ends_on=starts + dt.timedelta(days=plan.duration_days - 1),
                status="active",
                sessions_left=plan.sessions,
                price=plan.price,
            )
            t.session.add(membership)
            t.session.flush()
            at = dt.datetime.combine(starts, dt.time(12), dt.UTC)
            crm.activities.log(
                {
                    "customer_id": customer.id,
                    "kind": "purchase",
                    "amount": str(plan.price),
                    "currency": plan.currency,
                    "subject": f"Membership: {plan.name}",
                    "occurred_at": at.isoformat(),
                    "owner_id": values["owner_id"],
                    "data": {"membership_id": membership.id, "plan": plan.name},
                },
                tx=t,
            )
            if customer.stage in JOINING:
                cause = f"bought {plan.name}" + (" (win-back)" if JOINING[customer.stage] else "")
                crm.lifecycle.move(customer.id, "adaptation", cause=cause, actor_id=values["owner_id"], tx=t)
            return membership.id

    def freeze(self, membership_id: int, *, start: dt.date, days: int, tx: Transaction | None = None) -> None:
        """Freeze a membership: the end date moves by ``days``; the plan's freeze allowance is enforced."""
        with use_transaction(self._crm, self._crm.session_factory, tx) as t:
            membership = t.session.get(Membership, membership_id, with_for_update=True)
            if membership is None:
                raise NotFound("membership", membership_id)
            plan = t.session.get(Plan, membership.plan_id)
            assert plan is not None
            errors: dict[str, list[str]] = {}
            if days <= 0:
                errors["days"] = ["must be positive"]
            elif membership.freeze_days_used + days > plan.freeze_days:
                left = plan.freeze_days - membership.freeze_days_used
                errors["days"] = [f"only {left} freeze days left on plan {plan.name!r}"]
            if membership.status != "active":
                errors["status"] = [f"membership is {membership.status}"]
            if errors:
                raise ValidationError(errors, "cannot freeze")
            membership.status = "frozen"
            membership.frozen_from = start
            membership.frozen_until = start + dt.timedelta(days=days - 1)
            membership.freeze_days_used += days
            membership.ends_on += dt.timedelta(days=days)

    def memberships(self, customer_id: int) -> list[dict[str, Any]]:
        with self._crm.session() as s:
            rows = s.scalars(
                select(Membership).where(Membership.customer_id == customer_id).order_by(Membership.starts_on)
            )
            return [
                {
                    "id": m.id,
                    "plan_id": m.plan_id,
                    "starts_on": m.starts_on,
                    "ends_on": m.ends_on,
                    "status": m.status,
                    "sessions_left": m.sessions_left,
                    "frozen_until": m.frozen_until,
                }
                for m in rows
            ]


def fitness(crm: CRM) -> Fitness:
    return Fitness(crm)
