"""The audit log: every write, who made it and what it changed, in the write's own transaction.

Each service records its writes with :meth:`Audit.record` inside the unit of work that makes them, so a
write that rolls back leaves no entry and an entry never tells of a write that did not happen. An update
records each changed field's old and new value; a bulk path (an import's chunk, an ingest's batch, a
``create_many``) records one entry with its counts, not one per row.

Tampering is evident: the entries of one customer form a chain, each entry's ``hash`` covering the one
before it, so an entry altered, inserted or removed in the middle of a chain breaks it, and
:meth:`Audit.verify` (``crmkit audit verify``) says where. Entries about no customer (users, fields, a
batch) form the chain of customer ``0``. One chain per customer keeps the log partitionable by
``customer_id`` like every other table about a customer, and lets writers of different customers append
without waiting for each other.

What the chain covers of ``changes`` is its SHA-256 (``digest``): an erasure blanks the personal values an
entry holds and marks it ``redacted``; the chain still verifies, and the erasure is itself an entry.

This module is part of the public plugin API: a plugin's own service records its writes with
``crm.audit.record(tx, "booking.created", "booking", entity_id=..., customer_id=...)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import Dialect, Table, and_, func, select, update

from crmkit.access import Access, Actor
from crmkit.db.driver import binders, cursor, placeholders
from crmkit.db.models import AuditEntry, Customer, ImportChange, ImportRun
from crmkit.db.types import utcnow
from crmkit.errors import DatabaseBusyError, ValidationError
from crmkit.limits import Moment, Text, check, require_id
from crmkit.listing import customer_scope, require_reached
from crmkit.personal import ERASED
from crmkit.unit import Transaction, Units

#: The chain of entries about no customer.
CRM_CHAIN = 0
#: What the first entry of a chain follows.
GENESIS = "0" * 64
_COLUMNS = (
    "customer_id",
    "seq",
    "at",
    "actor",
    "user_id",
    "action",
    "entity",
    "entity_id",
    "changes",
    "digest",
    "redacted",
    "prev_hash",
    "hash",
)
_NAME_LIMITS = {"action": 60, "entity": 60, "entity_id": 100}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def canonical(changes: Mapping[str, Any]) -> str:
    """``changes`` as the JSON text the log stores and hashes: keys sorted, no spaces, dates in ISO 8601,
    decimals as strings."""
    return json.dumps(changes, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def entry_hash(
    prev_hash: str,
    customer_id: int,
    seq: int,
    at: dt.datetime,
    actor: str,
    user_id: int | None,
    action: str,
    entity: str,
    entity_id: str | None,
    digest: str,
) -> str:
    """The hash of an entry: SHA-256 over the previous entry's hash and every column of this one (of
    ``changes`` its digest)."""
    parts = (prev_hash, customer_id, seq, _stamp(at), actor, user_id, action, entity, entity_id, digest)
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class Problem:
    """Where a chain is broken, and how."""

    customer_id: int
    seq: int
    reason: str

    def __str__(self) -> str:
        chain = "the CRM's chain" if self.customer_id == CRM_CHAIN else f"customer {self.customer_id}"
        return f"{chain}, entry {self.seq}: {self.reason}"


@attrs.frozen
class Verification:
    """What :meth:`Audit.verify` found: how many entries and chains it checked, and every break."""

    entries: int
    chains: int
    redacted: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class _Statements:
    """The two statements every write runs, compiled once per dialect (see :mod:`crmkit.db.driver`)."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.bind = binders(table, _COLUMNS, dialect)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.head = f"SELECT seq, hash FROM {table.name} WHERE customer_id = {mark} ORDER BY seq DESC LIMIT 1"
        self.insert = (
            f"INSERT INTO {table.name} ({', '.join(_COLUMNS)}) VALUES ({placeholders(dialect, len(_COLUMNS))})"
            " ON CONFLICT (customer_id, seq) DO NOTHING"
        )


#: How often an append is retried when concurrent writers of one chain keep taking the next place.
_ATTEMPTS = 50


