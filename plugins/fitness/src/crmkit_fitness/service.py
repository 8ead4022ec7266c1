"""What a club does with the CRM beyond the core: plans, sales and renewals, freezes, cancellations, expiry,
personal-training packages, trainers and classes.

Every operation validates its input with a marshmallow schema that checks every column limit (text lengths,
integer ranges, money that fits ``Numeric(10, 2)`` without rounding, dates within 1900..2199, no NUL), so bad
input is crmkit's ``ValidationError`` naming the field (``NotFound`` for a membership that does not exist) on
SQLite and PostgreSQL alike, never a driver error. Each is one transaction, or a savepoint of the caller's
(``tx=``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from marshmallow import RAISE, Schema, validate, validates_schema
from marshmallow import ValidationError as SchemaError
from marshmallow import fields as mf
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from crmkit.db import Customer
from crmkit.db.models import User
from crmkit.db.types import utcnow
from crmkit.errors import NotFound, ValidationError
from crmkit.limits import MAX_DATE, Day, Int, Moment, Money, Text, require_id
from crmkit.schemas import load
from crmkit.unit import Transaction
from crmkit_fitness.models import GymClass, Membership, Plan, PTPackage, Trainer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crmkit import CRM

#: Stages a sale moves a customer out of, into ``adaptation``: a lead or a trial joins, a lapsed one returns.
JOINING = {"lead": False, "trial": False, "lost": True, "lapsed": True}
#: Ten years: the longest plan, freeze or package a club sells.
MAX_DAYS = 3660
DAY = dt.timedelta(days=1)


class _In(Schema):
    class Meta:
        unknown = RAISE


def _currency() -> mf.String:
    return mf.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$", error="must be 3 capital letters"))


class PlanIn(_In):
    name = Text(required=True, min_length=1, max_length=100)
    duration_days = Int(required=True, min=1, max=MAX_DAYS)
    price = Money(required=True, precision=10, scale=2, validate=validate.Range(min=0))
    currency = _currency()
    sessions = Int(allow_none=True, load_default=None, min=1)
    freeze_days = Int(load_default=0, min=0, max=MAX_DAYS)


class SaleIn(_In):
    customer_id = Int(bits=64, min=1, required=True)
    plan_id = Int(min=1, required=True)
    starts_on = Day(required=True)
    owner_id = Int(min=1, allow_none=True, load_default=None)
    #: When the sale happened; by default noon UTC of ``starts_on``.
    sold_at = Moment(allow_none=True, load_default=None)


class RenewIn(_In):
    customer_id = Int(bits=64, min=1, required=True)
    #: The plan of the renewal; by default the plan of the membership it follows.
    plan_id = Int(min=1, allow_none=True, load_default=None)
    #: By default the day after the customer's latest membership ends.
    starts_on = Day(allow_none=True, load_default=None)
    owner_id = Int(min=1, allow_none=True, load_default=None)
    sold_at = Moment(allow_none=True, load_default=None)


class FreezeIn(_In):
    start = Day(required=True)
    days = Int(required=True, min=1, max=MAX_DAYS)


class UnfreezeIn(_In):
    #: The first day the member is back.
    on = Day(required=True)


class CancelIn(_In):
    reason = Text(required=True, min_length=1, max_length=200)
    on = Day(required=True)

    @validates_schema
    def _said(self, data: dict[str, Any], **_: Any) -> None:
        if "reason" in data and not data["reason"].strip():
            raise SchemaError("must say why", "reason")


class ExpireIn(_In):
    as_of = Day(required=True)


class PTPackageIn(_In):
    customer_id = Int(bits=64, min=1, required=True)
    trainer_id = Int(min=1, allow_none=True, load_default=None)
    sessions = Int(required=True, min=1, max=1000)
    price = Money(required=True, precision=14, scale=2, validate=validate.Range(min=0))
    currency = _currency()
    purchased_on = Day(required=True)
    expires_on = Day(allow_none=True, load_default=None)
    owner_id = Int(min=1, allow_none=True, load_default=None)

    @validates_schema
    def _dates(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("expires_on") is not None and data["expires_on"] < data["purchased_on"]:
            raise SchemaError("must not be before purchased_on", "expires_on")


class TrainerIn(_In):
    name = Text(required=True, min_length=1, max_length=200)
    user_id = Int(min=1, allow_none=True, load_default=None)
    speciality = Text(allow_none=True, load_default=None, max_length=100)


class ClassIn(_In):
    name = Text(required=True, min_length=1, max_length=100)
    trainer_id = Int(min=1, allow_none=True, load_default=None)
    club = Text(required=True, min_length=1, max_length=100)
    #: 0 = Monday ... 6 = Sunday, as in the attendance report.
    weekday = Int(required=True, min=0, max=6)
    starts_at = mf.Time(required=True)
    duration_min = Int(load_default=60, min=1, max=24 * 60)
    capacity = Int(load_default=20, min=1, max=10_000)


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), dt.UTC)


class Fitness:
    """``fitness(crm)``: the club's own operations, each one validated transaction."""

    def __init__(self, crm: CRM) -> None:
        if "fitness" not in crm.plugins:
            raise NotFound("plugin", "fitness")
        self._crm = crm

    def _tx(self, tx: Transaction | None) -> Any:
        return self._crm.units.write(tx)

    # -- plans and sales ---------------------------------------------------------------------------------

    def create_plan(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        values = load(PlanIn(), data, message="invalid plan")
        taken = ValidationError({"name": [f"a plan named {values['name']!r} exists"]}, "invalid plan")
        with self._tx(tx) as t:
            if t.session.scalar(select(Plan.id).where(Plan.name == values["name"])):
                raise taken
            plan = Plan(**values)
            t.session.add(plan)
            try:
                t.session.flush()
            except IntegrityError:  # the same name created at the same moment: the unique key decides
                raise taken from None
            return plan.id

    def sell(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        """Sell a membership: the membership row, a ``purchase`` activity (the renewal goal of the triggers),
        and, for a lead, a trial or a lapsed member, the move into ``adaptation``. One transaction.

        The sale happens at ``sold_at`` (default: noon UTC of ``starts_on``): the purchase is dated then, and
        so is the move, so a sale entered late tells the same story as one entered on the day. A move is never
        dated in the future (a sale that starts later moves the customer now) nor before the customer's
        previous move: it is clamped to that move's time, as the trigger engine does for backfills."""
        values = load(SaleIn(), data, message="invalid sale")
        with self._tx(tx) as t:
            return self._sell(t, values, "invalid sale")

    def renew(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        """Sell the membership that follows the customer's latest one (the one that ends last, not cancelled):
        it starts the day after that one ends, or on ``starts_on``, on the same plan unless ``plan_id`` says
        otherwise. Two renewals at once queue on the customer, so the second follows the first."""
        values = load(RenewIn(), data, message="invalid renewal")
        with self._tx(tx) as t:
            self._customer(t.session, values["customer_id"], "invalid renewal")
            latest = t.session.scalars(
                select(Membership)
                .where(Membership.customer_id == values["customer_id"], Membership.status != "cancelled")
                .order_by(Membership.ends_on.desc(), Membership.id.desc())
                .limit(1)
            ).first()
            if latest is None:
                raise ValidationError({"customer_id": ["has no membership to renew: sell one"]}, "invalid renewal")
            values["plan_id"] = values["plan_id"] or latest.plan_id
            if values["starts_on"] is None:
                values["starts_on"] = latest.ends_on + DAY
            return self._sell(t, values, "invalid renewal")

    def _sell(self, t: Transaction, values: dict[str, Any], message: str) -> int:
        crm, session = self._crm, t.session
        plan = session.get(Plan, values["plan_id"])
        errors: dict[str, list[str]] = {}
        if plan is None or not plan.active:
            errors["plan_id"] = [f"no active plan with id {values['plan_id']}"]
        customer = self._customer(session, values["customer_id"], message, errors=errors)
        self._user(session, values.get("owner_id"), "owner_id", errors)
        if errors:
            raise ValidationError(errors, message)
        assert plan is not None and customer is not None
        starts = values["starts_on"]
        ends = starts + dt.timedelta(days=plan.duration_days - 1)
        if ends > MAX_DATE:
            raise ValidationError({"starts_on": ["the membership would end after 2199-12-31"]}, message)
        membership = Membership(
            customer_id=customer.id,
            plan_id=plan.id,
            starts_on=starts,
            ends_on=ends,
            status="active",
            sessions_left=plan.sessions,
            price=plan.price,
        )
        session.add(membership)
        session.flush()
        at = values.get("sold_at") or _noon(starts)
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
            moved = max(min(at, utcnow()), customer.stage_changed_at)
            crm.lifecycle.move(customer.id, "adaptation", cause=cause, actor_id=values["owner_id"], at=moved, tx=t)
        return membership.id

    # -- what happens to a membership --------------------------------------------------------------------

    def freeze(self, membership_id: int, *, start: dt.date, days: int, tx: Transaction | None = None) -> None:
        """Freeze a membership from ``start`` for ``days`` days: the end date moves by ``days``; the plan's
        freeze allowance is enforced, and the freeze starts within the membership."""
        key = require_id(membership_id, "membership")
        values = load(FreezeIn(), {"start": start, "days": days}, message="cannot freeze")
        with self._tx(tx) as t:
            membership = self._membership(t.session, key)
            plan = t.session.get(Plan, membership.plan_id)
            assert plan is not None
            start, days = values["start"], values["days"]
            errors: dict[str, list[str]] = {}
            if membership.freeze_days_used + days > plan.freeze_days:
                left = plan.freeze_days - membership.freeze_days_used
                errors["days"] = [f"only {left} freeze days left on plan {plan.name!r}"]
            if not membership.starts_on <= start <= membership.ends_on:
                errors["start"] = [f"must be within the membership ({membership.starts_on}..{membership.ends_on})"]
            # a freeze that is over leaves the status "frozen" (the triggers read the dates): it may freeze again
            over = membership.frozen_until is not None and membership.frozen_until < start
            if membership.status != "active" and not (membership.status == "frozen" and over):
                errors["status"] = [f"membership is {membership.status}"]
            if errors:
                raise ValidationError(errors, "cannot freeze")
            membership.status = "frozen"
            membership.frozen_from = start
            membership.frozen_until = start + dt.timedelta(days=days - 1)
            membership.freeze_days_used += days
            membership.ends_on += dt.timedelta(days=days)

    def unfreeze(self, membership_id: int, *, on: dt.date, tx: Transaction | None = None) -> int:
        """End a freeze: the member is back on ``on``. Ending it early gives back the days not used: they
        return to the plan's allowance and the end date moves back by as many. Returns the days given back."""
        key = require_id(membership_id, "membership")
        values = load(UnfreezeIn(), {"on": on}, message="cannot unfreeze")
        with self._tx(tx) as t:
            m = self._membership(t.session, key)
            if m.status != "frozen" or m.frozen_from is None or m.frozen_until is None:
                raise ValidationError({"status": [f"membership is {m.status}, not frozen"]}, "cannot unfreeze")
            back = values["on"]
            unused = max(0, (m.frozen_until - max(back, m.frozen_from)).days + 1)
            m.status = "active"
            m.freeze_days_used -= unused
            m.ends_on -= dt.timedelta(days=unused)
            if back <= m.frozen_from:  # called off before it began: there was no freeze
                m.frozen_from = m.frozen_until = None
            elif unused:
                m.frozen_until = back - DAY
            return unused

    def cancel(
        self, membership_id: int, *, reason: str, on: dt.date | None = None, tx: Transaction | None = None
    ) -> None:
        """Cancel a membership with a reason, as of ``on`` (default today, UTC). A cancelled membership counts
        for nothing: no sessions, no renewal, no valid membership for the triggers."""
        key = require_id(membership_id, "membership")
        data = {"reason": reason, "on": on or utcnow().date()}
        values = load(CancelIn(), data, message="cannot cancel")
        with self._tx(tx) as t:
            m = self._membership(t.session, key)
            if m.status == "cancelled":
                raise ValidationError({"status": [f"membership was cancelled on {m.cancelled_on}"]}, "cannot cancel")
            m.status, m.cancel_reason, m.cancelled_on = "cancelled", values["reason"], values["on"]

    def expire(self, *, as_of: dt.date, tx: Transaction | None = None) -> int:
        """Mark every membership that ended before ``as_of`` (active, or frozen with its freeze behind it)
        ``expired``: one ``UPDATE``. Returns how many changed; running it again changes none."""
        values = load(ExpireIn(), {"as_of": as_of}, message="cannot expire")
        m = Membership.__table__
        with self._tx(tx) as t:
            statement = (
                update(m)
                .where(m.c.status.in_(("active", "frozen")), m.c.ends_on < values["as_of"])
                .values(status="expired")
            )
            count = t.session.connection().execute(statement).rowcount
            for obj in list(t.session.identity_map.values()):
                if isinstance(obj, Membership):
                    t.session.expire(obj, ["status"])
            return int(count)

    # -- personal training, trainers, classes --------------------------------------------------------------

    def sell_pt_package(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        """Sell a personal-training package: the package with all its sessions left and a ``purchase``
        activity dated noon UTC of ``purchased_on``. A ``pt_session`` activity then uses one of its sessions
        (the package named in its ``data.package_id``, or the one valid that day that expires first)."""
        values = load(PTPackageIn(), data, message="invalid package")
        with self._tx(tx) as t:
            errors: dict[str, list[str]] = {}
            self._customer(t.session, values["customer_id"], "invalid package", errors=errors)
            self._row(t.session, Trainer, values["trainer_id"], "trainer_id", "trainer", errors)
            self._user(t.session, values["owner_id"], "owner_id", errors)
            if errors:
                raise ValidationError(errors, "invalid package")
            package = PTPackage(
                customer_id=values["customer_id"],
                trainer_id=values["trainer_id"],
                sessions_total=values["sessions"],
                sessions_left=values["sessions"],
                purchased_on=values["purchased_on"],
                expires_on=values["expires_on"],
            )
            t.session.add(package)
            t.session.flush()
            self._crm.activities.log(
                {
                    "customer_id": values["customer_id"],
                    "kind": "purchase",
                    "amount": str(values["price"]),
                    "currency": values["currency"],
                    "subject": f"Personal training: {values['sessions']} sessions",
                    "occurred_at": _noon(values["purchased_on"]).isoformat(),
                    "owner_id": values["owner_id"],
                    "data": {"pt_package_id": package.id},
                },
                tx=t,
            )
            return package.id

    def add_trainer(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        values = load(TrainerIn(), data, message="invalid trainer")
        with self._tx(tx) as t:
            errors: dict[str, list[str]] = {}
            self._user(t.session, values["user_id"], "user_id", errors)
            if errors:
                raise ValidationError(errors, "invalid trainer")
            trainer = Trainer(**values)
            t.session.add(trainer)
            t.session.flush()
            return trainer.id

    def add_class(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> int:
        values = load(ClassIn(), data, message="invalid class")
        with self._tx(tx) as t:
            errors: dict[str, list[str]] = {}
            self._row(t.session, Trainer, values["trainer_id"], "trainer_id", "trainer", errors)
            if errors:
                raise ValidationError(errors, "invalid class")
            gym_class = GymClass(**values)
            t.session.add(gym_class)
            t.session.flush()
            return gym_class.id

    # -- reads ---------------------------------------------------------------------------------------------

    def memberships(self, customer_id: int) -> list[dict[str, Any]]:
        key = require_id(customer_id, "customer", bits=64)
        with self._crm.session() as s:
            rows = s.scalars(
                select(Membership).where(Membership.customer_id == key).order_by(Membership.starts_on, Membership.id)
            )
            return [
                {
                    "id": m.id,
                    "plan_id": m.plan_id,
                    "starts_on": m.starts_on,
                    "ends_on": m.ends_on,
                    "status": m.status,
                    "sessions_left": m.sessions_left,
                    "freeze_days_used": m.freeze_days_used,
                    "frozen_from": m.frozen_from,
                    "frozen_until": m.frozen_until,
                    "cancel_reason": m.cancel_reason,
                    "cancelled_on": m.cancelled_on,
                }
                for m in rows
            ]

    def pt_packages(self, customer_id: int) -> list[dict[str, Any]]:
        key = require_id(customer_id, "customer", bits=64)
        with self._crm.session() as s:
            rows = s.scalars(
                select(PTPackage).where(PTPackage.customer_id == key).order_by(PTPackage.purchased_on, PTPackage.id)
            )
            return [
                {
                    "id": p.id,
                    "trainer_id": p.trainer_id,
                    "sessions_total": p.sessions_total,
                    "sessions_left": p.sessions_left,
                    "purchased_on": p.purchased_on,
                    "expires_on": p.expires_on,
                }
                for p in rows
            ]

    # -- helpers -------------------------------------------------------------------------------------------

    @staticmethod
    def _membership(session: Session, membership_id: int) -> Membership:
        membership = session.get(Membership, membership_id, with_for_update=True)
        if membership is None:
            raise NotFound("membership", membership_id)
        return membership

    @staticmethod
    def _customer(
        session: Session, customer_id: int, message: str, *, errors: dict[str, list[str]] | None = None
    ) -> Customer | None:
        """The customer, locked until the transaction ends (a sale and a move, or two renewals, queue on it)."""
        customer = session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            problem = [f"no customer with id {customer_id}"]
            if errors is None:
                raise ValidationError({"customer_id": problem}, message)
            errors["customer_id"] = problem
        return customer

    @staticmethod
    def _row(
        session: Session, model: type, key: int | None, field: str, what: str, errors: dict[str, list[str]]
    ) -> None:
        if key is not None and session.get(model, key) is None:
            errors[field] = [f"no {what} with id {key}"]

    @staticmethod
    def _user(session: Session, key: int | None, field: str, errors: dict[str, list[str]]) -> None:
        if key is not None and session.get(User, key) is None:
            errors[field] = [f"no user with id {key}"]


def fitness(crm: CRM) -> Fitness:
    return Fitness(crm)
