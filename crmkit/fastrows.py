"""Typed fast paths for bulk writes and reads: the same results as the marshmallow schemas, fewer calls.

A trigger run reads hundreds of customer records and writes hundreds of tasks at a time, and marshmallow's
per-field machinery (hooks, error handling, attribute lookup) costs more than the values' conversion. Like
:mod:`crmkit.fastpath` for activities:

* :func:`dumper` builds, from an output schema, a function that gives exactly ``schema.dump(row)`` for a
  row of stored values: values of the usual stored types are converted directly (ISO 8601 for dates and
  datetimes, fixed-point text for decimals), anything else goes through the field's own serialisation;
* :func:`task_fast_load` accepts a task row only when it is *certain* that :class:`crmkit.schemas.TaskIn`
  would accept it and load the same values, and returns ``None`` otherwise, so the caller validates that
  row with marshmallow and every rejection message comes from marshmallow.

``tests/test_fastrows.py`` checks both equivalences on generated values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_text  # json.dumps' own escaping of a string
from typing import Any

from marshmallow import Schema
from marshmallow import fields as mf

from crmkit.limits import INT32, MAX_MOMENT, MIN_MOMENT, text_problem

Dumper = Callable[[Mapping[Any, Any]], dict[str, Any]]
#: A row's dump as JSON text, or ``None`` when the caller must dump it the general way (see :func:`json_dumper`).
JsonDumper = Callable[[Mapping[Any, Any]], "str | None"]
_MISSING = object()
#: The formats in which marshmallow writes a date or datetime as ``isoformat()`` does (a schema sets "iso"
#: on the fields it binds).
_ISO = (None, "iso")


def _converter(field: mf.Field[Any]) -> Callable[[Any], Any]:
    """The conversion of one non-None stored value, marshmallow's own for a value of an unusual type."""

    def slow(value: Any) -> Any:
        return field._serialize(value, None, None)

    kind = type(field)
    if kind is mf.Integer and not field.as_string:  # type: ignore[attr-defined]
        return lambda v: v if type(v) is int else slow(v)
    if kind is mf.String:
        return lambda v: v if type(v) is str else slow(v)
    if kind is mf.DateTime and field.format in _ISO:  # type: ignore[attr-defined]
        return _moment_text(slow)
    if kind is mf.Date and field.format in _ISO:  # type: ignore[attr-defined]
        return lambda v: v.isoformat() if type(v) is dt.date else slow(v)
    if kind is mf.Decimal and field.as_string and field.places is None:  # type: ignore[attr-defined]
        return lambda v: format(v, "f") if type(v) is Decimal and v.is_finite() else slow(v)
    return slow


