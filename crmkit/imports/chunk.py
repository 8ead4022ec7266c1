"""One chunk of a customer import, set-based: what :meth:`CustomerLines.apply` does line by line, with the
chunk's matches looked up in one query per match key and its new customers written together.

Every line is parsed first and its match keys computed; one ``IN (...)`` query per key finds the customers
they name. Then the lines are walked in file order. A line that names no customer and would create one is
validated as ``create`` validates it and held back; held-back customers are written with a few statements
per table (:meth:`crmkit.customers.Customers.insert_many`), their ledger and external-id rows with them.
Every other line (rejected, matched, update-only, with an owner to check) goes through the line path,
after the held-back customers are written, so the database is in the same state it would be in line by
line when it runs. A line whose key or claim is one a held-back customer has does too: the line path then
finds that customer exactly as it would have.

If the bulk write is refused (a customer with one of the values appeared since the lookup: another
writer's, which the claims waited for), its savepoint is rolled back and those lines go through the line
path, which words each outcome as it always does. So a chunk gives the same outcomes and rows as the line
path, only faster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _json_text  # json.dumps' own escaping of a string
from typing import Any

import attrs
from sqlalchemy import Connection, Dialect, select

from crmkit.customers import DERIVED_FIELDS, Customers, NewCustomers, PhoneReader, Prepared, normalize_email
from crmkit.db.bulk import BulkInsert
from crmkit.db.customer_batch import driver_columns
from crmkit.db.driver import cursor
from crmkit.db.models import Customer, CustomerKey, ImportChange
from crmkit.errors import DuplicateCustomerError, SuppressedCustomerError, ValidationError
from crmkit.imports.customers import CustomerLines, created_after
from crmkit.imports.mapping import EXTERNAL_ID
from crmkit.imports.report import LineOutcome, reasons_of
from crmkit.imports.sources import SourceLine
from crmkit.phones import Phones
from crmkit.unit import Transaction, Units

#: Values per ``IN (...)``: under SQLite's limit of bound parameters.
_IN = 5000
_LEDGER = ("customer_id", "import_id", "line", "action", "before", "after")
_KEYS = ("system", "external_id", "customer_id")
_CUSTOMERS = Customer.__tablename__
_KEYS_TABLE = CustomerKey.__tablename__
#: The fields whose change may change a customer's match keys (the country and branch decide the phone's
#: region).
_KEY_FIELDS = frozenset({"email", "phone", "country", "branch", EXTERNAL_ID})


_UNSEEN: Any = object()


class PhoneMemo:
    """The CRM's ``normalize_phone`` remembered for one chunk: a line's phone is read for its match key and
    again when its customer is validated. Kept per chunk, so memory stays flat however long the file."""

    def __init__(self, normalize: PhoneReader) -> None:
        self._normalize = normalize
        self._seen: dict[tuple[str, str], str | ValueError | None] = {}

    def __call__(self, raw: str, region: str) -> str | None:
        key = (raw, region)
        found = self._seen.get(key, _UNSEEN)
        if found is _UNSEEN:
            try:
                found = self._seen[key] = self._normalize(raw, region)
            except ValueError as exc:
                found = self._seen[key] = exc
        if type(found) is not str and isinstance(found, ValueError):
            raise ValueError(*found.args)
        return found


class _Found:
    """The customers the chunk's match keys name: (key, value) -> ids, and back, so that a customer whose
    keys change is found again by its new ones only."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], list[int]] = {}
        self._of: dict[int, list[tuple[str, str]]] = {}
        #: how many times what it knows has changed
        self.changes = 0

    def ids(self, key: str, value: str) -> list[int]:
        return self._ids.get((key, value), [])

    def add(self, key: str, value: str, customer_id: int) -> None:
        named = (key, value)
        ids = self._ids.get(named)
        if ids is None:
            self._ids[named] = [customer_id]
        elif customer_id in ids:
            return
        else:
            ids.append(customer_id)
        self.changes += 1
        of = self._of.get(customer_id)
        if of is None:
            self._of[customer_id] = [named]
        else:
            of.append(named)

    def forget(self, customer_id: int) -> None:
        for named in self._of.pop(customer_id, []):
            self._ids[named].remove(customer_id)
            self.changes += 1


