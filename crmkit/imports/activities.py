"""The lines of an integration's file (a turnstile export, a call log, receipts) as activities.

An :class:`~crmkit.ImporterSpec` says which columns the file has and how a line reads
(``parse``); this module does the rest for every importer alike, a chunk of lines at a time in the unit of
work it is given: it maps the columns by header, matches each line's customer with one query per match
key for the whole chunk, creates a lead for an unknown customer when the importer offers one and the
import allows it, and stores the activities with ``crm.activities.ingest``, whose idempotency key
(``source``, the line's ``key``) stores an event once however often it is imported. Each line's outcome
is read back from what was stored, so the totals are exact even when another import of the same events
runs at the same time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, tuple_

from crmkit.activities import Activities
from crmkit.customers import Customers, normalize_email
from crmkit.db.models import Activity, CustomerKey, ImportChange
from crmkit.errors import DuplicateCustomerError, PluginError, ValidationError
from crmkit.imports.report import LineOutcome, reasons_of
from crmkit.imports.sources import SourceLine
from crmkit.phones import Phones
from crmkit.specs import ImportContext, ImportedActivity, ImporterSpec
from crmkit.unit import Transaction, Units

#: the customer keys that are not a customer field
_KEYS = ("phone", "email", "external_id")


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def resolve_columns(spec: ImporterSpec, header: Sequence[str], overrides: Mapping[str, str] | None) -> dict[str, str]:
    """``{importer column: file column}``: each of the importer's columns found by name or alias (or named
    by the caller in ``overrides``, importer column -> file column); ``ValidationError`` when a required
    one is missing."""
    by_key = {_key(h): h for h in header}
    found: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for column, aliases in spec.columns.items():
        given = (overrides or {}).get(column)
        if given is not None:
            if given not in header:
                errors[column] = [f"the mapping names column {given!r}, which the file does not have"]
            else:
                found[column] = given
            continue
        match = next((by_key[_key(n)] for n in (column, *aliases) if _key(n) in by_key), None)
        if match is not None:
            found[column] = match
    unknown = sorted(set(overrides or {}) - set(spec.columns))
    for column in unknown:
        errors[column] = [f"importer {spec.name} has no column {column!r}: it has {', '.join(spec.columns)}"]
    for column in spec.required:
        if column not in found and column not in errors:
            names = ", ".join((column, *spec.columns[column]))
            errors[column] = [f"the file has no {column} column (looked for: {names})"]
    if errors:
        raise ValidationError(errors, f"the file does not fit importer {spec.name}")
    return found


class ActivityLines:
    """Applies chunks of an importer's lines in the unit of work given."""

    def __init__(
        self,
        *,
        spec: ImporterSpec,
        columns: Mapping[str, str],
        context: ImportContext,
        activities: Activities,
        customers: Customers,
        phones: Phones,
        units: Units,
        import_id: int,
        actor_id: int | None,
    ) -> None:
        self._spec = spec
        self._columns = columns
        self._context = context
        self._activities = activities
        self._customers = customers
        self._phones = phones
        self._units = units
        self._import_id = import_id
        self._actor_id = actor_id
        self._create_unknown = bool(context.settings.get("create_unknown"))

    def apply(self, t: Transaction, lines: Sequence[SourceLine]) -> list[LineOutcome]:
        outcomes: dict[int, LineOutcome] = {}
        drafts: dict[int, tuple[ImportedActivity, tuple[str, str]]] = {}
        for i, line in enumerate(lines):
            parsed = self._parse(line)
            if isinstance(parsed, LineOutcome):
                outcomes[i] = parsed
            else:
                drafts[i] = parsed
        matched = self._match(t, {who for _, who in drafts.values()})
        rows: list[dict[str, Any]] = []
        positions: list[int] = []
        leads: dict[tuple[str, str], int] = {}
        for i, (draft, who) in drafts.items():
            number = lines[i].line
            ids = matched.get(who, [])
            if len(ids) > 1:
                ids_text = ", ".join(map(str, ids))
                outcomes[i] = _rejected(number, f"{who[0]} {who[1]} matches more than one customer: {ids_text}")
                continue
            customer_id = ids[0] if ids else leads.get(who)
            if customer_id is None:
                if draft.lead is None or not self._create_unknown:
                    outcomes[i] = _rejected(number, f"no customer with {who[0]} {who[1]}")
                    continue
                created = self._lead(t, number, draft.lead)
                if isinstance(created, LineOutcome):
                    outcomes[i] = created
                    continue
                customer_id = leads[who] = created
            rows.append(
                {
                    **draft.values,
                    "customer_id": customer_id,
                    "kind": self._spec.kind,
                    "source": self._spec.key_source,
                    "external_id": draft.key,
                }
            )
            positions.append(i)
        outcomes.update(self._store(t, lines, rows, positions))
        return [outcomes[i] for i in range(len(lines))]

    # -- one line --------------------------------------------------------------------------------

    def _parse(self, line: SourceLine) -> LineOutcome | tuple[ImportedActivity, tuple[str, str]]:
        if line.problems:
            return LineOutcome(line.line, "rejected", reasons=tuple(line.problems))
        values = {column: line.values.get(header) for column, header in self._columns.items()}
        missing = [c for c in self._spec.required if values.get(c) is None or str(values[c]).strip() == ""]
        if missing:
            return LineOutcome(line.line, "rejected", reasons=tuple(f"{c}: missing" for c in missing))
        try:
            draft = self._spec.parse(values, self._context)
        except ValueError as exc:
            return _rejected(line.line, str(exc))
        if not isinstance(draft, ImportedActivity):
            raise PluginError(self._spec.owner, f"importer {self._spec.name}: parse returned {draft!r}")
        key, raw = draft.customer
        try:
            return draft, (key, self._normal(key, raw))
        except ValueError as exc:
            return _rejected(line.line, f"{key}: {exc}")

    def _normal(self, key: str, raw: Any) -> str:
        text = str(raw).strip()
        if not text:
            raise ValueError("missing")
        if key == "phone":
            region = self._context.options.phone_region or self._phones.region
            return self._phones.normalize(text, region) or text
        if key == "email":
            return normalize_email(text) or text
        return text

    def _lead(self, t: Transaction, line: int, data: Mapping[str, Any]) -> int | LineOutcome:
        """A new customer for an unknown caller, recorded as created by this import (a revert removes it)."""
        try:
            with self._units.write(t):
                record = self._customers.create(data, actor_id=self._actor_id, tx=t)
                t.session.execute(
                    ImportChange.__table__.insert().values(
                        customer_id=record["id"], import_id=self._import_id, line=line, action="created",
                        before={}, after=record,
                    )
                )  # fmt: skip
        except ValidationError as exc:
            return LineOutcome(line, "rejected", reasons=tuple(f"new customer {r}" for r in reasons_of(exc.errors)))
        except DuplicateCustomerError as exc:
            return _rejected(line, f"new customer: {exc}")
        return int(record["id"])

    # -- a chunk ---------------------------------------------------------------------------------

    def _match(self, t: Transaction, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
        """The customers each (key, value) names, with one query per key."""
        by_key: dict[str, set[str]] = {}
        for key, value in wanted:
            by_key.setdefault(key, set()).add(value)
        found: dict[tuple[str, str], list[int]] = {}
        for key, values in by_key.items():
            for value, customer_id in self._lookup(t, key, sorted(values)):
                found.setdefault((key, str(value)), []).append(int(customer_id))
        return {k: sorted(set(v)) for k, v in found.items()}

    def _lookup(self, t: Transaction, key: str, values: list[str]) -> Iterable[tuple[Any, Any]]:
        if key == "external_id":
            query = select(CustomerKey.external_id, CustomerKey.customer_id).where(
                CustomerKey.system == self._spec.key_source, CustomerKey.external_id.in_(values)
            )
            return t.session.execute(query).all()
        column = {"phone": "phone_normalized", "email": "email_normalized"}.get(key, key)
        query = self._customers.select()
        chosen = next((c for c in query.selected_columns if c.key == column), None)
        if chosen is None:
            raise PluginError(self._spec.owner, f"importer {self._spec.name} matches on unknown field {key!r}")
        ids = next(c for c in query.selected_columns if c.key == "id")
        return t.session.execute(query.with_only_columns(chosen, ids).where(chosen.in_(values))).all()

    def _store(
        self, t: Transaction, lines: Sequence[SourceLine], rows: list[dict[str, Any]], positions: list[int]
    ) -> dict[int, LineOutcome]:
        if not rows:
            return {}
        keys = [(r["customer_id"], r["external_id"]) for r in rows]
        before = self._stored(t, keys)
        report = self._activities.ingest(rows, tx=t, import_id=self._import_id)
        outcomes: dict[int, LineOutcome] = {}
        rejected = {error.index for error in report.rejected}
        for error in report.rejected:
            i = positions[error.index]
            outcomes[i] = LineOutcome(lines[i].line, "rejected", reasons=tuple(reasons_of(error.errors)))
        now = self._stored(t, keys)
        first: dict[tuple[Any, Any], int] = {}
        for k, (i, key) in enumerate(zip(positions, keys, strict=True)):
            if k in rejected:
                continue
            line, customer_id = lines[i].line, rows[k]["customer_id"]
            if key in first:
                reason = f"duplicate of line {first[key]}"
            elif key not in before and now.get(key) == self._import_id:
                first[key] = line
                outcomes[i] = LineOutcome(line, "created", customer_id, fields=(self._spec.kind,))
                continue
            else:
                earlier = before.get(key, now.get(key))
                if earlier == self._import_id:
                    reason = "duplicate of an earlier line of this file"
                else:
                    reason = "already imported" + (f" (import {earlier})" if earlier else "")
                first.setdefault(key, line)
            outcomes[i] = LineOutcome(line, "skipped", customer_id, reasons=(reason,))
        return outcomes

    def _stored(self, t: Transaction, keys: list[tuple[Any, Any]]) -> dict[tuple[Any, Any], int | None]:
        """The keys among ``keys`` already stored as activities of this source: key -> the import that did."""
        a = Activity.__table__.c
        out: dict[tuple[Any, Any], int | None] = {}
        unique = sorted(set(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            query = select(a.customer_id, a.external_id, a.import_id).where(
                a.source == self._spec.key_source, tuple_(a.customer_id, a.external_id).in_(chunk)
            )
            for customer_id, external_id, import_id in t.session.execute(query):
                out[(customer_id, external_id)] = import_id
        return out


def _rejected(line: int, reason: str) -> LineOutcome:
    return LineOutcome(line, "rejected", reasons=(reason,))
