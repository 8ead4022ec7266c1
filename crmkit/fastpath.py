"""A fast path for bulk activity rows that are already typed.

Bulk ingestion (a year of turnstile check-ins, a PBX's call log) sends millions of rows whose values are
already Python objects of the right type: ints, aware datetimes, short strings. Running each through
marshmallow costs more than inserting it. :func:`activity_fast_check` builds, from the same declarations
the marshmallow schema is built from, a check that accepts such a row only when it is *certain* marshmallow
would accept it and produce the same values; for anything else (a string to parse, a Decimal to check, a
value outside the storage limits of :mod:`crmkit.limits`) it returns ``None`` and the caller validates that
row with marshmallow as usual. So a row is never accepted here that marshmallow would reject, and every
rejection message comes from marshmallow. ``tests/test_fastpath.py`` checks this equivalence on generated
rows, both for the values (:func:`activity_checker`) and for what bulk ingest stores from them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

import attrs
import phonenumbers
from marshmallow import validate

from crmkit.db.models import ACTIVITY_DIRECTIONS, ACTIVITY_STATUSES
from crmkit.limits import INT32, MAX_MOMENT, MIN_MOMENT, json_ok, text_problem
from crmkit.specs import CHANNELS, ActivityKindSpec, FieldSpec

#: What the fast check learns about an accepted row: its kind, its status (``"done"`` when not given) and
#: its data as marshmallow would load it (converted, defaults added, keys in declaration order). Every other
#: value of an accepted row is stored exactly as given.
Checked = tuple[ActivityKindSpec, str, dict[str, Any]]
FastCheck = Callable[[Mapping[str, Any]], "Checked | None"]
Checker = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CHANNELS = frozenset(CHANNELS)
_DIRECTIONS = frozenset(ACTIVITY_DIRECTIONS)


_INT_MIN, _INT_MAX = INT32


def _storable(value: str) -> bool:
    # no NUL, no lone surrogate (crmkit.limits.Text); ASCII text, the usual case, needs no encoding attempt
    return "\x00" not in value and (value.isascii() or text_problem(value) is None)


def _plain_str(value: Any, max_length: int | None = None) -> bool:
    # marshmallow trims text first; a value that trimming would change is left to it
    return (
        type(value) is str
        and value == value.strip()
        and (max_length is None or len(value) <= max_length)
        and _storable(value)
    )


def _int(value: Any) -> bool:
    # not bool, not a float that happens to be whole: marshmallow's business; within the INTEGER column
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


#: The checks of the optional columns a typed row may carry; ``None`` passes for all of them.
_COLUMN_CHECKS: dict[str, Callable[[Any], bool]] = {
    "channel": lambda v: type(v) is str and v in _CHANNELS,
    "direction": lambda v: type(v) is str and v in _DIRECTIONS,
    "subject": lambda v: _plain_str(v, 300),
    "result": _plain_str,
    "duration_min": lambda v: _int(v) and 0 <= v <= 24 * 60,
    "currency": lambda v: _plain_str(v) and bool(_CURRENCY.match(v)),
    "owner_id": _int,
    "contact_id": _int,
    "source": lambda v: _plain_str(v, 100) and v != "",
    "external_id": lambda v: _plain_str(v, 200) and v != "",
}
#: Keys checked one by one in the check itself, always looked at.
_CORE_KEYS = frozenset({"customer_id", "kind", "status", "occurred_at", "amount", "data"})
_KEYS = _CORE_KEYS | _COLUMN_CHECKS.keys()


def _aware(value: dt.datetime) -> bool:
    # a tzinfo whose utcoffset() is None makes a naive datetime: marshmallow gives it the default zone
    return value.tzinfo is not None and value.utcoffset() is not None


def _value_check(spec: FieldSpec) -> Callable[[Any], bool]:
    """The check of one non-None data value; ``False`` sends the row to marshmallow. One call per value:
    millions of rows go through these."""
    limit = spec.max_length
    if spec.type == "string" and spec.choices:
        choices = frozenset(spec.choices)
        return lambda v: type(v) is str and v in choices and len(v) <= limit and v == v.strip() and _storable(v)
    if spec.type == "string":
        # inlined: one call per value, millions of values
        return lambda v: (
            type(v) is str
            and len(v) <= limit
            and v == v.strip()
            and "\x00" not in v
            and (v.isascii() or text_problem(v) is None)
        )
    if spec.type == "text":
        return _plain_str
    if spec.type == "integer":
        return _int
    if spec.type == "boolean":
        return lambda v: type(v) is bool
    return lambda v: False  # dates, datetimes and decimals: marshmallow converts them


def _data_check(kind: ActivityKindSpec) -> Callable[[Any], dict[str, Any] | None]:
    """The check of a kind's ``data``; returns the data as marshmallow loads it, possibly ``data`` itself."""
    if not kind.data_fields:  # free JSON that crmkit.limits.JSONObject loads unchanged
        return lambda data: data if type(data) is dict and (not data or json_ok(data)) else None
    fields = {f.name: (i, f.required, _value_check(f)) for i, f in enumerate(kind.data_fields)}
    names = fields.keys()
    required = frozenset(f.name for f in kind.data_fields if f.required)
    defaults = {f.name: f.default for f in kind.data_fields if f.default is not None}
    if any(not fields[name][2](value) for name, value in defaults.items()):
        return lambda data: None  # a default marshmallow would reject: leave every row to it

    def check(data: Any) -> dict[str, Any] | None:
        if type(data) is not dict or not data.keys() <= names or not required <= data.keys():
            return None
        last, ordered = -1, True
        for key, value in data.items():
            position, needed, value_ok = fields[key]
            if value is None:
                if needed:
                    return None
            elif not value_ok(value):
                return None
            ordered = ordered and position > last
            last = position
        if ordered and defaults.keys() <= data.keys():
            return data
        # marshmallow's output has the defaults filled in and the declaration's key order
        return {
            name: data[name] if name in data else defaults[name] for name in names if name in data or name in defaults
        }

    return check