@attrs.define  # not frozen: made for every line, and a frozen class sets each field the slow way
class _Parsed:
    index: int
    line: SourceLine
    data: dict[str, Any]
    history: dict[str, Any]
    keys: dict[str, str | None]
    #: the line can only be read by the line path (a problem, a reason, nothing to do)
    plain: bool
    #: what the line names (see :meth:`Reading._named`), worked out once
    named: frozenset[tuple[str, str]] = frozenset()


@attrs.define
class _New:
    index: int
    line: SourceLine
    data: dict[str, Any]
    keys: dict[str, str | None]
    external_id: str | None
    prepared: Prepared


class Reading:
    """A chunk's lines parsed and their match keys worked out, in file order. It needs no database, so on
    SQLite an import does it while it steps aside for the other writers (:meth:`step`), and the chunk
    finishes what is left (:meth:`parsed`)."""

    #: Lines read per :meth:`step`.
    STEP = 200

    def __init__(self, lines: CustomerLines, phones: Phones, chunk: Sequence[SourceLine]) -> None:
        self._lines = lines
        self.chunk = chunk
        self.normalize = PhoneMemo(phones.reader())
        self._done: list[_Parsed] = []
        #: the keys a line names: its match keys, then the claims and external id a new customer takes
        self._naming = tuple(dict.fromkeys([*lines.settings.match, "email", "phone", EXTERNAL_ID]))

    def step(self) -> bool:
        """Read the next few lines; whether some are left."""
        done, chunk = self._done, self.chunk
        start = len(done)
        lines = chunk[start : start + self.STEP]
        readable = [line for line in lines if not line.problems]
        parsed = iter(self._lines.parse_many([line.values for line in readable], self.normalize))
        for i, line in enumerate(lines, start):
            if line.problems:
                done.append(_Parsed(i, line, {}, {}, {}, True))
                continue
            data, history, reasons = next(parsed)
            if reasons or (not data and not history):
                done.append(_Parsed(i, line, data, history, {}, True))
                continue
            keys = self._lines.keys(data, history, self.normalize)
            done.append(_Parsed(i, line, data, history, keys, False, self._named(keys)))
        return len(done) < len(chunk)

    def parsed(self) -> list[_Parsed]:
        while self.step():
            pass
        return self._done

    def _named(self, keys: Mapping[str, str | None]) -> frozenset[tuple[str, str]]:
        """What a line names: its match keys, and the claims (and external id) its new customer would take."""
        return frozenset([(key, value) for key in self._naming if (value := keys.get(key))])


