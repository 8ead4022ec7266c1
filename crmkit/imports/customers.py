"""One line of a customer import: parsed, matched, then created, updated, left as it is, skipped or rejected.

A line goes through the same validated service calls as the API (``customers.create``,
``customers.create_historical``, ``customers.update``), in a savepoint of the import's unit of work: a
line that fails leaves nothing behind and the others go on. What the line did to a customer is written
to ``crm_import_changes`` in the same savepoint (the fields' values before and after), which is what
:meth:`crmkit.imports.service.Imports.revert` restores from.

Matching runs on the keys the caller names (normalised email, normalised phone, external id). A line
matching two different customers is rejected: which one it meant is the user's call. A line matching a
customer an earlier line of the same import already created or changed is skipped as a duplicate of that
line, so a file with a row twice stores it once. The duplicate check behind ``create`` holds against
concurrent writers (``crmkit.claims``); when it refuses a customer that another import has just
created, the line is matched again and goes on as an update (or a skip, in ``create`` mode).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import attrs
from marshmallow import Schema
from sqlalchemy import select

from crmkit.cells import read_csv_text
from crmkit.customers import DERIVED_FIELDS, Customers, PhoneReader, Prepared, normalize_email
from crmkit.db.functions import upsert_insert
from crmkit.db.models import Customer, CustomerKey, ImportChange
from crmkit.db.types import utcnow
from crmkit.errors import DuplicateCustomerError, ValidationError
from crmkit.fastrows import Dumper
from crmkit.imports.mapping import CREATED_AT, EXTERNAL_ID, STAGE, STAGE_CHANGED_AT, Target
from crmkit.imports.report import LineOutcome, reasons_of
from crmkit.imports.sources import SourceLine
from crmkit.imports.values import ParseOptions, column_reader, parse_value
from crmkit.limits import load
from crmkit.phones import Phones
from crmkit.unit import Transaction, Units

if TYPE_CHECKING:
    from crmkit.imports.chunk import Reading

#: create-only, create or update, update-only
MODES = ("create", "upsert", "update")
_HISTORY = (CREATED_AT, STAGE, STAGE_CHANGED_AT)


@attrs.frozen
class Settings:
    """How an import reads and applies its lines (recorded with the import)."""

    mapping: dict[str, str]
    match: tuple[str, ...]
    mode: str
    system: str
    options: ParseOptions

    def to_dict(self) -> dict[str, Any]:
        options = attrs.asdict(self.options, filter=lambda attribute, _: attribute.init)
        options["choices"] = {k: dict(v) for k, v in self.options.choices.items()}
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        return {"mapping": self.mapping, "match": list(self.match), "mode": self.mode, "system": self.system,
                "options": options}  # fmt: skip


class CustomerLines:
    """Applies the lines of one import, each in a savepoint of the unit of work it is given."""

    def __init__(
        self,
        *,
        customers: Customers,
        phones: Phones,
        units: Units,
        targets: Mapping[str, Target],
        settings: Settings,
        dump: Dumper,
        customer_in: Callable[[], Schema],
        import_id: int,
        csv: bool = False,
        actor_id: int | None,
    ) -> None:
        self._customers = customers
        self._phones = phones
        self._units = units
        self._targets = targets
        self._settings = settings
        self._dump = dump
        self._customer_in = customer_in
        # text a CSV export protected from spreadsheets ('=...) reads back as it was
        self._cell = read_csv_text if csv else None
        self._import_id = import_id
        self._actor_id = actor_id
        #: chunks whose reading has begun and that are not applied yet, in file order
        self._readings: list[Reading] = []
        # per mapped column: its target, whether its value is a history value (or the external id), and
        # its reader, made once per import rather than dispatched on the field's type per cell
        self._columns = [
            (column, name, name in _HISTORY or name == EXTERNAL_ID,
             column_reader(name, targets[name].kind, targets[name].choices, settings.options))
            for column, name in settings.mapping.items()
        ]  # fmt: skip

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def import_id(self) -> int:
        return self._import_id

    def read_chunk(self, lines: Sequence[SourceLine]) -> Reading:
        """Begin reading the chunk ``lines`` (parsing needs no transaction: on SQLite the import does it while
        it steps aside for other writers, a few chunks ahead); :meth:`apply_chunk` of the same lines finishes
        it. Asked again for the same lines, the reading already begun."""
        from crmkit.imports.chunk import Reading

        for reading in self._readings:
            if reading.chunk is lines:
                return reading
        reading = Reading(self, self._phones, lines)
        self._readings.append(reading)
        return reading

    def apply_chunk(self, t: Transaction, lines: Sequence[SourceLine]) -> list[LineOutcome]:
        """The chunk's lines, new customers written together (:mod:`crmkit.imports.chunk`)."""
        from crmkit.imports.chunk import Chunk

        reading = self.read_chunk(lines)
        self._readings.remove(reading)
        return Chunk(self, self._customers, self._phones, self._units, t, self._actor_id).apply(reading)

    def apply(self, t: Transaction, line: SourceLine) -> LineOutcome:
        if line.problems:
            return LineOutcome(line.line, "rejected", reasons=tuple(line.problems))
        data, history, reasons = self.parse(line.values)
        if reasons:  # and what else is wrong with the line, so that it is fixed in one go
            try:
                load(self._customer_in(), data, partial=self._settings.mode == "update")
            except ValidationError as exc:
                reasons.extend(reasons_of(exc.errors))
            return LineOutcome(line.line, "rejected", reasons=tuple(reasons))
        if not data and not history:
            return LineOutcome(line.line, "skipped", reasons=("no values in the mapped columns",))
        keys = self.keys(data, history)
        for attempt in (1, 2):
            found = self._match(t, keys)
            if len(found) > 1:
                described = ", ".join(f"{cid} by {' and '.join(on)}" for cid, on in sorted(found.items()))
                return LineOutcome(line.line, "rejected", reasons=(f"matches more than one customer: {described}",))
            try:
                if found:
                    ((customer_id, on),) = found.items()
                    return self._existing(t, line.line, customer_id, on, data, history)
                if self._settings.mode == "update":
                    named = ", ".join(k for k in self._settings.match if keys.get(k)) or "no match key given"
                    return LineOutcome(line.line, "skipped", reasons=(f"no customer matches ({named})",))
                return self._create(t, line.line, data, history)
            except DuplicateCustomerError as exc:
                # another writer holds this email or phone: match again (the claim waited for it) and
                # treat the line as meant for that customer
                if attempt == 2 or self._settings.mode == "create":
                    return LineOutcome(line.line, "skipped", reasons=(str(exc),), customer_id=exc.existing_ids[0])
            except ValidationError as exc:
                return LineOutcome(line.line, "rejected", reasons=tuple(reasons_of(exc.errors)))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- parsing ---------------------------------------------------------------------------------

    def parse(
        self, values: Mapping[str, Any], normalize: PhoneReader | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """The line's values, its history values (and external id), and the reasons it cannot be read."""
        return self.parse_many([values], normalize)[0]

    def parse_many(
        self, rows: Sequence[Mapping[str, Any]], normalize: PhoneReader | None = None
    ) -> list[tuple[dict[str, Any], dict[str, Any], list[str]]]:
        """:meth:`parse` of many lines' values, each mapped column read for all the lines at once
        (:func:`crmkit.imports.values.column_reader`)."""
        if set(map(type, rows)) != {dict}:
            rows = [dict(row) for row in rows]
        options = self._settings.options
        unprotect = self._cell
        reasons: dict[int, list[str]] = {}
        data_names: list[str] = []
        data_columns: list[list[Any]] = []
        history_names: list[str] = []
        history_columns: list[list[Any]] = []
        for column, name, of_history, read_column in self._columns:
            cells: list[Any] = list(map(dict.get, rows, repeat(column)))  # type: ignore[arg-type]
            if unprotect is not None and _quoted(cells):
                cells = [unprotect(c) if type(c) is str and c.startswith("'") else c for c in cells]
            values, failed = read_column(cells)
            for i, exc in failed.items():
                try:  # a file from another CRM often has a day where a time is due: the day's start, UTC
                    if name not in (CREATED_AT, STAGE_CHANGED_AT):
                        raise exc
                    values[i] = parse_value("date", cells[i], options, field=name)
                except ValueError:
                    reasons.setdefault(i, []).append(f"{name} (column {column!r}): {exc}")
            (history_names if of_history else data_names).append(name)
            (history_columns if of_history else data_columns).append(values)
        out = []
        region = options.phone_region
        lines: Iterable[tuple[Any, ...]] = zip(*data_columns, strict=True) if data_columns else [()] * len(rows)
        for i, line in enumerate(lines):
            data = {name: value for name, value in zip(data_names, line, strict=True) if value is not None}
            history = (
                {name: column[i] for name, column in zip(history_names, history_columns, strict=True)
                 if column[i] is not None}
                if history_columns else {}
            )  # fmt: skip
            why = reasons.get(i, [])
            phone = data.get("phone")
            if phone and region and not data.get("country"):
                try:  # read in the file's region, kept in its international form
                    data["phone"] = (normalize or self._phones.normalize)(str(phone), region) or phone
                except ValueError as exc:
                    why.append(f"phone: {exc}")
            out.append((data, history, why))
        return out

    def keys(
        self, data: Mapping[str, Any], history: Mapping[str, Any], normalize: PhoneReader | None = None
    ) -> dict[str, str | None]:
        """The line's match keys: normalised email and phone, external id."""
        phone = None
        if data.get("phone"):
            region = self._phones.region_of(data.get("country"), data.get("branch"))
            try:
                phone = (normalize or self._phones.normalize)(str(data["phone"]), region)
            except ValueError:
                phone = None  # the create or update says why
        email = normalize_email(data["email"]) if data.get("email") else None
        return {"email": email, "phone": phone, EXTERNAL_ID: history.get(EXTERNAL_ID)}

    # -- matching --------------------------------------------------------------------------------

    def _match(self, t: Transaction, keys: Mapping[str, str | None]) -> dict[int, list[str]]:
        """The customers the line's match keys name: id -> the keys that named it."""
        found: dict[int, list[str]] = {}
        customers = Customer.__table__.c
        session = t.session
        for key in self._settings.match:
            value = keys.get(key)
            if not value:
                continue
            if key == EXTERNAL_ID:
                query = select(CustomerKey.customer_id).where(
                    CustomerKey.system == self._settings.system, CustomerKey.external_id == value
                )
            else:
                column = customers.email_normalized if key == "email" else customers.phone_normalized
                query = select(customers.id).where(column == value)
            for customer_id in session.scalars(query):
                found.setdefault(int(customer_id), []).append(key)
        return found

    # -- writing ---------------------------------------------------------------------------------

    def _existing(
        self, t: Transaction, line: int, customer_id: int, on: list[str], data: dict[str, Any], history: dict[str, Any]
    ) -> LineOutcome:
        earlier = t.session.get(ImportChange, (customer_id, self._import_id))
        if earlier is not None:
            return LineOutcome(line, "skipped", customer_id, reasons=(f"duplicate of line {earlier.line}",))
        if self._settings.mode == "create":
            reason = f"customer {customer_id} already has this {' and '.join(on)}"
            return LineOutcome(line, "skipped", customer_id, reasons=(reason,))
        current = self._customers.get(customer_id, tx=t)
        changes = self._changes(current, data)
        external = history.get(EXTERNAL_ID)
        new_key = bool(external) and EXTERNAL_ID not in on and self._key_owner(t, str(external)) != customer_id
        if not changes and not new_key:
            self.ledger(t, customer_id, line, "unchanged", before={}, after={})
            return LineOutcome(line, "unchanged", customer_id)
        with self._units.write(t):
            record = self._customers.update(customer_id, changes, actor_id=self._actor_id, tx=t) if changes else current
            if new_key:
                self._add_key(t, customer_id, str(external))
            names = sorted(changes)
            self.ledger(
                t, customer_id, line, "updated",
                before={k: current.get(k) for k in names}, after={k: record.get(k) for k in names},
            )  # fmt: skip
        return LineOutcome(line, "updated", customer_id, fields=tuple(sorted([*changes, *([EXTERNAL_ID] * new_key)])))

    def _changes(self, current: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The values of ``data`` that differ from the customer's (compared as the read model shows them)."""
        changes: dict[str, Any] = {}
        shown = self._dump(data)
        for name, value in data.items():
            if name == "email" and normalize_email(str(value)) == current.get("email_normalized"):
                continue  # the same address written another way is not a change
            if name == "phone" and current.get("phone_normalized") and self._same_phone(value, current):
                continue
            if shown.get(name, value) != current.get(name):
                changes[name] = value
        return changes

    def _same_phone(self, value: Any, current: Mapping[str, Any]) -> bool:
        region = self._phones.region_of(current.get("country"), current.get("branch"))
        try:
            return self._phones.normalize(str(value), region) == current.get("phone_normalized")
        except ValueError:
            return False

    def prepare(self, data: dict[str, Any], history: dict[str, Any], normalize: PhoneReader | None = None) -> Prepared:
        """The line's new customer, validated: by ``prepare_historical`` when the line has a history value
        (created at, stage, stage changed at), else by ``prepare``; the chunk path and ``_create`` both
        validate with this."""
        if any(history.get(name) for name in _HISTORY):
            created = history.get(CREATED_AT) or utcnow()
            return self._customers.prepare_historical(
                data,
                created_at=_aware(created),
                stage=history.get(STAGE),
                stage_changed_at=_aware(history[STAGE_CHANGED_AT]) if history.get(STAGE_CHANGED_AT) else None,
                cause=f"import {self._import_id}",
                normalize=normalize,
            )
        return self._customers.prepare(data, normalize=normalize)

    def prepare_many(
        self, lines: Sequence[tuple[dict[str, Any], dict[str, Any]]], normalize: PhoneReader | None = None
    ) -> list[Prepared | ValidationError]:
        """:meth:`prepare` of many lines' (data, history), the ``ValidationError`` in place of a customer it
        refuses: the lines without history values checked together (:meth:`Customers.prepare_many`)."""
        plain = [i for i, (_, history) in enumerate(lines) if not history or not any(map(history.get, _HISTORY))]
        together = self._customers.prepare_many([lines[i][0] for i in plain], normalize=normalize)
        checked = dict(zip(plain, together, strict=True))
        out: list[Prepared | ValidationError] = []
        for i, (data, history) in enumerate(lines):
            if i in checked:
                out.append(checked[i])
                continue
            try:
                out.append(self.prepare(data, history, normalize))
            except ValidationError as exc:
                out.append(exc)
        return out

    def _create(self, t: Transaction, line: int, data: dict[str, Any], history: dict[str, Any]) -> LineOutcome:
        with self._units.write(t):
            # validated by prepare (the one place that decides between a plain and a historical create),
            # after the permission and reach checks, as create and create_historical do
            record = self._customers.create_prepared(
                data, lambda: self.prepare(data, history), actor_id=self._actor_id, tx=t
            )
            customer_id = int(record["id"])
            if history.get(EXTERNAL_ID):
                self._add_key(t, customer_id, str(history[EXTERNAL_ID]))
            self.ledger(t, customer_id, line, "created", before={}, after=created_after(record))
        return LineOutcome(line, "created", customer_id, fields=tuple(sorted(data)))

    def _key_owner(self, t: Transaction, external_id: str) -> int | None:
        owner = t.session.get(CustomerKey, (self._settings.system, external_id))
        return None if owner is None else owner.customer_id

    def _add_key(self, t: Transaction, customer_id: int, external_id: str) -> None:
        """Record the customer's id in the source system; refused when it already names someone else (the
        key's primary key decides, so two imports at once cannot both take it)."""
        insert = upsert_insert(t.session)
        values = {"system": self._settings.system, "external_id": external_id, "customer_id": customer_id}
        t.session.execute(insert(CustomerKey.__table__).values(**values).on_conflict_do_nothing())
        owner = self._key_owner(t, external_id)
        if owner != customer_id:
            assert owner is not None
            raise DuplicateCustomerError([owner], [EXTERNAL_ID])

    def ledger(
        self, t: Transaction, customer_id: int, line: int, action: str, *, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        t.session.execute(
            ImportChange.__table__.insert().values(
                customer_id=customer_id, import_id=self._import_id, line=line, action=action, before=before, after=after
            )
        )


def _quoted(cells: Sequence[Any]) -> bool:
    """Whether some cell may be text a CSV export protected (it starts with ``'``), asked at C speed (a quote
    after a line break inside a cell is taken for one too: the cells are then looked at one by one)."""
    try:
        return "\n'" in "\n" + "\n".join(cells)
    except TypeError:  # a cell that is not text
        return True


def created_after(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a created customer: its fields that have a value (a revert reads the others
    as empty), so a wide customer table does not make a large ledger, but those the CRM derives from the
    others and the time of the last write (:data:`crmkit.customers.DERIVED_FIELDS`)."""
    return {k: v for k, v in record.items() if v is not None and k not in DERIVED_FIELDS}


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):  # a date alone: the start of that day, UTC
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise ValueError(f"not a date or datetime: {value!r}")