def activity_fast_check(
    kinds: Mapping[str, ActivityKindSpec], statuses: Iterable[str] = ACTIVITY_STATUSES
) -> FastCheck:
    """The fast check for activity rows of these kinds and statuses (the declared ones); see the module's
    docstring for the contract."""
    allowed = frozenset(statuses)
    data_checks = {name: _data_check(kind) for name, kind in kinds.items()}
    # the kind's required names that its data check does not already enforce
    required = {
        name: tuple((r, r in {f.name for f in kind.data_fields}) for r in kind.required) for name, kind in kinds.items()
    }

    def check(row: Mapping[str, Any]) -> Checked | None:
        if type(row) is not dict:
            return None
        keys = row.keys()
        if not keys <= _KEYS:
            return None  # an unknown key: marshmallow names it
        get = row.get
        kind_name = get("kind")
        if type(kind_name) is not str:
            return None
        kind = kinds.get(kind_name)
        customer_id = get("customer_id")
        if kind is None or type(customer_id) is not int or not _INT_MIN <= customer_id <= _INT_MAX:
            return None
        status = get("status", "done")
        if type(status) is not str or status not in allowed:
            return None
        occurred = get("occurred_at")
        if occurred is not None and (
            type(occurred) is not dt.datetime
            or (occurred.tzinfo is not dt.UTC and not _aware(occurred))
            or not MIN_MOMENT <= occurred < MAX_MOMENT
        ):
            return None  # text to parse, a naive datetime marshmallow gives a zone, or out of range
        if get("amount") is not None:
            return None  # a Decimal marshmallow rounds to cents
        if not keys <= _CORE_KEYS:  # the optional columns this row has, usually none
            for key in keys - _CORE_KEYS:
                value = row[key]
                if value is not None and not _COLUMN_CHECKS[key](value):
                    return None
            if get("external_id") is not None and get("source") is None:
                return None  # a key without its source: marshmallow says why
        data = data_checks[kind_name](get("data", {}))
        if data is None:
            return None
        for name, in_data in required[kind_name]:
            if name == "result" and status == "planned":
                continue
            present = data.get(name) if in_data else get(name)
            if present is None or present == "":
                return None
        return kind, status, data

    return check


def activity_checker(kinds: Mapping[str, ActivityKindSpec], statuses: Iterable[str] = ACTIVITY_STATUSES) -> Checker:
    """The fast check returning the values marshmallow would load: the row with its status and data."""
    fast = activity_fast_check(kinds, statuses)

    def check(row: Mapping[str, Any]) -> dict[str, Any] | None:
        checked = fast(row)
        if checked is None:
            return None
        _, status, data = checked
        values = dict(row)
        values["status"] = status
        values["data"] = dict(data)
        return values

    return check