class Chunk:
    """Applies one chunk of lines in the unit of work ``t``."""

    def __init__(
        self,
        lines: CustomerLines,
        customers: Customers,
        phones: Phones,
        units: Units,
        t: Transaction,
        actor_id: int | None,
    ) -> None:
        self._lines = lines
        self._customers = customers
        self._units = units
        self._t = t
        self._actor_id = actor_id
        self._settings = lines.settings
        self._normalize: PhoneReader = phones.normalize
        self._outcomes: list[LineOutcome | None] = []
        self._held: list[_New] = []
        #: the match keys (key, value) and claims (kind, value) of the held-back customers
        self._held_keys: set[tuple[str, str]] = set()
        self._found = _Found()
        self._ids_roll_back = t.session.get_bind().dialect.name == "sqlite"
        #: the new customers of the chunk's lines, validated together before the lines are walked
        self._prepared: dict[int, Prepared | ValidationError] = {}

    def apply(self, reading: Reading) -> list[LineOutcome]:
        lines = reading.chunk
        self._outcomes = [None] * len(lines)
        self._normalize = reading.normalize  # a line's phone, read for its key, is read again when validated
        parsed = reading.parsed()
        self._found = self._lookup(parsed)
        # the lines that would create a customer as the chunk begins, validated together (a line that an
        # earlier one turns into an update does not use its answer)
        hopeful = [item for item in parsed if not item.plain and self._new(item)]
        self._prepared = prepared = dict(
            zip(
                (item.index for item in hopeful),
                self._lines.prepare_many([(item.data, item.history) for item in hopeful], self._normalize),
                strict=True,
            )
        )
        found, seen = self._found, self._found.changes  # until it knows more customers, those lines are new
        for item in parsed:
            if item.plain:
                self._outcomes[item.index] = self._lines.apply(self._t, item.line)  # writes nothing
                continue
            if not item.named.isdisjoint(self._held_keys):
                self._write_held()
            if item.index in prepared if found.changes == seen else self._new(item):
                self._hold(item)
                continue
            self._write_held()
            self._by_line(item.index, item.line, item.keys)
        self._write_held(last=True)
        done = [o for o in self._outcomes if o is not None]
        assert len(done) == len(lines)
        return done

    # -- reading ---------------------------------------------------------------------------------

    def _lookup(self, parsed: Iterable[_Parsed]) -> _Found:
        """The customers each match key value of these lines names, one query per key (per 5,000 values)."""
        wanted = {key: {v for item in parsed if (v := item.keys.get(key))} for key in self._settings.match}
        found = _Found()
        for key, values in wanted.items():
            ordered = sorted(values)
            for start in range(0, len(ordered), _IN):
                page = ordered[start : start + _IN]
                if key == EXTERNAL_ID:
                    head = f"SELECT external_id, customer_id FROM {_KEYS_TABLE} WHERE system = {{mark}} AND"
                    rows = self._among(head, "external_id", page, (self._settings.system,))
                else:
                    column = "email_normalized" if key == "email" else "phone_normalized"
                    rows = self._among(f"SELECT {column}, id FROM {_CUSTOMERS} WHERE", column, page)
                for value, customer_id in rows:
                    found.add(key, value, int(customer_id))
        return found

    def _among(
        self, head: str, column: str, values: Sequence[str], before: tuple[Any, ...] = (), tail: str = ""
    ) -> list[Any]:
        """The rows of ``{head} column IN values {tail}`` (``{mark}`` in ``head``: the driver's placeholder, for the
        values ``before``), on the driver's cursor. A chunk asks with thousands of values; through
        SQLAlchemy each query was compiled again for its count of values (an expanding parameter): a tenth
        of an import's time under a profiler (0.74 s of 7 s at 20,000 lines; 0.10 s so). On PostgreSQL
        ``= ANY(array)``: one parameter the server plans once rather than one per value. Pending ORM changes
        are flushed first, as ``Session.execute`` would."""
        session = self._t.session
        if session.autoflush and not session._is_clean():
            session.flush()
        cur = cursor(session)
        mark = cur.mark
        head = head.replace("{mark}", mark)
        if cur.dialect.name == "postgresql":
            return cur.all(f"{head} {column} = ANY({mark}){tail}", (*before, list(values)))
        return cur.all(f"{head} {column} IN ({', '.join([mark] * len(values))}){tail}", (*before, *values))

    def _by_line(self, index: int, line: SourceLine, keys: Mapping[str, str | None]) -> None:
        """Apply the line through the line path, and keep what the chunk knows of the customers' keys true:
        a customer it created has the line's keys, one it updated may have new ones."""
        outcome = self._outcomes[index] = self._lines.apply(self._t, line)
        if outcome.customer_id is None:
            return
        if outcome.action == "created":
            for key in self._settings.match:
                value = keys.get(key)
                if value:
                    self._found.add(key, value, outcome.customer_id)
        elif outcome.action == "updated" and _KEY_FIELDS & set(outcome.fields):
            self._reread(outcome.customer_id)

    def _reread(self, customer_id: int) -> None:
        """The customer's match keys as they are now, in place of those the chunk knew."""
        found = self._found
        found.forget(customer_id)
        session = self._t.session
        for key in self._settings.match:
            if key == EXTERNAL_ID:
                keys = CustomerKey.__table__.c
                query = select(keys.external_id).where(
                    keys.system == self._settings.system, keys.customer_id == customer_id
                )
            else:
                customers = Customer.__table__.c
                column = customers.email_normalized if key == "email" else customers.phone_normalized
                query = select(column).where(customers.id == customer_id)
            for value in session.scalars(query):
                if value:
                    found.add(key, value, customer_id)

    # -- new customers ---------------------------------------------------------------------------

    def _new(self, item: _Parsed) -> bool:
        """Whether the line creates a customer: it names none the chunk knows of, and may create one."""
        if self._settings.mode == "update" or item.data.get("owner_id") is not None:
            return False
        found, keys = self._found, item.keys
        for key in self._settings.match:
            value = keys.get(key)
            if value and found.ids(key, value):
                return False
        return True

    def _hold(self, item: _Parsed) -> None:
        """Validate the line's new customer and hold it back (or reject the line, as ``create`` would)."""
        prepared = self._prepared.pop(item.index, None)
        if prepared is None:
            try:
                prepared = self._lines.prepare(item.data, item.history, self._normalize)
            except ValidationError as exc:
                prepared = exc
        if isinstance(prepared, ValidationError):
            reasons = tuple(reasons_of(prepared.errors))
            self._outcomes[item.index] = LineOutcome(item.line.line, "rejected", reasons=reasons)
            return
        external = item.history.get(EXTERNAL_ID)
        new = _New(item.index, item.line, item.data, item.keys, str(external) if external else None, prepared)
        self._held.append(new)
        self._held_keys |= item.named

    def _write_held(self, *, last: bool = False) -> None:
        """Write the held-back customers; unless it is the ``last`` write of the chunk, the chunk then knows
        them by their match keys."""
        held, self._held = self._held, []
        self._held_keys = set()
        if not held:
            return
        t = self._t
        # a refused bulk write is rolled back and its lines go through the line path anyway; asking first
        # only saves ids where a refusal would use them up (a PostgreSQL sequence does not roll back; SQLite
        # counts on from the largest id)
        if not self._ids_roll_back and self._taken(held):
            for h in held:
                self._by_line(h.index, h.line, h.keys)
            return
        try:
            with self._units.write(t):
                created = self._customers.insert_many([h.prepared for h in held], actor_id=self._actor_id, tx=t)
                ids = created.ids
                connection = t.session.connection()
                self._add_keys(connection, held, ids)
                ledger = CreatedLedger(connection.dialect, self._lines.import_id)
                ledger.insert(connection, created, [h.line.line for h in held])
        except (DuplicateCustomerError, SuppressedCustomerError):
            # someone has one of these values since the lookup (another writer, or a customer the match
            # keys do not name), or one is an erased person's: each line as the line path words it
            for h in held:
                self._by_line(h.index, h.line, h.keys)
            return
        named: dict[tuple[str, ...], tuple[str, ...]] = {}  # the lines of a file mostly set the same fields
        for cid, h in zip(ids, held, strict=True):
            keys = tuple(h.data)
            fields = named.get(keys)
            if fields is None:
                fields = named[keys] = tuple(sorted(keys))
            self._outcomes[h.index] = LineOutcome(h.line.line, "created", cid, fields=fields)
            if last:
                continue
            for key in self._settings.match:
                value = h.keys.get(key)
                if value:
                    self._found.add(key, value, cid)

    def _taken(self, held: Sequence[_New]) -> bool:
        """Whether a customer has one of the held-back customers' emails, phones or external ids already (one
        the match keys do not name). Then the line path words each line's outcome; asked before the bulk
        write where a refusal would cost ids (a PostgreSQL sequence does not roll back)."""
        wanted = {
            "email_normalized": [e for h in held if (e := normalize_email(h.prepared.values.get("email")))],
            "phone_normalized": [p for h in held if (p := h.prepared.phone_normalized)],
            "external_id": [h.external_id for h in held if h.external_id],
        }
        for column, values in wanted.items():
            for start in range(0, len(values), _IN):
                page = values[start : start + _IN]
                if column == "external_id":
                    head = f"SELECT 1 FROM {_KEYS_TABLE} WHERE system = {{mark}} AND"
                    rows = self._among(head, column, page, (self._settings.system,), " LIMIT 1")
                else:
                    rows = self._among(f"SELECT 1 FROM {_CUSTOMERS} WHERE", column, page, tail=" LIMIT 1")
                if rows:
                    return True
        return False

    def _add_keys(self, connection: Connection, held: Sequence[_New], ids: Sequence[int]) -> None:
        """The new customers' ids in the source system; refused when one already names someone else (the
        key's primary key decides, as :meth:`CustomerLines._add_key` does)."""
        system = self._settings.system
        rows = [(system, h.external_id, cid) for h, cid in zip(held, ids, strict=True) if h.external_id]
        if not rows:
            return
        statement = BulkInsert(CustomerKey.__table__, _KEYS, connection.dialect)
        rows.sort()
        stored = statement.insert_new(connection, rows, ("system", "external_id"))
        if len(stored) != len(rows):
            raise DuplicateCustomerError([], [EXTERNAL_ID])


