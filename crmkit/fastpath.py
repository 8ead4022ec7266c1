"""A fast path for bulk activity rows that are already typed.

Bulk ingestion (a year of turnstile check-ins, a PBX's call log) sends millions of rows whose values are
already Python objects of the right type: ints, aware datetimes, short strings. Running each through
marshmallow costs more than inserting it. :func:`activity_checker` builds, from the same declarations the
marshmallow schema is built from, a checker that accepts such a row only when it is *certain* marshmallow
would accept it and produce the same values; for anything else (a string to parse, a Decimal to round, a
suspicious value) it returns ``None`` and the caller validates that row with marshmallow as usual. So a
row is never accepted here that marshmallow would reject, and every rejection message comes from
marshmallow. ``tests/test_fastpath.py`` checks this equivalence on generated rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from crmkit.db.models import ACTIVITY_DIRECTIONS, ACTIVITY_STATUSES
from crmkit.specs import CHANNELS, ActivityKindSpec, FieldSpec

Checker = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_KEYS = frozenset(
    {
        "customer_id",
        "kind",
        "channel",
        "direction",
        "status",
        "subject",
        "result",
        "occurred_at",
        "duration_min",
        "amount",
        "currency",
        "owner_id",
        "contact_id",
        "data",
    }
)
_MISSING = object()


def _plain_str(value: Any, max_length: int | None = None) -> bool:
    # marshmallow trims text first; a value that trimming would change is left to it
    return type(value) is str and value == value.strip() and (max_length is None or len(value) <= max_length)


def _int(value: Any) -> bool:
    return type(value) is int


def _optional(value: Any, check: Callable[[Any], bool]) -> bool:
    return value is _MISSING or value is None or check(value)


def _data_checker(kind: ActivityKindSpec) -> Callable[[Any], dict[str, Any] | None]:
    specs: dict[str, FieldSpec] = {f.name: f for f in kind.data_fields}

    def value_ok(spec: FieldSpec, value: Any) -> bool:
        if value is None:
            return not spec.required
        if spec.type == "string":
            return _plain_str(value, spec.max_length) and (not spec.choices or value in spec.choices)
        if spec.type == "text":
            return _plain_str(value)
        if spec.type == "integer":
            return _int(value)
        if spec.type == "boolean":
            return type(value) is bool
        return False  # dates, datetimes and decimals: marshmallow converts them

    def check(data: Any) -> dict[str, Any] | None:
        if type(data) is not dict:
            return None
        if not specs:
            return data if all(type(k) is str for k in data) else None
        out: dict[str, Any] = {}
        for key, value in data.items():
            spec = specs.get(key)
            if spec is None or not value_ok(spec, value):
                return None
            out[key] = value
        for name, spec in specs.items():
            if name in out:
                continue
            if spec.required:
                return None
            if spec.default is not None:
                if not value_ok(spec, spec.default):
                    return None
                out[name] = spec.default
        return out

    return check


def activity_checker(kinds: Mapping[str, ActivityKindSpec]) -> Checker:
    """The fast check for activity rows of these kinds; see the module's docstring for the contract."""
    data_checks = {name: _data_checker(kind) for name, kind in kinds.items()}
    data_names = {name: frozenset(f.name for f in kind.data_fields) for name, kind in kinds.items()}

    def check(row: Mapping[str, Any]) -> dict[str, Any] | None:
        if type(row) is not dict or not _KEYS.issuperset(row):
            return None
        get = row.get
        kind_name = get("kind")
        kind = kinds.get(kind_name) if type(kind_name) is str else None
        if kind is None or not _int(get("customer_id")):
            return None
        status = get("status", _MISSING)
        if status is _MISSING:
            status = "done"
        elif type(status) is not str or status not in ACTIVITY_STATUSES:
            return None
        occurred = get("occurred_at")
        if occurred is not None and (type(occurred) is not dt.datetime or occurred.tzinfo is None):
            return None
        if not (
            _optional(get("channel", _MISSING), lambda v: type(v) is str and v in CHANNELS)
            and _optional(get("direction", _MISSING), lambda v: type(v) is str and v in ACTIVITY_DIRECTIONS)
            and _optional(get("subject", _MISSING), lambda v: _plain_str(v, 300))
            and _optional(get("result", _MISSING), _plain_str)
            and _optional(get("duration_min", _MISSING), lambda v: _int(v) and 0 <= v <= 24 * 60)
            and _optional(get("currency", _MISSING), lambda v: _plain_str(v) and bool(_CURRENCY.match(v)))
            and _optional(get("owner_id", _MISSING), _int)
            and _optional(get("contact_id", _MISSING), _int)
        ):
            return None
        if get("amount") is not None:
            return None  # a Decimal is rounded to cents by marshmallow
        raw_data = get("data", _MISSING)
        data = data_checks[kind.name]({} if raw_data is _MISSING else raw_data)
        if data is None:
            return None
        for name in kind.required:
            if name == "result" and status == "planned":
                continue
            present = data.get(name) if name in data_names[kind.name] else get(name)
            if present is None or present == "":
                return None
        values = dict(row)
        values["status"] = status
        values["data"] = data
        return values

    return check
