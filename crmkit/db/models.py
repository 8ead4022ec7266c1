"""The core's tables, as SQLAlchemy 2 typed models.

Plugin models are built on the same :class:`Base` so relationships to :class:`Customer` resolve, but a
table only reaches the database when its plugin is loaded into a ``CRM`` (see ``crmkit.db.schema``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmkit.db.types import BigId, JSONData, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_ROLES = ("admin", "manager", "operator", "viewer")
#: An activity's status, set when it is logged (``done`` unless given):
#:
#: * ``planned``: booked ahead, not happened yet (a meeting next Monday); needs no ``result``; occupies its
#:   owner's calendar; the status :meth:`TriggerQuery.planned <crmkit.triggers.TriggerQuery.planned>` looks for.
#: * ``in_progress``: under way now; occupies the calendar.
#: * ``done``: it happened. The core's only status that counts as happened: triggers' activity aggregates
#:   (``q.count``, ``q.has``, ``q.last``, ``q.total``, ``q.aggregate``, ``q.cadence``, unless given
#:   ``statuses=``), a trigger's goal, and every KPI count the statuses declared happened
#:   (``crm.registry.happened``: ``done`` and those plugins declare so). Occupies the calendar.
#: * ``cancelled``: called off; frees the calendar; never counts.
#: * ``missed``: was due and did not happen (a no-show); frees the calendar; never counts as happened (a
#:   trigger can look for it with ``statuses=("missed",)``).
#:
#: Plugins declare more with ``crmkit_register_activity_statuses`` (``crm.registry.activity_statuses``).
ACTIVITY_STATUSES = ("planned", "in_progress", "done", "cancelled", "missed")
ACTIVITY_DIRECTIONS = ("inbound", "outbound", "internal")
TASK_STATUSES = ("open", "done", "cancelled")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # SQLAlchemy types __table__ as FromClause because a class may be mapped to a SELECT; every crmkit and
    # plugin model maps a Table, and saying so lets Core code use Model.__table__ without a cast.
    __table__: ClassVar[Table]


def _in(column: str, values: tuple[str, ...]) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=f"{column}_valid")


class User(Base):
    """A member of staff: owns customers, logs activities, gets tasks."""

    __tablename__ = "crm_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="operator")
    branch: Mapped[str | None] = mapped_column(String(100), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserBranch(Base):
    """A branch a user works in besides their home ``branch``: a role scoped to ``branches`` reaches the
    customers of all of them."""

    __tablename__ = "crm_user_branches"

    user_id: Mapped[int] = mapped_column(ForeignKey("crm_users.id", ondelete="CASCADE"), primary_key=True)
    branch: Mapped[str] = mapped_column(String(100), primary_key=True)


class Customer(Base):
    """One customer record for the whole company. Email and phone are kept as entered and normalised."""

    __tablename__ = "crm_customers"
    __table_args__ = (
        Index("ix_crm_customers_stage", "stage"),
        Index("ix_crm_customers_lifecycle_created", "lifecycle", "created_at"),
        Index("ix_crm_customers_owner_id", "owner_id"),
        # never reuse the id of a merged or erased customer: crm_merges and audit trails point at it
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    email_normalized: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(50))
    phone_normalized: Mapped[str | None] = mapped_column(String(20), index=True)
    birthday: Mapped[dt.date | None]
    source: Mapped[str | None] = mapped_column(String(100), index=True)
    campaign: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))
    branch: Mapped[str | None] = mapped_column(String(100), index=True)
    #: ISO 3166 alpha-2 country of the customer: the region their phone number is read in.
    country: Mapped[str | None] = mapped_column(String(2))
    stage: Mapped[str] = mapped_column(String(48))
    lifecycle: Mapped[str] = mapped_column(String(16))
    stage_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)


CLAIM_KINDS = ("email", "phone")


class CustomerClaim(Base):
    """A lock row per normalised email or phone: every write that sets one upserts its row first.

    Two concurrent writers of the same value queue on this row (``INSERT ... ON CONFLICT DO UPDATE`` takes
    its lock), so the duplicate check that follows sees the other's customer once it has committed. Keyed by
    the value, not the customer (see the architecture notes on scaling out); ``customer_id`` is the last
    writer, informative only.
    """

    __tablename__ = "crm_customer_claims"
    __table_args__ = (_in("kind", CLAIM_KINDS), Index("ix_crm_customer_claims_customer_id", "customer_id"))

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId)


class Contact(Base):
    """A person at a customer (the buyer's spouse, a company's office manager)."""

    __tablename__ = "crm_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StageHistory(Base):
    """Append-only: every lifecycle move with its time, cause and actor."""

    __tablename__ = "crm_stage_history"
    __table_args__ = (Index("ix_crm_stage_history_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(48))
    to_stage: Mapped[str] = mapped_column(String(48))
    to_lifecycle: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    cause: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))


class Activity(Base):
    """Something that happened with a customer, or is scheduled to: a call, a visit, a payment."""

    __tablename__ = "crm_activities"
    # no check on status: plugins declare statuses of their own (crmkit_register_activity_statuses), checked
    # on input against the declarations
    __table_args__ = (
        Index("ix_crm_activities_customer_kind_at", "customer_id", "kind", "occurred_at"),
        Index("ix_crm_activities_owner_at", "owner_id", "occurred_at"),
        Index("ix_crm_activities_kind_at", "kind", "occurred_at"),
        # the idempotency key: an event from an integration is stored once per customer, however often it
        # is sent; rows without an external id (NULL) never clash
        Index("uq_crm_activities_source_key", "customer_id", "source", "external_id", unique=True),
        # only imported activities are looked up by import (to revert one): the others stay out of the index
        Index(
            "ix_crm_activities_import_id",
            "import_id",
            postgresql_where=text("import_id IS NOT NULL"),
            sqlite_where=text("import_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(48))
    channel: Mapped[str | None] = mapped_column(String(20))
    direction: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="done")
    subject: Mapped[str | None] = mapped_column(String(300))
    result: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    duration_min: Mapped[int | None]
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    #: Where the activity came from (``turnstile``, ``pbx``...) and its id there: the idempotency key.
    source: Mapped[str | None] = mapped_column(String(100))
    external_id: Mapped[str | None] = mapped_column(String(200))
    #: The import that stored the activity (``crm_imports.id``), so that reverting the import removes it.
    import_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Task(Base):
    """Something a member of staff should do, by when, and why."""

    __tablename__ = "crm_tasks"
    __table_args__ = (
        _in("status", TASK_STATUSES),
        Index("ix_crm_tasks_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_crm_tasks_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    remind_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    priority: Mapped[int] = mapped_column(default=0)
    source: Mapped[str | None] = mapped_column(String(100))
    source_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Merge(Base):
    """A record of a merge: which duplicate went into which survivor, with the duplicate's last state."""

    __tablename__ = "crm_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"), index=True)
    merged_id: Mapped[int] = mapped_column(index=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONData)
    moved: Mapped[dict[str, Any]] = mapped_column(JSONData)
    #: The duplicate's stage history, kept here so the survivor's own timeline stays its own.
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONData, default=list)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomField(Base):
    """A field an admin added at run time; its values live in ``crm_customers.extra``."""

    __tablename__ = "crm_custom_fields"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(48))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONData)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TriggerRun(Base):
    """One evaluation of the triggers, for the record and for backfills."""

    __tablename__ = "crm_trigger_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)