class CreatedLedger:
    """The ledger rows (``crm_import_changes``) of customers an import created: ``before`` empty, ``after``
    their record's fields that have a value, but the derived ones (:func:`created_after`).

    The rows go to the driver as driver values. ``after`` is JSON text, which the column's bind processor
    makes with ``json.dumps``; when the dialect uses ``json.dumps`` and the other columns go as they are, the
    text is written here (:func:`json_object`: the same text, without building the dict first or the
    processor's per-row calls). Otherwise every row goes through the bind processors.
    ``tests/test_import_speed.py`` compares both on generated records, for SQLite and PostgreSQL."""

    def __init__(self, dialect: Dialect, import_id: int) -> None:
        self._statement = BulkInsert(ImportChange.__table__, _LEDGER, dialect)
        self._import_id = import_id
        processors = dict(zip(_LEDGER, self._statement.processors, strict=True))
        self._direct = getattr(dialect, "_json_serializer", None) is None and not any(
            processors[name] for name in ("customer_id", "import_id", "line", "action")
        )
        self._keys: dict[str, str] = {}

    def rows(self, created: Sequence[tuple[int, int, Mapping[str, Any]]]) -> list[tuple[Any, ...]]:
        """The driver rows for (customer id, line, record) of each created customer."""
        import_id = self._import_id
        if self._direct:
            keys = self._keys
            return [(cid, import_id, line, "created", "{}", json_object(record, keys)) for cid, line, record in created]
        count = len(created)
        columns: list[Sequence[Any]] = [
            [cid for cid, _, _ in created], [import_id] * count, [line for _, line, _ in created],
            ["created"] * count, [{}] * count, [created_after(record) for _, _, record in created],
        ]  # fmt: skip
        return list(zip(*driver_columns(self._statement, columns), strict=True))

    def new_rows(self, created: NewCustomers, lines: Sequence[int]) -> list[tuple[Any, ...]]:
        """:meth:`rows` of the customers ``insert_many`` made (``lines``: each one's line): when the text is
        written directly, from each customer's values without making its record where that gives the same
        text (:meth:`NewCustomers.created_jsons`)."""
        if not self._direct:
            return self.rows(list(zip(created.ids, lines, created.records(), strict=True)))
        import_id, keys = self._import_id, self._keys
        texts = created.created_jsons()
        for index, text in enumerate(texts):
            if text is None:
                texts[index] = json_object(created.record(index), keys)
        return [
            (cid, import_id, line, "created", "{}", text)
            for cid, line, text in zip(created.ids, lines, texts, strict=True)
        ]

    def insert(self, connection: Connection, created: NewCustomers, lines: Sequence[int]) -> None:
        self._statement.execute(connection, self.new_rows(created, lines))


def json_object(record: Mapping[str, Any], keys: dict[str, str]) -> str:
    """``json.dumps(created_after(record))``, the ledger's text of a created customer: the same text (its
    default separators, ASCII escapes) for the values a record holds, text and whole numbers; any other
    value (a float, a list...) is left to ``json.dumps`` itself. ``keys`` remembers each key's ``"key": ``
    between calls."""
    parts = []
    for key, value in record.items():
        if value is None or key in DERIVED_FIELDS:
            continue
        kind = type(value)
        if kind is str:
            text = _json_text(value)
        elif kind is int:
            text = int.__repr__(value)  # what json.dumps writes for an int (not a bool, not an IntEnum)
        else:
            return json.dumps(created_after(record))
        head = keys.get(key)
        if head is None:
            if type(key) is not str:
                return json.dumps(created_after(record))
            head = keys[key] = _json_text(key) + ": "
        parts.append(head + text)
    return "{" + ", ".join(parts) + "}"