#: The fast check of customer input: the values marshmallow would load from a row, or ``None``.
CustomerCheck = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]
_EMAIL = validate.Email()


def _email(value: Any) -> bool:
    """Whether marshmallow's ``Email`` validator accepts ``value`` (a plain text of at most 320 characters):
    its own tests with its own patterns, without the error message it formats before every check (a
    refusal is marshmallow's to word, so it is not needed here)."""
    if not _plain_str(value, 320):
        return False
    user, at, domain = value.rpartition("@")
    if not at:
        return False
    if _EMAIL.USER_REGEX.match(user) is None:
        return False
    known = _DOMAINS.get(domain)
    if known is None:
        known = domain in _EMAIL.DOMAIN_WHITELIST or _EMAIL.DOMAIN_REGEX.match(domain) is not None
        if len(_DOMAINS) < _MAX_DOMAINS:
            _DOMAINS[domain] = known
    return known


#: Whether ``Email`` accepts a domain, for the first domains seen: a file's addresses share a few domains,
#: and the domain's pattern is the slower of the two.
_DOMAINS: dict[str, bool] = {}
_MAX_DOMAINS = 1000


def _text(max_length: int) -> Callable[[Any], bool]:
    """``_plain_str(v, max_length)`` in one call: a customer's text fields are checked for every line of an
    import."""
    return lambda v: (
        type(v) is str
        and len(v) <= max_length
        and v == v.strip()
        and "\x00" not in v
        and (v.isascii() or text_problem(v) is None)
    )


#: The customer's text fields and their longest values.
_CUSTOMER_TEXT = {"phone": 50, "source": 100, "campaign": 100, "branch": 100}
_NAME_LENGTH = 200
#: The checks of the core fields' values that are not None (``name`` and ``stage`` are added per CRM, see
#: :class:`_CustomerRules`).
_CUSTOMER_CHECKS: dict[str, Callable[[Any], bool]] = {
    "email": _email,
    **{name: _text(limit) for name, limit in _CUSTOMER_TEXT.items()},
    "owner_id": _int,
    # stored upper-case: marshmallow upper-cases it, a value already upper-case comes out unchanged
    "country": lambda v: type(v) is str and len(v) == 2 and v.isupper() and v in phonenumbers.SUPPORTED_REGIONS,
    # a date is left to marshmallow: it compares it with today and the storage range
    "birthday": lambda v: False,
}


@attrs.frozen
class _CustomerRules:
    """What the customer fast checks (of one row, of many) accept, built from the fields once."""

    #: per key a row may have (``name`` included), the check of a value that is not None
    checks: dict[str, Callable[[Any], bool]]
    required: frozenset[str]
    #: the keys whose value may be None
    nullable: frozenset[str]
    defaults: dict[str, Any]
    #: every key a row may have
    names: frozenset[str]

    @classmethod
    def of(cls, specs: list[FieldSpec], stages: Iterable[str], partial: bool) -> _CustomerRules:
        checks = dict(_CUSTOMER_CHECKS)
        for spec in specs:
            checks[spec.name] = _value_check(spec)
        checks["stage"] = _choice(frozenset(stages))
        name_ok = _text(_NAME_LENGTH)
        checks["name"] = lambda v: bool(v) and name_ok(v)
        required = frozenset(s.name for s in specs if s.required) | {"name"}
        return cls(
            checks=checks,
            required=required,
            nullable=frozenset(checks) - required - {"stage"},
            defaults={} if partial else {s.name: s.default for s in specs if s.default is not None},
            names=frozenset(checks),
        )


def customer_fast_check(fields: Iterable[FieldSpec], stages: Iterable[str], *, partial: bool = False) -> CustomerCheck:
    """The fast check of customer input (``partial`` for an update): the values marshmallow's ``customer_in``
    would load from ``row``, or ``None`` when the row is not certain to load unchanged (then marshmallow
    decides, and words any error). ``fields`` are the plugin and run-time fields, in the schema's order.

    It does not check the phone against its region, which the full schema does as its last step: the
    service reads the phone once for both and refuses it with marshmallow's message (see
    ``crmkit.customers``)."""
    rules = _CustomerRules.of(list(fields), stages, partial)
    checks, required, nullable, defaults, names = (
        rules.checks, rules.required, rules.nullable, rules.defaults, rules.names
    )  # fmt: skip

    def check(row: Mapping[str, Any]) -> dict[str, Any] | None:
        if type(row) is not dict or not row.keys() <= names:
            return None
        if not partial and not required <= row.keys():
            return None
        for key, value in row.items():
            if value is None:
                if key not in nullable:
                    return None
            elif not checks[key](value):
                return None
        if defaults and not defaults.keys() <= row.keys():
            return {**defaults, **row}
        return dict(row)

    return check