class TriggerFiring(Base):
    """A trigger matched a customer. The unique key (trigger, customer, cooldown window) makes a repeated
    or concurrent run fire nothing twice."""

    __tablename__ = "crm_trigger_firings"
    __table_args__ = (
        UniqueConstraint("trigger", "customer_id", "window_key"),
        Index("ix_crm_trigger_firings_trigger_customer_as_of", "trigger", "customer_id", "as_of"),
        Index("ix_crm_trigger_firings_run_id", "run_id", "trigger"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))
    window_key: Mapped[int] = mapped_column(BigId)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    goal_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    held_out: Mapped[bool] = mapped_column(default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crm_trigger_runs.id", ondelete="SET NULL"))
    #: What the contact policy made of the firing's message: ``sent`` (queued at once), ``held`` (queued for
    #: ``send_at``, after the customer's quiet hours), ``task`` (refused, given to staff as a task) or
    #: ``dropped``; ``None`` for a trigger without a message, or a held-out firing.
    contact: Mapped[str | None] = mapped_column(String(10))
    #: Why a message was held, moved to a task or dropped.
    contact_reason: Mapped[str | None] = mapped_column(String(200))
    send_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """A message waiting to leave the system; delivered after the transaction that wrote it commits."""

    __tablename__ = "crm_outbox"
    __table_args__ = (
        Index("ix_crm_outbox_status_id", "status", "id"),
        Index("ix_crm_outbox_customer_due", "customer_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(100))
    source_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    #: Not handed to a gateway before this time (backoff after a failed attempt); NULL means at once.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: A deliverer claimed the message until then; past it, the claim has lapsed (the deliverer died).
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: ``marketing``, ``service`` or ``reminders`` (:data:`CONSENT_PURPOSES`): what the contact policy and
    #: consent judge a message by; ``None`` for a message the policy does not apply to (a staff alert)
    purpose: Mapped[str | None] = mapped_column(String(20))
    #: When the message is meant to reach the customer: the trigger run's moment, the end of their quiet
    #: hours for a held one, the time of a manual one. The contact policy's caps count messages by it.
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


TARGET_METRICS = ("contacts", "meetings", "deals")


class Target(Base):
    """A plan for one member of staff: how many contacts, meetings or deals in a period."""

    __tablename__ = "crm_targets"
    __table_args__ = (
        UniqueConstraint("user_id", "metric", "period_start"),
        _in("metric", TARGET_METRICS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("crm_users.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    planned: Mapped[int]


IMPORT_STATUSES = ("running", "done", "failed", "reverted")
#: ``unchanged``: the line matched a customer it had nothing to change on (kept, so that a later line of the
#: same import with that customer's key is a duplicate of it, on a rerun as on the first run)
IMPORT_ACTIONS = ("created", "updated", "unchanged")


class ImportRun(Base):
    """One import of a file: who ran it, what it read, how it mapped it and what it did."""

    __tablename__ = "crm_imports"
    __table_args__ = (_in("status", IMPORT_STATUSES),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: ``customers`` or the name of a plugin's importer
    importer: Mapped[str] = mapped_column(String(100))
    source_name: Mapped[str] = mapped_column(String(300))
    format: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(10))
    #: the mapping, match keys and parsing options the import ran with
    settings: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reverted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reverted_by: Mapped[int | None] = mapped_column(ForeignKey("crm_users.id", ondelete="SET NULL"))


class ImportChange(Base):
    """What an import did to one customer: created it, changed some fields (``before`` and ``after`` hold
    those fields' values, as the read model gives them) or found nothing to change, so that the import can
    be reverted."""

    __tablename__ = "crm_import_changes"
    __table_args__ = (_in("action", IMPORT_ACTIONS), Index("ix_crm_import_changes_import_id", "import_id"))

    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"), primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("crm_imports.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int]
    action: Mapped[str] = mapped_column(String(10))
    before: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)


class CustomerKey(Base):
    """A customer's id in another system (a former CRM, a club management system): an import matches on
    it. Keyed by the value, as a claim is, so one external id names one customer."""

    __tablename__ = "crm_customer_keys"
    __table_args__ = (Index("ix_crm_customer_keys_customer_id", "customer_id"),)

    system: Mapped[str] = mapped_column(String(100), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"))


class AuditEntry(Base):
    """One entry of the audit log: who did what to which record, when, and for an update each field's old
    and new value (``changes``, canonical JSON text). Entries form one hash chain per customer; entries
    about no customer (users, fields, a batch of an import or an ingest) form the chain of customer ``0``.
    No foreign key: the log outlives the rows it tells about (a reverted import's customers, a merged
    duplicate)."""

    __tablename__ = "crm_audit"
    __table_args__ = (
        Index("ix_crm_audit_user_id_at", "user_id", "at"),
        Index("ix_crm_audit_at", "at"),
    )

    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: the actor's name: ``user 7``, a system actor's (``triggers``), or ``application``
    actor: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str | None] = mapped_column(String(100))
    changes: Mapped[str] = mapped_column(Text)
    #: SHA-256 of ``changes`` as written; kept when an erasure blanks the personal values in it
    digest: Mapped[str] = mapped_column(String(64))
    redacted: Mapped[bool] = mapped_column(default=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Suppression(Base):
    """A person whose data was erased, kept as a keyed hash of their normalised email or phone so that a
    later create or import of the same person is refused without keeping who they were. Keyed by the
    value, as a claim is."""

    __tablename__ = "crm_suppressions"
    __table_args__ = (_in("kind", CLAIM_KINDS),)

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    #: HMAC-SHA256 of the normalised value under the CRM's privacy key, hex
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: the erased customer (its record stays, anonymised); informative only
    customer_id: Mapped[int] = mapped_column(BigId)


#: Why a customer may be contacted: offers (``marketing``), their own membership or bookings (``service``),
#: reminders of what they booked (``reminders``).
CONSENT_PURPOSES = ("marketing", "service", "reminders")
CONSENT_STATUSES = ("given", "withdrawn")


class Consent(Base):
    """One change of a customer's consent to be contacted on a channel for a purpose: given (with where it
    was given and until when) or withdrawn. Append-only: the consent at a moment is the latest change
    before it, so the history answers "could we contact them then?"."""

    __tablename__ = "crm_consents"
    __table_args__ = (_in("purpose", CONSENT_PURPOSES), _in("status", CONSENT_STATUSES))

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customers.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    #: where and how it was given or withdrawn: ``web form``, ``front desk``, ``unsubscribe link``
    source: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))


CORE_TABLES = tuple(Base.metadata.sorted_tables)
