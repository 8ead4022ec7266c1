"""A person's data: everything crmkit holds about one customer as one document, and its erasure.

What is personal is declared, never found by scanning: the customer fields of ``crm.fields.personal()``
(the core's, the plugins', the run-time ones), a contact's name, email and phone, an activity's free text
(``subject``, ``result``) and the keys of its ``data`` its kind declares personal
(``ActivityKindSpec.personal_data``, data fields with ``personal=True``), a task's title and reason, an
outbox message's subject and body, and every column of a plugin's table declared with
``info={"crmkit": {"personal": True}}``.

Erasure anonymises those values in place and keeps every row, so counts, cohorts and money stay true: a
membership's payments keep their amounts and dates, a member's check-ins still count, and nothing the law
asks to keep is deleted. It redacts the values the audit log and the import ledger hold, records the
erasure in the audit log and keeps a suppression entry (a keyed hash of the normalised email and phone) so
that a later create or import of the same person is refused with :class:`SuppressedCustomerError`.

The key is the CRM's ``privacy_key`` (``CRM(privacy_key=...)`` or ``$CRMKIT_PRIVACY_KEY``): keep it outside
the database and never change it, since the suppression entries are hashes under it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.db.driver import Cursor
from crmkit.db.functions import upsert_insert
from crmkit.db.models import (
    Activity,
    Contact,
    Customer,
    CustomerClaim,
    ImportChange,
    Merge,
    OutboxMessage,
    Suppression,
    Task,
)
from crmkit.db.types import utcnow
from crmkit.errors import CRMError, NotFound, SuppressedCustomerError, ValidationError
from crmkit.limits import Text, check, require_id
from crmkit.merge import customer_references
from crmkit.personal import (
    ACTIVITY_PERSONAL,
    CONTACT_PERSONAL,
    ERASED,
    OUTBOX_PERSONAL,
    TASK_PERSONAL,
    personal_columns,
)
from crmkit.specs import ActivityKindSpec
from crmkit.unit import Transaction, Units

#: The document's format, for whoever reads an export later.
EXPORT_FORMAT = "crmkit.person/1"
_REASON = Text(max_length=500)
_CORE_TABLES = frozenset(
    {
        "crm_customers",
        "crm_customer_claims",
        "crm_contacts",
        "crm_stage_history",
        "crm_activities",
        "crm_tasks",
        "crm_merges",
        "crm_trigger_firings",
        "crm_outbox",
        "crm_import_changes",
        "crm_customer_keys",
        "crm_consents",
    }
)


class Privacy:
    """``crm.privacy``: a person's data as one document (right of access), its erasure, and the suppression
    entries that keep an erased person from coming back."""

    def __init__(
        self,
        *,
        units: Units,
        access: Access,
        audit: Audit,
        key: bytes | None,
        personal: Callable[[], Sequence[str]],
        extension_tables: Mapping[str, Table],
        plugin_fields: Callable[[str], Sequence[Any]],
        kinds: Mapping[str, ActivityKindSpec],
        tables: Callable[[], list[Table]],
        read_customer: Callable[[Session, int], dict[str, Any]],
    ) -> None:
        self._units = units
        self._access = access
        self._audit = audit
        self._key = key
        self._personal = personal
        self._extension_tables = dict(extension_tables)
        self._plugin_fields = plugin_fields
        self._kinds = kinds
        self._tables = tables
        self._read_customer = read_customer
        self._suppressions_seen = False

    # -- suppression -----------------------------------------------------------------------------------

    def digest(self, kind: str, value: str) -> str:
        """The keyed hash a suppression entry keeps of a normalised email or phone."""
        if self._key is None:
            raise CRMError(
                "erasure needs a privacy key: CRM(privacy_key=...) or $CRMKIT_PRIVACY_KEY; keep it outside the"
                " database and never change it (suppression entries are hashes under it)"
            )
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def check(self, cur: Cursor, pairs: Iterable[tuple[str, str | None]]) -> None:
        """Refuse (:class:`SuppressedCustomerError`) the normalised ``(kind, value)`` pairs that belong to an
        erased person; called by every path that creates a customer or gives one a new email or phone."""
        if self._key is None:
            if any(value for _, value in pairs):
                self._no_key_but_entries(cur)
            return
        wanted = [(kind, value) for kind, value in pairs if value]
        if not wanted:
            return
        by_digest = {self.digest(kind, value): kind for kind, value in wanted}
        marks = ", ".join([cur.mark] * len(by_digest))
        rows = cur.all(
            f"SELECT kind, digest, erased_at FROM {Suppression.__tablename__} WHERE digest IN ({marks})",
            list(by_digest),
        )
        found = {kind: str(at)[:10] for kind, digest, at in rows if by_digest.get(digest) == kind}
        if found:
            raise SuppressedCustomerError({("email" if k == "email" else "phone"): day for k, day in found.items()})

    def _no_key_but_entries(self, cur: Cursor) -> None:
        # without the key no value can be checked: a CRM holding suppression entries must not quietly let
        # erased people back in because its key was not configured
        if not self._suppressions_seen:
            self._suppressions_seen = cur.one(f"SELECT 1 FROM {Suppression.__tablename__} LIMIT 1") is not None
        if self._suppressions_seen:
            raise CRMError(
                "this CRM holds suppression entries of erased people but has no privacy key to check them:"
                " set CRM(privacy_key=...) or $CRMKIT_PRIVACY_KEY"
            )

    # -- export ----------------------------------------------------------------------------------------

    def export(self, customer_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        """Everything crmkit and its plugins hold about one customer, as one JSON-safe document: the record,
        contacts, stage history, activities, tasks, merges into it, trigger firings, outbox messages,
        import changes, every plugin table row that points at the customer, and the audit entries.

        Needs ``customers:export`` and ``customers:read_personal`` (the document is for the person, in
        full); a customer out of the actor's reach is ``NotFound``."""
        actor = self._access.require("customers:export", tx)
        actor.require("customers:read_personal")
        customer_id = require_id(customer_id, "customer")
        with self._units.read(tx) as s:
            record = self._reached(s, actor, customer_id)
            out: dict[str, Any] = {
                "format": EXPORT_FORMAT,
                "exported_at": utcnow().isoformat(),
                "exported_by": actor.describe(),
                "customer": record,
            }
            for key, table in (
                ("contacts", Contact.__table__),
                ("stage_history", _table("crm_stage_history", self._tables())),
                ("activities", Activity.__table__),
                ("tasks", Task.__table__),
                ("trigger_firings", _table("crm_trigger_firings", self._tables())),
                ("outbox", OutboxMessage.__table__),
                ("import_changes", ImportChange.__table__),
                ("external_ids", _table("crm_customer_keys", self._tables())),
                ("consents", _table("crm_consents", self._tables())),
            ):
                out[key] = _rows(s, table, table.c.customer_id == customer_id)
            merges = Merge.__table__
            out["merges"] = _rows(s, merges, merges.c.survivor_id == customer_id)
            extension_names = {t.name for t in self._extension_tables.values()}
            out["plugin_rows"] = {
                table.name: _rows(s, table, table.c[column] == customer_id)
                for table, column in customer_references(self._tables(), set(_CORE_TABLES) | extension_names)
            }
        out["audit"] = self._audit.for_customer(customer_id, tx=tx)
        return out

    # -- erasure ---------------------------------------------------------------------------------------

    def erase(self, customer_id: int, *, reason: str, tx: Transaction | None = None) -> dict[str, int]:
        """Anonymise every personal value crmkit and its plugins hold about the customer, in one
        transaction; keep a suppression entry of their email and phone; record the erasure (with
        ``reason``, say "request of 2026-12-01") in the audit log. Returns how many rows each table had
        anonymised.

        The customer's row stays (its name becomes ``[erased]``), as do its stage history, activities,
        payments and tasks, so every count and sum stays what it was."""
        actor = self._access.require("customers:erase", tx)
        customer_id = require_id(customer_id, "customer")
        reason = check(_REASON, reason, "reason", "invalid erasure")
        if not reason.strip():
            raise ValidationError({"reason": ["say why the data is erased (the request, its date)"]}, "invalid erasure")
        self.digest("email", "")  # no key, no erasure: said before anything is read or written
        with self._units.write(tx) as t:
            s = t.session
            current = self._reached(s, actor, customer_id, lock=True)
            self._suppress(s, customer_id, current)
            counts = {"crm_customers": self._anonymise_customer(s, customer_id)}
            counts["crm_contacts"] = _blank(s, Contact.__table__, customer_id, CONTACT_PERSONAL)
            counts["crm_activities"] = _blank(s, Activity.__table__, customer_id, ACTIVITY_PERSONAL)
            counts["crm_activities.data"] = self._strip_activity_data(s, customer_id)
            counts["crm_tasks"] = _blank(s, Task.__table__, customer_id, TASK_PERSONAL)
            counts["crm_outbox"] = _blank(s, OutboxMessage.__table__, customer_id, OUTBOX_PERSONAL)
            personal = set(self._personal())
            counts["crm_merges"] = _redact_json(s, Merge.__table__, Merge.__table__.c.survivor_id == customer_id,
                                                ("snapshot",), personal)  # fmt: skip
            changes = ImportChange.__table__
            counts["crm_import_changes"] = _redact_json(
                s, changes, changes.c.customer_id == customer_id, ("before", "after"), personal
            )
            for table, column in customer_references(self._tables(), set(_CORE_TABLES)):
                names = personal_columns(table)
                if names and table.name not in {t.name for t in self._extension_tables.values()}:
                    result = s.execute(
                        update(table).where(table.c[column] == customer_id).values({n: None for n in names})
                    )
                    counts[table.name] = int(getattr(result, "rowcount", 0) or 0)
            # the log's entries about the customer hold the values of its contacts, tasks and plugin rows too
            logged = personal | {*CONTACT_PERSONAL, *ACTIVITY_PERSONAL, *TASK_PERSONAL}
            logged |= {n for table in self._tables() for n in personal_columns(table)}
            logged |= {k for kind in self._kinds.values() for k in kind.personal_keys}
            counts["crm_audit"] = self._audit.redact(t, customer_id, logged)
            erased = sorted(personal & {k for k, v in current.items() if v is not None})
            told = {"reason": reason, "fields": erased, "rows": {k: v for k, v in counts.items() if v}}
            self._audit.record(t, "customer.erased", "customer", entity_id=customer_id, customer_id=customer_id,
                               changes=told)  # fmt: skip
            s.expire_all()
            return counts

    def _reached(self, s: Session, actor: Actor, customer_id: int, *, lock: bool = False) -> dict[str, Any]:
        """The customer's record, if ``actor`` reaches them; ``NotFound`` otherwise (as ``customers.get``)."""
        if lock:
            s.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update()).first()
        record = self._read_customer(s, customer_id)
        if not actor.reaches(record.get("branch"), record.get("owner_id")):
            raise NotFound("customer", customer_id)
        return record

    def _suppress(self, s: Session, customer_id: int, current: Mapping[str, Any]) -> None:
        now = utcnow()
        rows = [
            {"kind": kind, "digest": self.digest(kind, value), "erased_at": now, "customer_id": customer_id}
            for kind, value in (("email", current.get("email_normalized")), ("phone", current.get("phone_normalized")))
            if value
        ]
        table = Suppression.__table__
        if rows:  # another erasure may hold the same value already: its entry stands, as this one would
            insert = upsert_insert(s)(table).on_conflict_do_nothing(index_elements=["kind", "digest"])
            s.execute(insert, rows)
        if rows:
            claims = CustomerClaim.__table__
            s.execute(delete(claims).where(claims.c.customer_id == customer_id))

    def _anonymise_customer(self, s: Session, customer_id: int) -> int:
        personal = set(self._personal())
        customers = Customer.__table__
        core: dict[str, Any] = {c.name: None for c in customers.columns if c.name in personal}
        if "name" in core:
            core["name"] = ERASED  # the one personal column that may not be empty
        row = s.execute(select(customers.c.extra).where(customers.c.id == customer_id)).one()
        extra = {k: v for k, v in (row.extra or {}).items() if k not in personal}
        s.execute(
            update(customers).where(customers.c.id == customer_id).values(**core, extra=extra, updated_at=utcnow())
        )
        for plugin, table in self._extension_tables.items():
            names = [f.name for f in self._plugin_fields(plugin) if f.personal]
            if names:
                s.execute(update(table).where(table.c.customer_id == customer_id).values({n: None for n in names}))
        return 1

    def _strip_activity_data(self, s: Session, customer_id: int) -> int:
        keyed = {name: kind.personal_keys for name, kind in self._kinds.items() if kind.personal_keys}
        if not keyed:
            return 0
        activities = Activity.__table__
        query = select(activities.c.id, activities.c.kind, activities.c.data).where(
            activities.c.customer_id == customer_id, activities.c.kind.in_(sorted(keyed))
        )
        changed = 0
        for activity_id, kind, data in s.execute(query).all():
            if not data or not set(keyed[kind]) & data.keys():
                continue
            kept = {k: v for k, v in data.items() if k not in keyed[kind]}
            s.execute(update(activities).where(activities.c.id == activity_id).values(data=kept))
            changed += 1
        return changed