def customer_fast_check_many(
    fields: Iterable[FieldSpec], stages: Iterable[str], *, partial: bool = False
) -> Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any] | None]]:
    """:func:`customer_fast_check` of many rows: ``[check(row) for row in rows]``, the same answers. The rows
    are checked a field at a time: its values' types, lengths, spaces, NULs and choices looked at all at
    once at the C speed of ``map``, ``set`` and ``str.join``; only a field where that fails is checked value
    by value, to find its rows, which then go through the check of one row. An import checks thousands of
    new customers at a time, most of them alike."""
    specs = list(fields)
    one = customer_fast_check(specs, stages, partial=partial)
    rules = _CustomerRules.of(specs, stages, partial)
    checks, required, nullable, defaults, names = (
        rules.checks, rules.required, rules.nullable, rules.defaults, rules.names
    )  # fmt: skip
    # the checks that look at a whole column at once; any other field's values are checked one by one
    columns = {name: _text_column(limit) for name, limit in _CUSTOMER_TEXT.items()}
    columns["name"] = _text_column(_NAME_LENGTH, nonempty=True)
    for spec in specs:
        if spec.type == "string" and spec.max_length is not None:
            columns[spec.name] = _text_column(spec.max_length, frozenset(spec.choices) if spec.choices else None)
        elif spec.type == "text":
            columns[spec.name] = _text_column(None)

    def many(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        if not rows or set(map(type, rows)) != {dict}:
            return [one(row) for row in rows]
        shapes = list(map(tuple, rows))  # each row's keys, in order: a file's rows have a few shapes
        known: dict[tuple[str, ...], tuple[bool, bool]] = {}
        for shape in set(shapes):
            keys = frozenset(shape)
            known[shape] = (keys <= names and (partial or required <= keys), bool(defaults.keys() - keys))
        slow: set[int] = set()
        if not all(fits for fits, _ in known.values()):
            slow.update(i for i, shape in enumerate(shapes) if not known[shape][0])
        for name in frozenset().union(*known) & names:
            column = list(map(dict.get, rows, repeat(name)))  # type: ignore[arg-type]
            values = column
            if None in column:
                if name not in nullable:  # None given where a value is due (a missing key is another matter)
                    slow.update(i for i, v in enumerate(column) if v is None and name in rows[i])
                values = [v for v in column if v is not None]
            if not values:
                continue
            whole = columns.get(name)
            if not (whole(values) if whole is not None else all(map(checks[name], values))):
                check = checks[name]
                slow.update(i for i, v in enumerate(column) if v is not None and not check(v))
        out: list[dict[str, Any] | None] = []
        for i, (row, shape) in enumerate(zip(rows, shapes, strict=True)):
            if i in slow:
                out.append(one(row))
            elif known[shape][1]:
                out.append({**defaults, **row})
            else:
                out.append(dict(row))
        return out

    return many


def _text_column(
    max_length: int | None, choices: frozenset[str] | None = None, *, nonempty: bool = False
) -> Callable[[list[Any]], bool]:
    """Whether every one of some values (none of them ``None``) passes :func:`_text` (``nonempty``: and is
    not empty; ``choices``: and is one of them), looked at all at once."""

    def ok(values: list[Any]) -> bool:
        if set(map(type, values)) != {str}:
            return False
        if max_length is not None and max(map(len, values)) > max_length:
            return False
        if (nonempty and not all(values)) or (choices is not None and not choices.issuperset(values)):
            return False
        if list(map(str.strip, values)) != values:
            return False
        joined = "".join(values)
        return "\x00" not in joined and (joined.isascii() or all(text_problem(v) is None for v in values))

    return ok


def _choice(choices: frozenset[str]) -> Callable[[Any], bool]:
    return lambda v: type(v) is str and v in choices and _storable(v)