def _moment_text(slow: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A datetime's ``isoformat()``, remembered for the last datetime converted: the rows of a batch share
    their times (its one ``now``, three times in each created customer's record). The datetime and its text
    are kept as one pair, replaced whole, so a dumper used by several threads never pairs one's datetime
    with another's text; the pair holds the datetime, so no other object can be the one it names."""
    last: list[tuple[Any, str]] = [(None, "")]

    def convert(value: Any) -> Any:
        seen, text = last[0]
        if value is seen:
            return text
        if type(value) is not dt.datetime:
            return slow(value)
        text = value.isoformat()
        last[0] = (value, text)
        return text

    return convert


def _unchanged(field: mf.Field[Any]) -> type | None:
    """The type of value that ``field`` dumps as it is (an int for an integer field...), if any."""
    kind = type(field)
    if kind is mf.Integer and not field.as_string:  # type: ignore[attr-defined]
        return int
    if kind is mf.String:
        return str
    if kind is mf.Boolean:
        return bool
    return None


def _plan(schema: Schema) -> list[tuple[str, str, type | None, Callable[[Any], Any]]]:
    """Per dumped field: its key, the attribute it reads, the type it dumps unchanged, its conversion."""
    return [
        (field.data_key or name, field.attribute or name, _unchanged(field), _converter(field))
        for name, field in schema.dump_fields.items()
    ]


def dumper(schema: Schema) -> Dumper:
    """``schema.dump`` for mappings of stored values (a row, a flat record), without its per-field calls."""
    plan = _plan(schema)

    def dump(row: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, attribute, unchanged, convert in plan:
            value = row.get(attribute, _MISSING)
            if value is None or type(value) is unchanged:
                out[key] = value
            elif value is not _MISSING:  # marshmallow leaves out what the row does not have
                out[key] = convert(value)
        return out

    return dump


def json_dumper(schema: Schema, omit: Collection[str] = ()) -> JsonDumper:
    """``json.dumps`` of the items of ``dumper(schema)(row)`` whose value is not ``None`` (and whose key is not
    in ``omit``), written in one pass over the row without the dumped dict: the same text (default
    separators, ASCII escapes) when every such value is text or a whole number. For any other row (a bool,
    a float, a list... after dumping) it returns ``None``, and the caller dumps that row and writes it the
    general way. ``tests/test_fastrows.py`` compares it with ``json.dumps`` of the dump on generated rows.

    An import writes this for every customer it creates, so the function is generated for the schema, one
    straight block per field (as ``attrs`` generates ``__init__``): a loop over the fields spent more on
    unpacking each field's plan than on its value. A converted field (a time) remembers the text of the
    last value it wrote, by identity: the rows of a batch share their times."""
    # one key per field: marshmallow refuses a schema that dumps two fields under one key
    names: dict[str, Any] = {"enc": _json_text, "irepr": int.__repr__}
    lines = ["def dump_json(row):", "    get = row.get", "    parts = []", "    add = parts.append"]
    plan = [step for step in _plan(schema) if step[0] not in omit]
    for i, (key, attribute, unchanged, convert) in enumerate(plan):
        names[f"A{i}"], names[f"H{i}"], names[f"C{i}"] = attribute, _json_text(key) + ": ", convert
        # a missing value and None both leave the key out; a converted one is written if text or an int
        general = [
            f"v = C{i}(v)",
            "if v is not None:",
            "    if type(v) is str:",
            f"        add(H{i} + enc(v))",
            "    elif type(v) is int:",  # json.dumps' int (not a bool, not an IntEnum)
            f"        add(H{i} + irepr(v))",
            "    else:",
            "        return None",
        ]
        lines += [f"    v = get(A{i})", "    if v is not None:"]
        if unchanged is str:
            lines += ["        if type(v) is str:", f"            add(H{i} + enc(v))", "        else:"]
            lines += [f"            {line}" for line in general]
        elif unchanged is int:
            lines += ["        if type(v) is int:", f"            add(H{i} + irepr(v))", "        else:"]
            lines += [f"            {line}" for line in general]
        elif unchanged is None:
            # the value and its text as one pair, replaced whole (see _moment_text)
            names[f"M{i}"] = [(_MISSING, "")]
            lines += [
                f"        t = M{i}[0]",
                "        if v is t[0]:",
                "            add(t[1])",
                "        else:",
                f"            w = C{i}(v)",
                "            if w is not None:",
                "                if type(w) is str:",
                f"                    p = H{i} + enc(w)",
                f"                    M{i}[0] = (v, p)",
                "                    add(p)",
                "                elif type(w) is int:",
                f"                    add(H{i} + irepr(w))",
                "                else:",
                "                    return None",
            ]
        else:  # dumped unchanged but neither text nor an int (a bool): the general way
            lines += [f"        if type(v) is {unchanged.__name__}:", "            return None", "        else:"]
            lines += [f"            {line}" for line in general]
    lines.append('    return "{" + ", ".join(parts) + "}"')
    exec(compile("\n".join(lines), f"<json_dumper of {type(schema).__name__}>", "exec"), names)
    dump_json: JsonDumper = names["dump_json"]
    return dump_json


# -- tasks -----------------------------------------------------------------------------------------------

_INT_MIN, _INT_MAX = INT32


def _plain_str(value: Any, max_length: int | None = None, *, empty: bool = True) -> bool:
    # marshmallow trims text first; a value that trimming would change is left to it
    return (
        type(value) is str
        and value == value.strip()
        and (empty or value != "")
        and (max_length is None or len(value) <= max_length)
        and "\x00" not in value
        and (value.isascii() or text_problem(value) is None)
    )


def _id(value: Any) -> bool:
    return value is None or (type(value) is int and _INT_MIN <= value <= _INT_MAX)


def _moment(value: Any) -> bool:
    # an aware datetime in range is loaded as given; naive or text is marshmallow's business
    return value is None or (
        type(value) is dt.datetime
        and value.tzinfo is not None
        and value.utcoffset() is not None
        and MIN_MOMENT <= value < MAX_MOMENT
    )


_TASK_CHECKS: dict[str, Callable[[Any], bool]] = {
    "title": lambda v: _plain_str(v, 300, empty=False),
    "reason": lambda v: v is None or _plain_str(v),
    "customer_id": _id,
    "assignee_id": _id,
    "due_at": _moment,
    "remind_at": _moment,
    "priority": lambda v: type(v) is int and 0 <= v <= 100,
    "source": lambda v: v is None or _plain_str(v, 100),
    "source_id": lambda v: v is None or _plain_str(v, 100),
}


def task_fast_load(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """``TaskIn().load(row)`` for a row it certainly accepts unchanged; ``None`` for any other row."""
    if type(row) is not dict or "title" not in row:
        return None
    for key, value in row.items():
        check = _TASK_CHECKS.get(key)
        if check is None or not check(value):
            return None
    return {"priority": 0, **row}