class Audit:
    """``crm.audit``: record writes, read the log per customer and per actor, verify its chains."""

    def __init__(self, *, units: Units, access: Access, personal: Callable[[], Iterable[str]]) -> None:
        self._units = units
        self._access = access
        self._personal = personal
        self._table: Table = AuditEntry.__table__
        self._statements: dict[Dialect, _Statements] = {}

    # -- writing -------------------------------------------------------------------------------------

    def record(
        self,
        tx: Transaction,
        action: str,
        entity: str,
        *,
        entity_id: object = None,
        customer_id: int | None = None,
        changes: Mapping[str, Any] | None = None,
        user_id: int | None = None,
        new: bool = False,
    ) -> None:
        """Append an entry to the log in ``tx``, the unit of work of the write it tells of.

        ``action`` says what happened (``"customer.updated"``, ``"booking.created"``), ``entity`` and
        ``entity_id`` what it happened to, ``customer_id`` whose chain it joins (``None``: the CRM's own),
        ``changes`` what changed: ``{field: [old, new]}`` for an update, the values of a new record, the
        counts of a batch. The actor is the unit of work's (or the context's); ``user_id`` names a user for
        a call made by the application on their behalf (the services' ``actor_id=``). ``new`` says the
        customer was created in this write, so its chain is most likely empty.
        """
        for name, value in (("action", action), ("entity", entity)):
            if not isinstance(value, str) or not value or len(value) > _NAME_LIMITS[name]:
                raise ValueError(f"an audit entry's {name} is text of 1 to {_NAME_LIMITS[name]} characters")
        ref = None if entity_id is None else str(entity_id)[: _NAME_LIMITS["entity_id"]]
        actor = self._access.actor(tx)
        chain = CRM_CHAIN if customer_id is None else customer_id
        text = canonical(changes or {})
        digest = digest_of(text)
        at = utcnow()
        who = actor.name[:100]
        user = actor.user_id if actor.user_id is not None else user_id
        cur = cursor(tx.session)
        statements = self._compiled(cur.dialect)
        head = None if new else cur.one(statements.head, (chain,))
        for _attempt in range(_ATTEMPTS):
            seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
            hashed = entry_hash(prev, chain, seq, at, who, user, action, entity, ref, digest)
            values = (chain, seq, at, who, user, action, entity, ref, text, digest, False, prev, hashed)
            params = [v if p is None else p(v) for p, v in zip(statements.bind, values, strict=True)]
            if cur.execute(statements.insert, params).rowcount == 1:
                return
            # a concurrent writer took this place in the chain and has committed: append after it
            head = cur.one(statements.head, (chain,))
        raise DatabaseBusyError(f"could not append to the audit chain of customer {chain}")

    def _compiled(self, dialect: Dialect) -> _Statements:
        found = self._statements.get(dialect)
        if found is None:
            found = self._statements[dialect] = _Statements(self._table, dialect)
        return found

    def redact(self, tx: Transaction, customer_id: int, fields: Iterable[str]) -> int:
        """Blank the values of ``fields`` in every entry of the customer's chain (an erasure), keeping the
        entries and their chain; how many entries changed."""
        wanted = set(fields)
        table = self._table
        changed = 0
        rows = tx.session.execute(
            select(table.c.seq, table.c.changes).where(table.c.customer_id == customer_id).order_by(table.c.seq)
        ).all()
        for seq, text in rows:
            changes = json.loads(text)
            if not isinstance(changes, dict) or not wanted & changes.keys():
                continue
            blanked = {k: (_erase(v) if k in wanted else v) for k, v in changes.items()}
            tx.session.execute(
                update(table)
                .where(table.c.customer_id == customer_id, table.c.seq == seq)
                .values(changes=canonical(blanked), redacted=True)
            )
            changed += 1
        return changed

    # -- reading -------------------------------------------------------------------------------------

    def for_customer(self, customer_id: int, *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Every entry of the customer's chain, oldest first: ``customer_id``, ``seq``, ``at``, ``actor``,
        ``user_id``, ``action``, ``entity``, ``entity_id``, ``changes``, ``redacted``. Personal values are
        masked for a role without ``customers:read_personal``."""
        actor = self._access.require("audit:read", tx)
        customer_id = require_id(customer_id, "customer")
        with self._units.read(tx) as s:
            self._check_reach(s, actor, customer_id)
            table = self._table
            query = select(table).where(table.c.customer_id == customer_id).order_by(table.c.seq)
            return [self._entry(row, actor) for row in s.execute(query).mappings()]

    def entries(
        self,
        *,
        user_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 1000,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """Entries of every chain, newest first, those of ``user_id`` (or the system actor ``actor``)
        only when given, of ``action``, made in ``[since, until)``; at most ``limit``. A role with a
        scope reads only the entries about the customers it reaches."""
        reader = self._access.require("audit:read", tx)
        since, until = _moment(since, "since"), _moment(until, "until")
        _check_limit(limit)
        table = self._table
        query = select(table)
        if user_id is not None:
            query = query.where(table.c.user_id == require_id(user_id, "user"))
        if actor is not None:
            query = query.where(table.c.actor == check(_ACTOR, actor, "actor", _INVALID))
        if action is not None:
            query = query.where(table.c.action == check(_ACTION, action, "action", _INVALID))
        if since is not None:
            query = query.where(table.c.at >= since)
        if until is not None:
            query = query.where(table.c.at < until)
        query = self._scoped(query, reader)
        query = query.order_by(table.c.at.desc(), table.c.customer_id, table.c.seq.desc()).limit(limit)
        with self._units.read(tx) as s:
            return [self._entry(row, reader) for row in s.execute(query).mappings()]

    def field_history(
        self,
        customer_id: int | None = None,
        field: str | None = None,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 1000,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """Each change of each field, oldest first: ``customer_id``, ``at``, ``actor``, ``user_id``,
        ``action``, ``field``, ``old``, ``new``; of one customer (or of every customer the acting user
        reaches), of ``field`` only when given, made in ``[since, until)``, the latest ``limit``. From the
        customers' chains and from the imports that changed them (an import keeps its changes per customer in
        its ledger, and one batch entry per chunk in the log)."""
        reader = self._access.require("audit:read", tx)
        since, until = _moment(since, "since"), _moment(until, "until")
        _check_limit(limit)
        table, runs, ledger = self._table, ImportRun.__table__, ImportChange.__table__
        logged = select(table).where(table.c.action.in_(sorted(_FIELD_ACTIONS)))
        columns = (ledger.c.customer_id, ledger.c.import_id, ledger.c.before, ledger.c.after)
        runs_of = (runs.c.actor_id, runs.c.started_at, runs.c.finished_at)
        imported = (
            select(*columns, *runs_of).join(runs, runs.c.id == ledger.c.import_id).where(ledger.c.action == "updated")
        )
        moment = func.coalesce(runs.c.finished_at, runs.c.started_at)
        if since is not None:
            logged, imported = logged.where(table.c.at >= since), imported.where(moment >= since)
        if until is not None:
            logged, imported = logged.where(table.c.at < until), imported.where(moment < until)
        out: list[dict[str, Any]] = []
        with self._units.read(tx) as s:
            if customer_id is not None:
                customer_id = require_id(customer_id, "customer")
                self._check_reach(s, reader, customer_id)
                logged = logged.where(table.c.customer_id == customer_id)
                imported = imported.where(ledger.c.customer_id == customer_id)
            else:
                logged = self._scoped(logged.where(table.c.customer_id != CRM_CHAIN), reader)
                scope = customer_scope(reader, Customer.__table__)
                if scope is not None:
                    imported = imported.where(ledger.c.customer_id.in_(select(Customer.__table__.c.id).where(scope)))
            logged = logged.order_by(table.c.at.desc(), table.c.seq.desc()).limit(limit)
            for row in s.execute(logged).mappings():
                entry = self._entry(row, reader)
                for name, change in entry["changes"].items():
                    # a field's change is [old, new]; anything else in an entry (a move's cause) is not one
                    if isinstance(change, list) and len(change) == 2 and (field is None or name == field):
                        out.append(_change(entry, name, *change))
            hidden = set() if reader.sees_personal else set(self._personal())
            for row in s.execute(imported.order_by(moment.desc()).limit(limit)).mappings():
                entry = {
                    "customer_id": row["customer_id"],
                    "at": _iso(row["finished_at"] or row["started_at"]),
                    "actor": f"user {row['actor_id']}" if row["actor_id"] else "application",
                    "user_id": row["actor_id"],
                    "action": "import.updated",
                }
                for name, new in (row["after"] or {}).items():
                    if field is None or name == field:
                        old = None if name in hidden else (row["before"] or {}).get(name)
                        out.append(_change(entry, name, old, None if name in hidden else new))
        out.sort(key=lambda c: c["at"])
        return out[-limit:]

    def _check_reach(self, s: Any, actor: Actor, customer_id: int) -> None:
        if not actor.unscoped:  # an unscoped reader may read the chain of a customer merged or reverted away
            require_reached(s, actor, customer_id)

    def _scoped(self, query: Any, actor: Actor) -> Any:
        scope = customer_scope(actor, Customer.__table__)
        if scope is None:
            return query
        reached = select(Customer.__table__.c.id).where(scope)
        return query.where(and_(self._table.c.customer_id != CRM_CHAIN, self._table.c.customer_id.in_(reached)))

    def _entry(self, row: Mapping[Any, Any], reader: Actor) -> dict[str, Any]:
        changes = json.loads(row["changes"])
        if not reader.sees_personal and isinstance(changes, dict):
            hidden = set(self._personal())
            changes = {k: (_mask(v) if k in hidden else v) for k, v in changes.items()}
        return {
            "customer_id": row["customer_id"] or None,
            "seq": row["seq"],
            "at": _iso(row["at"]),
            "actor": row["actor"],
            "user_id": row["user_id"],
            "action": row["action"],
            "entity": row["entity"],
            "entity_id": row["entity_id"],
            "changes": changes,
            "redacted": bool(row["redacted"]),
        }

    # -- verifying -----------------------------------------------------------------------------------

    def verify(self, *, tx: Transaction | None = None) -> Verification:
        """Check every chain: each entry follows the one before it (``prev_hash``), its ``hash`` is what its
        columns give, its ``changes`` are what was written (unless an erasure redacted them) and no entry is
        missing from the middle of a chain. Streams the log in one pass, in the database's key order."""
        self._access.require("audit:read", tx)
        table = self._table
        entries = chains = redacted = 0
        problems: list[Problem] = []
        chain: int | None = None
        expected_seq, prev = 1, GENESIS
        query = select(table).order_by(table.c.customer_id, table.c.seq)
        with self._units.read(tx) as s:
            for row in s.execute(query, execution_options={"yield_per": 2000}).mappings():
                entries += 1
                cid, seq = row["customer_id"], row["seq"]
                if cid != chain:
                    chain, chains, expected_seq, prev = cid, chains + 1, 1, GENESIS
                if seq != expected_seq:
                    problems.append(Problem(cid, seq, f"entries {expected_seq} to {seq - 1} are missing"))
                if row["prev_hash"] != prev:
                    problems.append(Problem(cid, seq, "does not follow the entry before it"))
                if row["redacted"]:
                    redacted += 1
                elif digest_of(row["changes"]) != row["digest"]:
                    problems.append(Problem(cid, seq, "its changes are not what was written"))
                fields = (row[c] for c in ("actor", "user_id", "action", "entity", "entity_id", "digest"))
                if entry_hash(row["prev_hash"], cid, seq, row["at"], *fields) != row["hash"]:
                    problems.append(Problem(cid, seq, "its columns do not give its hash"))
                expected_seq, prev = seq + 1, row["hash"]
        return Verification(entries, chains, redacted, tuple(problems))


