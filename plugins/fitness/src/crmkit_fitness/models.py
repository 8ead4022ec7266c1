"""The fitness tables: plans, memberships, trainers, classes, personal-training packages.

Check-ins are not here: they are core activities of kind ``checkin`` (with the club, the door and the
class in their data), so the core's activity aggregates, triggers and bulk ingest work on them as is.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from marshmallow import validate
from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db import Base, UTCDateTime, utcnow

MEMBERSHIP_STATUSES = ("active", "frozen", "expired", "cancelled")
#: Ten years: the longest plan, freeze or package a club sells.
MAX_DAYS = 3660


def _limits(**kwargs: object) -> dict[str, object]:
    """What ``crm.table(...)`` checks beyond the column's type (see ``crmkit.tables``)."""
    return {"crmkit": kwargs}


_NAMED = _limits(min_length=1)


class Plan(Base):
    """A membership plan: how long, how much, how many sessions (None = unlimited), how many freeze days."""

    __tablename__ = "fitness_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, info=_NAMED)
    duration_days: Mapped[int] = mapped_column(info=_limits(min=1, max=MAX_DAYS))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), info=_limits(validate=validate.Range(min=0)))
    currency: Mapped[str] = mapped_column(
        String(3),
        default="EUR",
        info=_limits(validate=validate.Regexp(r"^[A-Z]{3}$", error="must be 3 capital letters")),
    )
    sessions: Mapped[int | None] = mapped_column(info=_limits(min=1))
    freeze_days: Mapped[int] = mapped_column(default=0, info=_limits(min=0, max=MAX_DAYS))
    active: Mapped[bool] = mapped_column(default=True)


class Membership(Base):
    """A member's membership: its period, status, sessions balance and freezes."""

    __tablename__ = "fitness_memberships"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'frozen', 'expired', 'cancelled')", name="status_valid"),
        Index("ix_fitness_memberships_customer_ends", "customer_id", "ends_on"),
        Index("ix_fitness_memberships_status_ends", "status", "ends_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("fitness_plans.id"))
    starts_on: Mapped[dt.date]
    ends_on: Mapped[dt.date]
    status: Mapped[str] = mapped_column(String(20), default="active")
    sessions_left: Mapped[int | None]
    freeze_days_used: Mapped[int] = mapped_column(default=0)
    frozen_from: Mapped[dt.date | None]
    frozen_until: Mapped[dt.date | None]
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    #: Why and from when the club cancelled it (``Fitness.cancel``); both empty unless ``status`` is cancelled.
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    cancelled_on: Mapped[dt.date | None]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Trainer(Base):
    """A trainer; linked to a staff user when they use the CRM themselves."""

    __tablename__ = "fitness_trainers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), info=_NAMED)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))
    speciality: Mapped[str | None] = mapped_column(String(100))


class GymClass(Base):
    """A scheduled class (weekly slot) with its trainer and capacity."""

    __tablename__ = "fitness_classes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), info=_NAMED)
    trainer_id: Mapped[int | None] = mapped_column(ForeignKey("fitness_trainers.id", ondelete="SET NULL"))
    club: Mapped[str] = mapped_column(String(100), info=_NAMED)
    #: 0 = Monday ... 6 = Sunday, as in the attendance report.
    weekday: Mapped[int] = mapped_column(info=_limits(min=0, max=6))
    starts_at: Mapped[dt.time]
    duration_min: Mapped[int] = mapped_column(default=60, info=_limits(min=1, max=24 * 60))
    capacity: Mapped[int] = mapped_column(default=20, info=_limits(min=1, max=10_000))


class PTPackage(Base):
    """A personal-training package and its remaining sessions."""

    __tablename__ = "fitness_pt_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"), index=True)
    trainer_id: Mapped[int | None] = mapped_column(ForeignKey("fitness_trainers.id", ondelete="SET NULL"))
    sessions_total: Mapped[int]
    sessions_left: Mapped[int]
    purchased_on: Mapped[dt.date]
    expires_on: Mapped[dt.date | None]


MODELS = (Plan, Membership, Trainer, GymClass, PTPackage)
