"""Activities: log one, ingest many with set-based inserts, and detect calendar conflicts."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, select

from crmkit.db.bulk import bulk_insert
from crmkit.db.models import Activity, Contact, Customer, User
from crmkit.db.types import utcnow
from crmkit.errors import CalendarConflictError, NotFound, ValidationError
from crmkit.fastpath import activity_checker
from crmkit.schemas import load
from crmkit.unit import Transaction, use_transaction

if TYPE_CHECKING:
    from crmkit.app import CRM

#: How long a calendar activity lasts when no duration is given.
DEFAULT_CALENDAR_MINUTES = 60
_BUSY = ("planned", "in_progress", "done")
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
)


@attrs.frozen
class RowError:
    """One rejected input row: its position in the input (0-based) and what is wrong with it."""

    index: int
    errors: dict[str, Any]


@attrs.frozen
class IngestReport:
    """What a bulk ingest did: how many rows went in, and every rejected row with its reason."""

    inserted: int
    rejected: tuple[RowError, ...]

    @property
    def ok(self) -> bool:
        return not self.rejected


class Activities:
    """``crm.activities``."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm
        self._fast = activity_checker(crm.registry.activity_kinds)

    def log(
        self,
        data: Mapping[str, Any],
        *,
        allow_conflict: bool = False,
        actor_id: int | None = None,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Validate and record one activity.

        A calendar kind (meeting, visit...) that overlaps another calendar activity of the same owner
        raises ``CalendarConflictError`` unless ``allow_conflict``.
        """
        crm = self._crm
        values = self._prepare(load(crm.schemas.activity_in, data, message="invalid activity"))
        with use_transaction(crm, crm.session_factory, tx, actor_id) as t:
            self._check_references(t.session, [values])
            kind = crm.registry.activity_kinds[values["kind"]]
            if kind.calendar and not allow_conflict and values.get("owner_id") and values["status"] in _BUSY:
                clashes = self._overlapping(t.session, values["owner_id"], values["occurred_at"], values["ends_at"])
                if clashes:
                    raise CalendarConflictError(values["owner_id"], clashes)
            activity = Activity(**values)
            t.session.add(activity)
            t.session.flush()
            record = crm.schemas.activity_out.dump(activity)
            crm.hook.crmkit_activity_logged(tx=t, activity=record)
            return record

    def ingest(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 5000,
        all_or_nothing: bool = False,
        tx: Transaction | None = None,
    ) -> IngestReport:
        """Insert many activities (check-ins from a turnstile, calls from a PBX) in one transaction.

        Rows are validated one by one, checked against existing customers, contacts and owners one batch
        at a time, and inserted with one multi-row ``INSERT`` per batch. Bad rows are reported with their
        index and reason; the good ones are kept, unless ``all_or_nothing``, in which case any bad row
        means nothing is written and ``ValidationError`` lists them all. Calendar conflicts are not
        checked: ingestion records what already happened.
        """
        crm = self._crm
        schema = crm.schemas.activity_in
        fast = self._fast
        table = Activity.__table__
        inserted = 0
        rejected: list[RowError] = []
        iterator = iter(rows)
        offset = 0
        with use_transaction(crm, crm.session_factory, tx) as t:
            while batch := list(islice(iterator, batch_size)):
                good: list[tuple[int, dict[str, Any]]] = []
                for i, row in enumerate(batch, start=offset):
                    values = fast(row)  # typed rows skip marshmallow; anything doubtful goes through it
                    try:
                        good.append((i, self._prepare(values if values is not None else load(schema, row))))
                    except ValidationError as exc:
                        rejected.append(RowError(i, exc.errors))
                offset += len(batch)
                good, missing = self._split_known(t.session, good)
                rejected.extend(missing)
                if all_or_nothing and rejected:
                    continue
                if good:
                    now = utcnow()
                    values = [{**v, "created_at": now} for _, v in good]
                    inserted += bulk_insert(t.session.connection(), table, (*_COLUMNS, "created_at"), values)
                    crm.hook.crmkit_activities_ingested(
                        tx=t, count=len(values), kinds=dict(Counter(v["kind"] for v in values))
                    )
            if all_or_nothing and rejected:
                raise ValidationError(
                    {str(r.index): r.errors for r in rejected}, f"{len(rejected)} rows rejected, nothing written"
                )
        rejected.sort(key=lambda r: r.index)
        return IngestReport(inserted, tuple(rejected))

    def get(self, activity_id: int) -> dict[str, Any]:
        with self._crm.session() as s:
            activity = s.get(Activity, activity_id)
            if activity is None:
                raise NotFound("activity", activity_id)
            return self._crm.schemas.activity_out.dump(activity)

    def for_customer(
        self, customer_id: int, *, kinds: Iterable[str] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """A customer's activities, newest first."""
        query = select(Activity).where(Activity.customer_id == customer_id)
        if kinds is not None:
            query = query.where(Activity.kind.in_(list(kinds)))
        query = query.order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(limit)
        with self._crm.session() as s:
            return self._crm.schemas.activity_out.dump(s.scalars(query), many=True)

    def conflicts(
        self, owner_id: int, start: dt.datetime, end: dt.datetime, *, exclude_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Calendar activities of ``owner_id`` that overlap ``[start, end)``."""
        with self._crm.session() as s:
            ids = self._overlapping(s, owner_id, start, end, exclude_id=exclude_id)
            rows = s.scalars(select(Activity).where(Activity.id.in_(ids)).order_by(Activity.occurred_at))
            return self._crm.schemas.activity_out.dump(rows, many=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _prepare(self, values: dict[str, Any]) -> dict[str, Any]:
        kind = self._crm.registry.activity_kinds[values["kind"]]
        values["occurred_at"] = values.get("occurred_at") or utcnow()
        if values.get("channel") is None:
            values["channel"] = kind.channel
        duration = values.get("duration_min")
        if duration is None and kind.calendar:
            duration = DEFAULT_CALENDAR_MINUTES
        values["ends_at"] = values["occurred_at"] + dt.timedelta(minutes=duration) if duration else None
        # every row carries every column, so a batch is one executemany with one statement shape
        return {column: values.get(column) for column in _COLUMNS}

    def _overlapping(
        self, session: Any, owner_id: int, start: dt.datetime, end: dt.datetime | None, exclude_id: int | None = None
    ) -> list[int]:
        calendar_kinds = [k.name for k in self._crm.registry.activity_kinds.values() if k.calendar]
        end = end or start
        query = select(Activity.id).where(
            Activity.owner_id == owner_id,
            Activity.kind.in_(calendar_kinds),
            Activity.status.in_(_BUSY),
            and_(Activity.occurred_at < end, Activity.ends_at > start),
        )
        if exclude_id is not None:
            query = query.where(Activity.id != exclude_id)
        return list(session.scalars(query.order_by(Activity.occurred_at)))

    def _check_references(self, session: Any, rows: list[dict[str, Any]]) -> None:
        _, missing = self._split_known(session, list(enumerate(rows)))
        if missing:
            raise ValidationError(missing[0].errors, "invalid activity")

    def _split_known(
        self, session: Any, rows: list[tuple[int, dict[str, Any]]]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
        """Keep rows whose customer, contact and owner exist (one query per referenced table)."""
        if not rows:
            return [], []
        customers = _existing(session, Customer.id, {v["customer_id"] for _, v in rows})
        owners = _existing(session, User.id, {v["owner_id"] for _, v in rows if v.get("owner_id")})
        contact_ids = {v["contact_id"] for _, v in rows if v.get("contact_id")}
        contacts: dict[int, int] = {}
        if contact_ids:
            contacts = dict(
                session.execute(select(Contact.id, Contact.customer_id).where(Contact.id.in_(contact_ids))).all()
            )
        good, bad = [], []
        for i, v in rows:
            errors: dict[str, list[str]] = {}
            if v["customer_id"] not in customers:
                errors["customer_id"] = [f"no customer with id {v['customer_id']}"]
            if v.get("owner_id") and v["owner_id"] not in owners:
                errors["owner_id"] = [f"no user with id {v['owner_id']}"]
            if v.get("contact_id") and contacts.get(v["contact_id"]) != v["customer_id"]:
                errors["contact_id"] = [f"contact {v['contact_id']} does not belong to customer {v['customer_id']}"]
            if errors:
                bad.append(RowError(i, errors))
            else:
                good.append((i, v))
        return good, bad


def _existing(session: Any, column: Any, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    return set(session.scalars(select(column).where(column.in_(ids))))