_INVALID = "invalid audit query"
_ACTOR = Text(max_length=100)
_ACTION = Text(max_length=60)


def _check_limit(limit: object) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_000:
        raise ValidationError({"limit": ["must be a whole number from 1 to 100000"]}, _INVALID)


def _moment(value: dt.datetime | None, name: str) -> dt.datetime | None:
    return None if value is None else check(Moment(), value, name, _INVALID)


_FIELD_ACTIONS = frozenset({"customer.created", "customer.updated", "customer.stage_moved", "customer.erased"})


def _change(entry: Mapping[str, Any], field: str, old: Any, new: Any) -> dict[str, Any]:
    return {
        "customer_id": entry["customer_id"],
        "at": entry["at"],
        "actor": entry["actor"],
        "user_id": entry["user_id"],
        "action": entry["action"],
        "field": field,
        "old": old,
        "new": new,
    }


def _erase(value: Any) -> Any:
    if isinstance(value, list):
        return [None if v is None else ERASED for v in value]
    return None if value is None else ERASED


def _mask(value: Any) -> Any:
    if isinstance(value, list):
        return [None for _ in value]
    return None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


__all__ = ["CRM_CHAIN", "ERASED", "GENESIS", "Audit", "Problem", "Verification", "canonical", "entry_hash"]
