"""Activities: log one, ingest many with set-based inserts, and detect calendar conflicts."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import chain, islice
from operator import itemgetter
from typing import Any

import attrs
from sqlalchemy import ColumnElement, Dialect, and_, select
from sqlalchemy.exc import IntegrityError

from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.db import driver, statistics
from crmkit.db.bulk import BulkInsert
from crmkit.db.functions import among, upsert_insert
from crmkit.db.models import Activity, Contact, Customer, User
from crmkit.db.types import UTCDateTime, utcnow
from crmkit.errors import CalendarConflictError, NotFound, ValidationError
from crmkit.fastpath import Checker, activity_checker, activity_fast_check
from crmkit.fastrows import Dumper, dumper
from crmkit.hooks import Hooks
from crmkit.limits import Moment, Text, check, id_filter, require_id
from crmkit.listing import Listing, Searchable, customer_scope, mask
from crmkit.personal import ACTIVITY_PERSONAL
from crmkit.schemas import Schemas, load
from crmkit.searches import activity_listing
from crmkit.specs import CORE_ACTIVITY_STATUSES, ActivityKindSpec, ActivityStatusSpec
from crmkit.unit import Transaction, Units

#: Rows an ingest commits at a time (see ``Activities.ingest``): large enough that the commits cost little,
#: small enough that a killed ingest loses little and the other writers wait at most a piece.
COMMIT_EVERY = 50_000
#: How long a calendar activity lasts when no duration is given.
DEFAULT_CALENDAR_MINUTES = 60
_COLUMNS = (
    "customer_id",
    "contact_id",
    "kind",
    "channel",
    "direction",
    "status",
    "subject",
    "result",
    "occurred_at",
    "ends_at",
    "duration_min",
    "amount",
    "currency",
    "owner_id",
    "data",
    "source",
    "external_id",
)
_INSERT_COLUMNS = (*_COLUMNS, "created_at", "import_id")
#: What ``log`` inserts: one activity from the app, never part of an import.
_LOG_COLUMNS = (*_COLUMNS, "created_at")
#: The columns of an ingested row's driver values that the reference check and the hook look at.
_CUSTOMER, _CONTACT, _OWNER, _KIND, _EXTERNAL = (
    itemgetter(_INSERT_COLUMNS.index(name)) for name in ("customer_id", "contact_id", "owner_id", "kind", "external_id")
)
#: The idempotency key: the columns of the unique index ``uq_crm_activities_source_key``.
_KEY_COLUMNS = ("customer_id", "source", "external_id")
_EXTERNAL_AT = _INSERT_COLUMNS.index("external_id")
_KEY = itemgetter(*(_INSERT_COLUMNS.index(name) for name in _KEY_COLUMNS))
#: What the ``crmkit_activities_ingested`` hook is told about each stored row.
_RECORD_COLUMNS = tuple(c for c in _INSERT_COLUMNS if c not in ("created_at", "import_id"))
#: Ids per ``IN (...)`` of the reference check, well under SQLite's limit of bound parameters.
_IN_CHUNK = 10_000
#: A kind name as a filter: what the column could hold (a NUL is a driver error on PostgreSQL).
_KIND_NAME = Text(max_length=48)
_CENT = Decimal("0.01")
#: The PostgreSQL advisory lock keyed ingests take turns on: one per schema (one per CRM).
_KEYED_INGEST_LOCK = "SELECT pg_advisory_xact_lock(1668442475, hashtext(current_schema()))"


@attrs.frozen
class RowError:
    """One rejected input row: its position in the input (0-based) and what is wrong with it."""

    index: int
    errors: dict[str, Any]


@attrs.frozen
class IngestReport:
    """What a bulk ingest did: how many rows went in, every rejected row with its reason, and how many rows
    were skipped because an activity with their idempotency key (customer, source, external id) was
    already stored (by an earlier call, a concurrent one, or an earlier row of this call).

    ``inserted + skipped + len(rejected)`` is always the number of input rows.
    """

    inserted: int
    rejected: tuple[RowError, ...]
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def to_dict(self) -> dict[str, Any]:
        """The report in the read model: ``{"inserted", "skipped", "rejected": [{"index", "errors"}]}``."""
        return {
            "inserted": self.inserted,
            "skipped": self.skipped,
            "rejected": [attrs.asdict(r) for r in self.rejected],
        }


#: What the audit entry of a logged activity tells of it (its notes and result may hold anything).
_AUDITED = ("kind", "status", "occurred_at", "owner_id", "contact_id", "source", "external_id")


class Activities(Searchable):
    """``crm.activities``."""

    _read_permission = "activities:read"

    def __init__(
        self,
        *,
        kinds: Mapping[str, ActivityKindSpec],
        schemas: Schemas,
        hooks: Hooks,
        units: Units,
        access: Access,
        audit: Audit,
        statuses: Mapping[str, ActivityStatusSpec] | None = None,
    ) -> None:
        self._access = access
        self._audit = audit
        self._kinds = kinds
        declared = statuses or {s.name: s for s in CORE_ACTIVITY_STATUSES}
        #: the declared statuses, and those that occupy a calendar kind's owner
        self._statuses = tuple(declared)
        self._busy = tuple(name for name, s in declared.items() if not s.frees_calendar)
        self._schemas = schemas
        self._hooks = hooks
        self._units = units
        self._writers: dict[Dialect, _RowWriter] = {}
        self._fast: Checker | None = None
        self._log_inserts: dict[Dialect, tuple[str, tuple[driver.Processor | None, ...]]] = {}
        self._dump_for: object = None
        self._dumper: Dumper = dict

    def log(
        self,
        data: Mapping[str, Any],
        *,
        allow_conflict: bool = False,
        actor_id: int | None = None,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Validate and record one activity.

        ``status`` is ``done`` (it happened) unless given: ``planned`` (booked ahead, no ``result`` needed),
        ``in_progress``, ``cancelled`` or ``missed`` (a no-show). It is set here, once; only ``done``
        activities count as happened for triggers, goals and KPIs.

        A calendar kind (meeting, visit...) that overlaps another calendar activity of the same owner
        raises ``CalendarConflictError`` unless ``allow_conflict``.

        An activity with an idempotency key (``source`` and ``external_id``) that the customer already has
        is not recorded again: the stored activity is returned unchanged, nothing is written and no hook is
        called. An integration may deliver the same event twice, or two workers may deliver it at once;
        either way it is stored once.
        """
        self._access.require("activities:write", tx)
        out = self._schemas.activity_out
        values = self._load(data)
        kind = self._kinds[values["kind"]]
        keyed = values["external_id"] is not None
        calendar = kind.calendar and not allow_conflict and values.get("owner_id") and values["status"] in self._busy
        with self._units.write(tx, actor_id) as t:
            if keyed or calendar or values["contact_id"] is not None or values["owner_id"] is not None:
                self._check_references(t.session, [values])  # the customer too, before anything else is said
            stored = self._by_key(t.session, values) if keyed else None
            if stored is not None:
                return out.dump(stored)
            if calendar:
                clashes = self._overlapping(t.session, values["owner_id"], values["occurred_at"], values["ends_at"])
                if clashes:
                    raise CalendarConflictError(values["owner_id"], clashes)
            if keyed:
                activity = self._insert_new(t.session, values)
                if activity is None:  # a concurrent writer stored the same key after our look-up
                    stored = self._by_key(t.session, values)
                    assert stored is not None
                    return out.dump(stored)
                record = out.dump(activity)
            else:
                record = self._insert(t, values)
            self._hooks.activity_logged(t, record)
            told = {key: record.get(key) for key in _AUDITED if record.get(key) is not None}
            self._audit.record(
                t, "activity.logged", "activity", entity_id=record["id"], customer_id=record["customer_id"],
                changes=told, user_id=actor_id,
            )  # fmt: skip
            return record

    def _load(self, data: Any) -> dict[str, Any]:
        """``data`` validated: by the fast check when it is typed (see :mod:`crmkit.fastpath`), else by
        marshmallow; with the defaults of every column."""
        if self._fast is None:
            self._fast = activity_checker(self._kinds, self._statuses)
        values = self._fast(data)
        if values is None:
            values = load(self._schemas.activity_in, data, message="invalid activity")
        return self._prepare(values)

    def _insert(self, t: Transaction, values: dict[str, Any]) -> dict[str, Any]:
        """Insert an activity without an idempotency key on the driver's cursor (see :mod:`crmkit.db.driver`)
        and return its record. The customer is checked by its foreign key, in the same statement: a
        missing one fails it, which is worded as the reference check words it (the contact and the owner
        were checked before, so the customer is the only reference left)."""
        cur = driver.cursor(t.session)
        sql, binders = self._log_insert(cur)
        row = {**values, "created_at": utcnow()}
        try:
            found = cur.one(sql, driver.convert(binders, [row[c] for c in _LOG_COLUMNS]))
        except IntegrityError:
            customer_id = row["customer_id"]
            raise ValidationError({"customer_id": [f"no customer with id {customer_id}"]}, "invalid activity") from None
        assert found is not None
        for column in ("occurred_at", "ends_at"):  # stored in UTC, and read back so
            if row[column] is not None:
                row[column] = row[column].astimezone(dt.UTC)
        return self._dump({"id": found[0], **row})

    def _log_insert(self, cur: driver.Cursor) -> tuple[str, tuple[driver.Processor | None, ...]]:
        dialect = cur.dialect
        if dialect not in self._log_inserts:
            table: Any = Activity.__table__
            columns = ", ".join(_LOG_COLUMNS)
            sql = f"INSERT INTO {table.name} ({columns}) VALUES ({driver.placeholders(dialect, len(_LOG_COLUMNS))})"
            self._log_inserts[dialect] = sql + " RETURNING id", driver.binders(table, _LOG_COLUMNS, dialect)
        return self._log_inserts[dialect]

    def _dump(self, record: Mapping[str, Any]) -> dict[str, Any]:
        schema = self._schemas.activity_out
        if self._dump_for is not schema:
            self._dumper = dumper(schema)
            self._dump_for = schema
        return self._dumper(record)

    def ingest(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 5000,
        commit_every: int | None = COMMIT_EVERY,
        all_or_nothing: bool = False,
        import_id: int | None = None,
        tx: Transaction | None = None,
    ) -> IngestReport:
        """Insert many activities (check-ins from a turnstile, calls from a PBX).

        Rows are validated one by one, checked against existing customers, contacts and owners one batch
        at a time, and inserted with one multi-row ``INSERT`` per batch. Bad rows are reported with their
        index and reason; the good ones are kept. Calendar conflicts are not checked: ingestion records
        what already happened.

        Without ``tx``, the rows are committed in pieces of ``commit_every`` rows (rounded up to whole batches;
        fewer when a piece has held the write lock for two seconds, see :class:`crmkit.unit.Chunks`), so the
        other writers of the database (the front desk) go in between, and an interrupted ingest keeps the
        pieces it committed. ``commit_every=None`` writes everything in one transaction. With ``tx`` the
        rows join the caller's unit of work and commit with it. With ``all_or_nothing`` any bad row means
        nothing is written (one transaction) and ``ValidationError`` lists them all.

        Rows whose values already have their types (ints, aware datetimes, plain strings, data of the
        kind's declared types) are checked without marshmallow and go in several times faster; any other
        row goes through marshmallow. Both ways accept, reject and store exactly the same (see
        ``crmkit.fastpath``).

        A row with an idempotency key (``source`` and ``external_id``) is stored only if the customer has
        no activity with that key yet (``INSERT ... ON CONFLICT DO NOTHING``, which also holds against a
        concurrent ingest of the same rows); otherwise it counts as ``skipped``. So an ingest can be run
        again after a crash, or run twice by mistake, without storing anything twice. On PostgreSQL
        ingests with keyed rows take turns (an advisory lock held until the transaction ends). The hook
        ``crmkit_activities_ingested`` is told about the rows stored, never about skipped ones.

        ``import_id`` marks the rows as stored by that import (``crm.imports``), which can then revert it.
        Once an ingest of many rows has committed, PostgreSQL's statistics of the table are refreshed
        (:mod:`crmkit.db.statistics`).
        """
        self._access.require("activities:write", tx)
        if commit_every is not None and (not isinstance(commit_every, int) or commit_every < 1):
            raise ValidationError({"commit_every": ["must be a positive number of rows or None"]}, "invalid ingest")
        run = _IngestRun(self, import_id, all_or_nothing)
        batches = _batches(rows, batch_size)
        if tx is not None or all_or_nothing or commit_every is None:
            with self._units.write(tx) as t:
                run.take(t, batches)
                if all_or_nothing and run.rejected:
                    raise ValidationError(
                        {str(r.index): r.errors for r in run.rejected},
                        f"{len(run.rejected)} rows rejected, nothing written",
                    )
                t.after_commit(run.refresh_statistics)
        else:
            chunks = self._units.chunks()
            more = True
            while more:
                chunks.step_aside(lambda: run.prepare_one(batches))  # on SQLite: the next rows, while others write
                with chunks.unit() as t:
                    more = run.take(t, batches, limit=commit_every, due=chunks.due)
            run.refresh_statistics()
        run.rejected.sort(key=lambda r: r.index)
        return IngestReport(run.inserted, tuple(run.rejected), run.skipped)

    def get(self, activity_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        """The activity; ``NotFound`` also for one about a customer the acting user does not reach."""
        actor = self._access.require("activities:read", tx)
        activity_id = require_id(activity_id, "activity", bits=64)
        with self._units.read(tx) as s:
            query = select(Activity).where(Activity.id == activity_id, *self._reached(actor))
            activity = s.scalars(query).one_or_none()
            if activity is None:
                raise NotFound("activity", activity_id)
            return self._shown(actor, [self._schemas.activity_out.dump(activity)])[0]

    def for_customer(
        self,
        customer_id: int,
        *,
        kinds: Iterable[str] | None = None,
        limit: int = 100,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """A customer's activities, newest first (none for a customer the acting user does not reach)."""
        actor = self._access.require("activities:read", tx)
        if id_filter(customer_id, "customer") is None:
            return []
        query = select(Activity).where(Activity.customer_id == customer_id, *self._reached(actor))
        if kinds is not None:
            wanted = [check(_KIND_NAME, kind, "kinds", "invalid filter") for kind in kinds]
            query = query.where(Activity.kind.in_(wanted))
        query = query.order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(limit)
        with self._units.read(tx) as s:
            return self._shown(actor, self._schemas.activity_out.dump(s.scalars(query), many=True))

    def conflicts(
        self,
        owner_id: int,
        start: dt.datetime,
        end: dt.datetime,
        *,
        exclude_id: int | None = None,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """Calendar activities of ``owner_id`` that overlap ``[start, end)``."""
        self._access.require("activities:read", tx)
        start, end = (
            check(Moment(), value, name, "invalid period") for value, name in ((start, "start"), (end, "end"))
        )
        if id_filter(owner_id, "owner") is None:
            return []
        with self._units.read(tx) as s:
            ids = self._overlapping(s, owner_id, start, end, exclude_id=exclude_id)
            rows = s.scalars(select(Activity).where(Activity.id.in_(ids)).order_by(Activity.occurred_at))
            return self._schemas.activity_out.dump(rows, many=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _prepare(self, values: dict[str, Any]) -> dict[str, Any]:
        kind = self._kinds[values["kind"]]
        values["occurred_at"] = values.get("occurred_at") or utcnow()
        if values.get("channel") is None:
            values["channel"] = kind.channel
        values["ends_at"] = _ends_at(kind, values["occurred_at"], values.get("duration_min"))
        # every row carries every column, so a batch has one statement shape
        return {column: values.get(column) for column in _COLUMNS}

    def _by_key(self, session: Any, values: Mapping[str, Any]) -> Activity | None:
        return session.scalars(
            select(Activity).where(*(getattr(Activity, c) == values[c] for c in _KEY_COLUMNS))
        ).one_or_none()

    def _insert_new(self, session: Any, values: Mapping[str, Any]) -> Activity | None:
        """Insert a keyed activity unless its key is stored, committed or by a concurrent transaction (whose
        end PostgreSQL waits for); the new activity, or ``None`` when the key was taken."""
        insert = upsert_insert(session)
        statement = (
            insert(Activity)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(_KEY_COLUMNS))
            .returning(Activity.id)
        )
        new_id = session.execute(statement).scalar_one_or_none()
        return None if new_id is None else session.get(Activity, new_id)

    def _writer(self, dialect: Dialect) -> _RowWriter:
        if dialect not in self._writers:
            self._writers[dialect] = _RowWriter(self, dialect)
        return self._writers[dialect]

    def _overlapping(
        self, session: Any, owner_id: int, start: dt.datetime, end: dt.datetime | None, exclude_id: int | None = None
    ) -> list[int]:
        calendar_kinds = [k.name for k in self._kinds.values() if k.calendar]
        end = end or start
        query = select(Activity.id).where(
            Activity.owner_id == owner_id,
            Activity.kind.in_(calendar_kinds),
            Activity.status.in_(self._busy),
            and_(Activity.occurred_at < end, Activity.ends_at > start),
        )
        if exclude_id is not None:
            query = query.where(Activity.id != exclude_id)
        return list(session.scalars(query.order_by(Activity.occurred_at)))

    def _check_references(self, session: Any, rows: list[dict[str, Any]]) -> None:
        unknown = _unknown_references(
            session,
            [v["customer_id"] for v in rows],
            [v.get("contact_id") for v in rows],
            [v.get("owner_id") for v in rows],
        )
        if unknown:
            raise ValidationError(next(iter(unknown.values())), "invalid activity")

    # -- lists -----------------------------------------------------------------------------------

    def _listing(self) -> Listing:
        return activity_listing(kinds=self._kinds, record=self._dump)

    def _personal(self) -> tuple[str, ...]:
        return tuple(ACTIVITY_PERSONAL)

    def _conceal(self, record: dict[str, Any]) -> dict[str, Any]:
        # the free text goes, and so do the keys of the data the activity's kind declares personal
        shown = mask(record, ACTIVITY_PERSONAL)
        kind = self._kinds.get(str(record.get("kind")))
        data = shown.get("data")
        if kind is not None and kind.personal_keys and isinstance(data, dict):
            shown["data"] = {k: v for k, v in data.items() if k not in kind.personal_keys}
        return shown

    def _scope(self, actor: Actor) -> ColumnElement[bool] | None:
        reached = customer_scope(actor, Customer.__table__)
        return None if reached is None else Activity.customer_id.in_(select(Customer.id).where(reached))

    def _reached(self, actor: Actor) -> list[ColumnElement[bool]]:
        """:meth:`_scope` as conditions to splat into a ``where`` of a single read."""
        scope = None if actor.unscoped else self._scope(actor)
        return [] if scope is None else [scope]


class _RowWriter:
    """Turns ingest rows into rows of driver values for one dialect's ``INSERT`` of ``_INSERT_COLUMNS``.

    ``typed`` does it in one step for rows the fast check accepts (see ``crmkit.fastpath``) and returns
    ``None`` for any other, which ``validated`` takes through marshmallow and SQLAlchemy's bind processors.
    Both give the same values for a row both accept; ``tests/test_fastpath.py`` checks it.
    """

    def __init__(self, activities: Activities, dialect: Dialect) -> None:
        self._activities = activities
        self.insert = BulkInsert(Activity.__table__, _INSERT_COLUMNS, dialect)
        self._processors = dict(zip(self.insert.columns, self.insert.processors, strict=True))
        kinds = activities._kinds
        self.typed = _typed_rows(kinds, self._processors, dialect, activities._statuses) or _never

    def store(self, connection: Any, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (driver values); return those stored. A keyed row is stored once: not when its key
        is in the table already, nor when an earlier row of ``rows`` has it."""
        if not any(map(_EXTERNAL, rows)):  # the usual batch: no keys, one plain bulk insert
            self.insert.execute(connection, rows)
            return rows
        plain = [row for row in rows if row[_EXTERNAL_AT] is None]
        first: dict[Any, tuple[Any, ...]] = {}
        for row in rows:
            if row[_EXTERNAL_AT] is not None:
                first.setdefault(_KEY(row), row)
        keyed = [first[key] for key in sorted(first)]
        if self.insert.dialect.name == "postgresql":
            # Two ingests of overlapping keys, each holding rows the other's later batch needs, would wait on
            # each other in a circle (a deadlock PostgreSQL breaks by failing one). Keyed ingests therefore
            # take turns, as every writer does on SQLite: this lock lasts until the transaction ends.
            connection.exec_driver_sql(_KEYED_INGEST_LOCK)
        new = set(self.insert.insert_new(connection, keyed, _KEY_COLUMNS))
        self.insert.execute(connection, plain)
        return plain + [row for row in keyed if _KEY(row) in new]

    @staticmethod
    def records(rows: Iterable[tuple[Any, ...]]) -> list[StoredActivity]:
        """Stored rows (driver values) as the ``crmkit_activities_ingested`` hook gets them."""
        return [StoredActivity(row) for row in rows]

    def created(self, now: dt.datetime) -> Any:
        """The driver value of ``created_at`` for a batch created ``now``."""
        process = self._processors["created_at"]
        return now if process is None else process(now)

    def validated(self, row: Mapping[str, Any], now: dt.datetime, import_id: int | None) -> tuple[Any, ...]:
        """``row`` validated by marshmallow (``ValidationError`` when it is wrong), as driver values."""
        values = self._activities._prepare(load(self._activities._schemas.activity_in, row))
        values["created_at"] = now
        values["import_id"] = import_id
        return self.insert.driver_values(values)


TypedRow = Callable[[Mapping[str, Any], Any], "tuple[Any, ...] | None"]


def _never(row: Mapping[str, Any], tail: tuple[Any, Any]) -> None:
    return None


def _typed_rows(
    kinds: Mapping[str, ActivityKindSpec], processors: Mapping[str, Any], dialect: Dialect, statuses: Iterable[str]
) -> TypedRow | None:
    """The one-step conversion of typed rows: checked, defaulted (as ``_prepare`` does) and converted to
    driver values in a single function; ``None`` when this dialect converts values it passes on as they are."""
    as_is = [c for c in _COLUMNS if c not in ("occurred_at", "ends_at", "amount", "data")]
    if any(processors[c] is not None for c in as_is) or any(
        processors[c] is not None and processors[c](None) is not None for c in ("amount", "ends_at")
    ):
        return None
    check = activity_fast_check(kinds, statuses)
    at = UTCDateTime().aware_binder(dialect)
    to_json = processors["data"] or (lambda data: data)

    def typed(row: Mapping[str, Any], tail: tuple[Any, Any]) -> tuple[Any, ...] | None:
        checked = check(row)
        if checked is None:
            return None
        kind, status, data = checked
        get = row.get
        occurred = get("occurred_at") or utcnow()
        duration = get("duration_min")
        ends = _ends_at(kind, occurred, duration)
        channel = get("channel")
        # in _INSERT_COLUMNS order; the fast check only accepts rows without an amount
        return (
            get("customer_id"),
            get("contact_id"),
            kind.name,
            kind.channel if channel is None else channel,
            get("direction"),
            status,
            get("subject"),
            get("result"),
            at(occurred),
            None if ends is None else at(ends),
            duration,
            None,
            get("currency"),
            get("owner_id"),
            to_json(data),
            get("source"),
            get("external_id"),
            *tail,  # created_at and import_id, the same for the whole batch
        )

    return typed


@attrs.frozen
class _Prepared:
    """A batch checked and converted to driver values, not yet stored."""

    good: list[tuple[Any, ...]]
    positions: list[int]
    size: int


class _IngestRun:
    """What one ``ingest`` call has stored, skipped and rejected so far, over its units of work."""

    def __init__(self, activities: Activities, import_id: int | None, all_or_nothing: bool) -> None:
        self._activities = activities
        self._writer = activities._writer(activities._units.write_engine.dialect)
        self._import_id = import_id
        self._all_or_nothing = all_or_nothing  # then a bad row stops the storing: nothing will be kept
        self._ahead: deque[_Prepared] = deque()
        self.inserted = self.skipped = 0
        self.rejected: list[RowError] = []
        # building a dict per stored row costs: only when some implementation reads them
        self._wants_rows = activities._hooks.takes("activities_ingested", "activities")

    def prepare_one(self, batches: Iterator[Iterator[tuple[int, Mapping[str, Any]]]]) -> bool:
        """Check and convert the next batch ahead of its transaction (no database work); ``False`` when no
        rows are left."""
        batch = next(batches, None)
        if batch is None:
            return False
        self._ahead.append(self._prepare(batch))
        return True

    def take(
        self,
        t: Transaction,
        batches: Iterator[Iterator[tuple[int, Mapping[str, Any]]]],
        *,
        limit: int | None = None,
        due: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Store the batches prepared ahead, then the next ones, in ``t`` until ``limit`` rows (all when
        ``None``) or ``due()``; whether rows may be left."""
        taken = 0
        connection = None
        while True:
            if self._ahead:
                prepared = self._ahead.popleft()
            else:
                batch = next(batches, None)
                if batch is None:
                    return False
                prepared = self._prepare(batch)
            if connection is None:  # the transaction (and SQLite's write lock) begins with the first batch
                connection = t.session.connection()
            taken += self._store(t, connection, prepared)
            if limit is not None and (taken >= limit or due()):
                return True

    def _prepare(self, batch: Iterator[tuple[int, Mapping[str, Any]]]) -> _Prepared:
        writer, import_id = self._writer, self._import_id
        typed, validated = writer.typed, writer.validated
        now = utcnow()
        tail = (writer.created(now), import_id)  # the same for the whole batch: converted once
        good: list[tuple[Any, ...]] = []
        positions: list[int] = []
        rejected = self.rejected
        bad = len(rejected)
        for i, row in batch:
            values = typed(row, tail)  # typed rows skip marshmallow; anything doubtful goes through it
            if values is None:
                try:
                    values = validated(row, now, import_id)
                except ValidationError as exc:
                    rejected.append(RowError(i, exc.errors))
                    continue
            good.append(values)
            positions.append(i)
        return _Prepared(good, positions, len(good) + len(rejected) - bad)

    def _store(self, t: Transaction, connection: Any, prepared: _Prepared) -> int:
        good, positions, rejected = prepared.good, prepared.positions, self.rejected
        unknown = _unknown_references(t.session, [*map(_CUSTOMER, good)], [*map(_CONTACT, good)], [*map(_OWNER, good)])
        if unknown:
            rejected.extend(RowError(positions[k], errors) for k, errors in unknown.items())
            good = [values for k, values in enumerate(good) if k not in unknown]
        if not good or (self._all_or_nothing and rejected):
            return prepared.size
        writer = self._writer
        stored = writer.store(connection, good)
        self.inserted += len(stored)
        self.skipped += len(good) - len(stored)
        if stored:
            self._activities._hooks.activities_ingested(
                t,
                count=len(stored),
                kinds=dict(Counter(map(_KIND, stored))),
                activities=writer.records(stored) if self._wants_rows else [],
            )
        if stored:  # a bulk path: one entry per batch, with its counts
            counts = {
                "inserted": len(stored),
                "skipped": len(good) - len(stored),
                "kinds": dict(Counter(map(_KIND, stored))),
                "import_id": self._import_id,
            }
            self._activities._audit.record(t, "activities.ingested", "activity", changes=counts)
        return prepared.size

    def refresh_statistics(self) -> None:
        if self.inserted:
            statistics.after_bulk_write(self._activities._units.write_engine, {Activity.__tablename__: self.inserted})


def _batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[Iterator[tuple[int, Mapping[str, Any]]]]:
    """``rows`` numbered and cut into batches of ``size``, each read lazily: a row is freed once converted
    instead of living as long as its batch (held rows make the garbage collector scan the heap more often)."""
    numbered = enumerate(rows)
    for first in numbered:
        yield chain((first,), islice(numbered, size - 1))


def _from_driver_datetime(value: Any) -> str | None:
    """A ``UTCDateTime`` driver value (naive UTC, or SQLite's text of it) as the read model's ISO 8601 text
    in UTC, as ``activity_out`` dumps it."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":  # SQLite's "YYYY-MM-DD HH:MM:SS.ffffff"
            # what isoformat() gives, without parsing: "T", no fraction when it is zero, the UTC offset
            fraction = "" if value.endswith(".000000") else value[19:]
            return f"{value[:10]}T{value[11:19]}{fraction}+00:00"
        value = dt.datetime.fromisoformat(value)
    return str(value.replace(tzinfo=dt.UTC).isoformat())


def _json_data(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _decimal(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Decimal):
        value = Decimal(str(value))  # SQLite's driver takes floats
    return str(value.quantize(_CENT))


#: Where each column of a stored row is, and what turns its driver value into the Python value.
_READERS: dict[str, tuple[int, Callable[[Any], Any] | None]] = {
    name: (
        _INSERT_COLUMNS.index(name),
        {
            "occurred_at": _from_driver_datetime,
            "ends_at": _from_driver_datetime,
            "data": _json_data,
            "amount": _decimal,
        }.get(name),
    )
    for name in _RECORD_COLUMNS
}


class StoredActivity(Mapping[str, Any]):
    """One row an ingest stored, as ``crmkit_activities_ingested`` gets it: a read-only mapping of every
    input column (no ``id``) in the read model of ``crm.activities.get``: ``occurred_at``/``ends_at`` ISO
    8601 text in UTC, ``data`` a dict, ``amount`` a string ("12.50"). Each value is converted from the
    driver's when it is read, so a plugin that looks at three columns of a million rows does not pay for
    the other twelve."""

    __slots__ = ("_row",)

    def __init__(self, row: tuple[Any, ...]) -> None:
        self._row = row

    def __getitem__(self, key: str) -> Any:
        position, convert = _READERS[key]
        value = self._row[position]
        return value if convert is None else convert(value)

    def __iter__(self) -> Iterator[str]:
        return iter(_RECORD_COLUMNS)

    def __len__(self) -> int:
        return len(_RECORD_COLUMNS)

    def get(self, key: str, default: Any = None) -> Any:  # Mapping.get goes through a raised KeyError
        reader = _READERS.get(key)
        if reader is None:
            return default
        position, convert = reader
        value = self._row[position]
        return value if convert is None else convert(value)

    def __repr__(self) -> str:
        return f"StoredActivity({dict(self)!r})"


def _ends_at(kind: ActivityKindSpec, occurred: dt.datetime, duration: int | None) -> dt.datetime | None:
    if duration is None and kind.calendar:
        duration = DEFAULT_CALENDAR_MINUTES
    return occurred + dt.timedelta(minutes=duration) if duration else None


def _unknown_references(
    session: Any, customer_ids: Sequence[int], contact_ids: Sequence[int | None], owner_ids: Sequence[int | None]
) -> dict[int, dict[str, list[str]]]:
    """The rows (given as their customer, contact and owner ids) that point at something missing, or at a
    contact of another customer: their position and why. One query per referenced table."""
    customers, contacts, owners = set(customer_ids), set(contact_ids), set(owner_ids)
    contacts.discard(None)
    owners.discard(None)
    missing_customers = customers - _existing(session, Customer.id, customers)
    missing_owners = owners - _existing(session, User.id, owners)
    contact_of: dict[int, int] = {}
    for chunk in _chunks(contacts):
        contact_of.update(
            session.execute(select(Contact.id, Contact.customer_id).where(among(Contact.id, chunk))).all()
        )
    if not missing_customers and not missing_owners and not contacts:
        return {}  # the usual batch: no row to look at one by one
    unknown: dict[int, dict[str, list[str]]] = {}
    for i, (customer_id, contact_id, owner_id) in enumerate(zip(customer_ids, contact_ids, owner_ids, strict=True)):
        errors: dict[str, list[str]] = {}
        if customer_id in missing_customers:
            errors["customer_id"] = [f"no customer with id {customer_id}"]
        if owner_id in missing_owners:
            errors["owner_id"] = [f"no user with id {owner_id}"]
        if contact_id is not None and contact_of.get(contact_id) != customer_id:
            errors["contact_id"] = [f"contact {contact_id} does not belong to customer {customer_id}"]
        if errors:
            unknown[i] = errors
    return unknown


def _existing(session: Any, column: Any, ids: set[Any]) -> set[Any]:
    found: set[Any] = set()
    for chunk in _chunks(ids):
        found.update(session.scalars(select(column).where(among(column, chunk))))
    return found


def _chunks(ids: set[Any]) -> Iterable[list[Any]]:
    values = list(ids)
    return (values[start : start + _IN_CHUNK] for start in range(0, len(values), _IN_CHUNK))