def _table(name: str, tables: Iterable[Table]) -> Table:
    return next(t for t in tables if t.name == name)


def _blank(s: Session, table: Table, customer_id: int, values: Mapping[str, Any]) -> int:
    result = s.execute(update(table).where(table.c.customer_id == customer_id).values(dict(values)))
    return int(getattr(result, "rowcount", 0) or 0)


def _redact_json(s: Session, table: Table, where: Any, columns: Sequence[str], personal: set[str]) -> int:
    """Blank the personal keys of the JSON ``columns`` of the rows ``where`` selects."""
    keys = list(table.primary_key.columns)
    changed = 0
    for row in s.execute(select(*keys, *(table.c[c] for c in columns)).where(where)).all():
        values = {}
        for column in columns:
            document = row._mapping[column]
            if isinstance(document, dict) and personal & document.keys():
                values[column] = {k: (ERASED if k in personal and v is not None else v) for k, v in document.items()}
        if values:
            s.execute(update(table).where(*(k == row._mapping[k.name] for k in keys)).values(values))
            changed += 1
    return changed


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.replace(tzinfo=dt.UTC).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _rows(s: Session, table: Table, where: Any) -> list[dict[str, Any]]:
    order = list(table.primary_key.columns)
    return [
        {k: _plain(v) for k, v in row.items()}
        for row in s.execute(select(table).where(where).order_by(*order)).mappings()
    ]


__all__ = ["EXPORT_FORMAT", "Privacy"]
