"""The values of an imported file, read the way the user says the file writes them.

:func:`parse_value` turns one cell into what a field of a crmkit field type stores: ``str`` for strings and
texts, ``int``, :class:`~decimal.Decimal`, ``bool``, :class:`datetime.date`, an aware
:class:`datetime.datetime` in UTC, or ``None`` for an empty cell. :class:`ParseOptions` says how the file
writes dates, datetimes, numbers, booleans and choices. A value that cannot be read raises ``ValueError`` with
one line that quotes the value and says what was expected; the storage limits (lengths, ranges, decimal
places) are the input schema's business, not this module's.

Datetimes written without an offset are local times in ``ParseOptions.timezone``. A local time that does not
exist there (the hour skipped when the clocks go forward) is an error; a local time that happens twice (the
hour repeated when the clocks go back) is taken as its **first** occurrence (``fold=0``), the one still on
daylight saving time.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

#: The kinds :func:`parse_value` reads: the keys of :data:`crmkit.fields.FIELD_TYPES`.
KINDS = ("string", "text", "integer", "decimal", "boolean", "date", "datetime")
#: The named date formats (any strptime pattern containing ``%`` is taken too).
DATE_FORMATS = ("yyyy-mm-dd", "dd/mm/yyyy", "mm/dd/yyyy", "dd.mm.yyyy", "dd-mm-yyyy", "yyyy/mm/dd")
#: The longest text read as a number: far beyond any amount, short of what would make parsing slow.
MAX_NUMBER_CHARS = 100

# The pieces a named format is written with: yyyy yy mm dd for the date, HH MM SS for the time of day.
_TOKENS = {
    "yyyy": r"(?P<year>\d{4})",
    "yy": r"(?P<yy>\d{2})",
    "mm": r"(?P<month>\d{1,2})",
    "dd": r"(?P<day>\d{1,2})",
    "HH": r"(?P<hour>\d{1,2})",
    "MM": r"(?P<minute>\d{2})",
    "SS": r"(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,6}))?",
}
_PIECE = re.compile(r"yyyy|yy|mm|dd|HH|MM|SS|[-/. :T,]")
# What a named date format may be followed by in a datetime when no datetime_format is given.
_TIME_OF_DAY = r"(?:[ T]" + _TOKENS["HH"] + ":" + _TOKENS["MM"] + "(?::" + _TOKENS["SS"] + ")?)?"
_SPACES = " \u00a0\u202f"  # space, no-break space, narrow no-break space: thousands separators in either mode
_NUMBER = {
    # decimal_comma -> (grammar, the decimal mark); thousands separators are all one kind within a number
    False: (re.compile(rf"([+-]?)(\d+|\d{{1,3}}(?:([,{_SPACES}])\d{{3}})(?:\3\d{{3}})*)?(?:\.(\d+))?", re.ASCII), "."),
    True: (re.compile(rf"([+-]?)(\d+|\d{{1,3}}(?:([.{_SPACES}])\d{{3}})(?:\3\d{{3}})*)?(?:,(\d+))?", re.ASCII), ","),
}
_INTEGER = re.compile(r"[+-]?\d{1,18}", re.ASCII)
_CHOICE_GAPS = re.compile(r"[\s\-]+")


@attrs.frozen
class _Format:
    """A date or datetime format: as the user wrote it, and how it is read."""

    name: str
    read: Callable[[str], dt.datetime | None]  # None: the text is not in this format


def _lowered(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError("expected a sequence of words, not one string")
    return tuple(str(v).strip().lower() for v in values)


def _choice_maps(choices: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {str(field): {str(k).strip(): str(v) for k, v in labels.items()} for field, labels in choices.items()}


@attrs.frozen
class ParseOptions:
    """How a file writes its values. Built once per import; invalid options raise ``ValueError``."""

    #: ``yyyy-mm-dd``, ``dd/mm/yyyy``, ``mm/dd/yyyy``, ``dd.mm.yyyy``, ``dd-mm-yyyy``, ``yyyy/mm/dd`` (or any
    #: other arrangement of ``yyyy``/``yy``, ``mm``, ``dd`` and ``-/. ``), or any strptime pattern with ``%``.
    #: Day and month may have one digit; ``yy`` reads 69-99 as 19xx and 00-68 as 20xx, as strptime does.
    #: Named date formats are read in any case (``DD/MM/YYYY``).
    date_format: str = "yyyy-mm-dd"
    #: ``None``: ISO 8601, or ``date_format`` followed by `` HH:MM`` or `` HH:MM:SS``, or ``date_format`` alone
    #: (midnight). Otherwise the one format of the file's datetimes, named (``dd/mm/yyyy HH:MM``) or strptime.
    datetime_format: str | None = None
    #: The IANA zone of datetimes written without an offset.
    timezone: str = "UTC"
    #: ``True``: ``1.234,56`` is 1234.56 (``.`` and spaces group thousands); ``False``: ``1,234.56`` is.
    decimal_comma: bool = False
    #: Compared stripped and case-insensitively.
    true_values: tuple[str, ...] = attrs.field(default=("true", "yes", "y", "1", "x"), converter=_lowered)
    #: Compared stripped and case-insensitively. Add ``""`` to read an empty cell of a boolean field as ``False``
    #: (a checkbox column, ``x`` or nothing); by default an empty cell is ``None``, as for every kind, so that
    #: an import's update never clears a field the file left empty.
    false_values: tuple[str, ...] = attrs.field(default=("false", "no", "n", "0"), converter=_lowered)
    #: field -> {label in the file: stored value}, e.g. ``{"goal": {"Lose weight": "weight_loss"}}``.
    choices: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, converter=_choice_maps, hash=False)
    #: The region phone numbers without ``+`` are read in; the import passes it to the CRM's phone hook.
    phone_region: str | None = None
    _date: _Format = attrs.field(init=False, repr=False, eq=False, hash=False)
    _datetime: _Format | None = attrs.field(init=False, repr=False, eq=False, hash=False)
    _date_time: Callable[[str], dt.datetime | None] = attrs.field(init=False, repr=False, eq=False, hash=False)
    _zone: zoneinfo.ZoneInfo = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        both = set(self.true_values) & set(self.false_values)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} cannot be both a true and a false value")
        date = _format(self.date_format, "date_format", time=False)
        object.__setattr__(self, "_date", date)
        given = self.datetime_format
        object.__setattr__(self, "_datetime", None if given is None else _format(given, "datetime_format", time=True))
        object.__setattr__(self, "_date_time", _with_time_of_day(self.date_format))
        object.__setattr__(self, "_zone", _zone(self.timezone))


def _format(name: str, option: str, *, time: bool) -> _Format:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{option} must be a format such as dd/mm/yyyy, got {name!r}")
    if "%" in name:
        return _Format(name, _strptime(name, option))
    return _Format(name, _named(name, option, time=time))


def _strptime(pattern: str, option: str) -> Callable[[str], dt.datetime | None]:
    try:
        dt.datetime.strptime(dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC).strftime(pattern), pattern)
    except ValueError as error:
        raise ValueError(f"{option} {pattern!r} is not a usable strptime pattern: {error}") from None

    def read(text: str) -> dt.datetime | None:
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            return None

    return read


def _named(name: str, option: str, *, time: bool) -> Callable[[str], dt.datetime | None]:
    written = name if time else name.lower()  # DD/MM/YYYY is a date format too; in a datetime MM is minutes
    pieces = _PIECE.findall(written)
    tokens = [p for p in pieces if p in _TOKENS]
    need = {"dd", "mm"} | ({"HH", "MM"} if time else set())
    wrong = "".join(pieces) != written or len(set(tokens)) != len(tokens) or not need <= set(tokens)
    wrong = wrong or ("yyyy" in tokens) == ("yy" in tokens) or (not time and bool({"HH", "MM", "SS"} & set(tokens)))
    if wrong:
        example = "dd/mm/yyyy HH:MM" if time else "dd/mm/yyyy"
        raise ValueError(
            f"{option} {name!r} is not a format: write it with yyyy (or yy), mm, dd"
            + (", HH, MM and SS" if time else "")
            + f" and the separators between them, e.g. {example}, or as a strptime pattern with %"
        )
    return _reader(re.compile("".join(_TOKENS.get(p, re.escape(p)) for p in pieces), re.ASCII))


def _with_time_of_day(date_format: str) -> Callable[[str], dt.datetime | None]:
    """How a datetime is read when no ``datetime_format`` is given, after ISO 8601."""
    if "%" in date_format:
        patterns = [f"{date_format} %H:%M:%S", f"{date_format} %H:%M", date_format]
        readers = [_strptime(p, "date_format") for p in patterns]
        return lambda text: next((d for d in (read(text) for read in readers) if d is not None), None)
    date = "".join(_TOKENS.get(p, re.escape(p)) for p in _PIECE.findall(date_format.lower()))
    return _reader(re.compile(date + _TIME_OF_DAY, re.ASCII))


def _reader(grammar: re.Pattern[str]) -> Callable[[str], dt.datetime | None]:
    def read(text: str) -> dt.datetime | None:
        found = grammar.fullmatch(text)
        if found is None:
            return None
        part = found.groupdict()
        year = int(part["year"]) if part.get("year") else _century(int(part["yy"]))
        fraction = part.get("fraction") or ""
        try:
            return dt.datetime(
                year,
                int(part["month"]),
                int(part["day"]),
                int(part.get("hour") or 0),
                int(part.get("minute") or 0),
                int(part.get("second") or 0),
                int(fraction.ljust(6, "0")) if fraction else 0,
            )
        except ValueError:  # 31/02, 25:00 ...
            return None

    return read


def _century(yy: int) -> int:
    return 1900 + yy if yy >= 69 else 2000 + yy  # the POSIX pivot strptime's %y uses


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin") from None


def parse_value(kind: str, value: Any, options: ParseOptions, *, field: str = "", choices: Sequence[str] = ()) -> Any:
    """``value`` (a CSV cell's text, a JSON value or a typed XLSX cell) as a field of type ``kind`` stores it,
    or ``None`` for an empty cell.

    :param kind: a crmkit field type, one of :data:`KINDS`.
    :param field: the field's name, for ``options.choices`` and the messages.
    :param choices: the field's declared choices: the value must be one of them (matched by the user's
        labels, then exactly, then case-insensitively with spaces and hyphens read as ``_``).
    :raises ValueError: one line quoting the value and saying what was expected.
    """
    if kind == "boolean":  # before the emptiness test: an empty checkbox cell is usually "no"
        return _boolean(value, options)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if kind in ("string", "text"):
        text = _text(value)
        return _choice(text, options, field, choices) if choices or field in options.choices else text
    if kind == "integer":
        return _integer(value, options)
    if kind == "decimal":
        return _decimal(value, options)
    if kind == "date":
        return _date(value, options)
    if kind == "datetime":
        return _datetime(value, options)
    raise ValueError(f"unknown field type {kind!r}: expected one of {', '.join(KINDS)}")


def cell_reader(name: str, kind: str, choices: Sequence[str], options: ParseOptions) -> Callable[[Any], Any]:
    """``parse_value`` for the cells of one column, whose field (its name, type and choices) and options are
    known before the first cell: the same value or the same ``ValueError``, for the usual cells without the
    dispatch on the field's type. A text cell of a text field is the cell
    stripped (``None`` when that is empty); of a field with choices and no labels for it in ``options``, the
    stripped text when it is one of the choices. Every other cell goes to ``parse_value``."""
    choices = tuple(choices)

    def general(value: Any) -> Any:
        return parse_value(kind, value, options, field=name, choices=choices)

    if kind not in ("string", "text") or name in options.choices:
        return general
    if not choices:

        def text(value: Any) -> Any:
            if type(value) is str:
                return value.strip() or None
            return general(value)

        return text
    allowed = frozenset(choices) - {""}  # parse_value reads an empty cell as None, whatever the choices

    def choice(value: Any) -> Any:
        if type(value) is str:
            stripped = value.strip()
            if stripped in allowed:
                return stripped
        return general(value)  # empty, another spelling of a choice, or not a choice: parse_value words it

    return choice


#: What :func:`column_reader` reads: the column's values, and the cells it could not read (their index).
ColumnRead = tuple[list[Any], dict[int, ValueError]]


def column_reader(
    name: str, kind: str, choices: Sequence[str], options: ParseOptions
) -> Callable[[list[Any]], ColumnRead]:
    """:func:`cell_reader` of every cell of a column: per cell the same value, or the same ``ValueError``
    (kept by the cell's index, its value ``None``). A column of text cells of a text field (one without
    choice labels in ``options``) is read whole at the C speed of ``map``: every cell stripped, an empty one
    ``None``; of a field with choices, when every stripped cell is one of them or empty. Any other column is
    read cell by cell."""
    read = cell_reader(name, kind, choices, options)

    def by_cell(cells: list[Any]) -> ColumnRead:
        values: list[Any] = []
        failed: dict[int, ValueError] = {}
        for i, cell in enumerate(cells):
            try:
                values.append(read(cell))
            except ValueError as exc:
                values.append(None)
                failed[i] = exc
        return values, failed

    if kind not in ("string", "text") or name in options.choices:
        return by_cell
    allowed = frozenset(choices) | {""} if choices else None  # an empty cell reads as None, whatever the choices

    def whole(cells: list[Any]) -> ColumnRead:
        if set(map(type, cells)) != {str}:
            return by_cell(cells)
        stripped = list(map(str.strip, cells))
        if allowed is not None and not allowed.issuperset(stripped):
            return by_cell(cells)
        return [text or None for text in stripped], {}

    return whole


def _shown(value: Any) -> str:
    """The value quoted in a message; a long one cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number or a code an XLSX file keeps as a number
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dt.datetime) and value.time() == dt.time() and value.tzinfo is None:
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise ValueError(f"not text: {_shown(value)}")


def _choice(text: str, options: ParseOptions, field: str, choices: Sequence[str]) -> str:
    labels = options.choices.get(field, {})
    stored = labels.get(text)
    if stored is None:
        folded = text.casefold()
        stored = next((v for label, v in labels.items() if label.casefold() == folded), None)
    where = f" for {field}" if field else ""
    expected = ", ".join(choices)
    if stored is not None:
        if choices and stored not in choices:
            raise ValueError(f"the label {text!r}{where} stands for {stored!r}, which is not one of {expected}")
        return stored
    if not choices or text in choices:
        return text
    key = _CHOICE_GAPS.sub("_", text.casefold())
    found = next((c for c in choices if _CHOICE_GAPS.sub("_", c.casefold()) == key), None)
    if found is None:
        raise ValueError(f"unknown choice {_shown(text)}{where}: expected one of {expected}")
    return found


def _boolean(value: Any, options: ParseOptions) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        text = ""
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = _text(value)
    elif isinstance(value, str):
        text = value.strip().lower()
    else:
        text = None
    if text is not None:
        if text in options.true_values:
            return True
        if text in options.false_values:
            return False
        if not text:
            return None
    yes = ", ".join(v for v in options.true_values if v)
    no = ", ".join(v if v else "an empty cell" for v in options.false_values)
    raise ValueError(f"not a yes/no value: {_shown(value)} (expected {yes} for yes; {no} for no)")


def _number(value: Any, options: ParseOptions, what: str) -> Decimal:
    """A number written in the file's way, exactly."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"not {what}: {_shown(value)}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | Decimal):
        if not (math.isfinite(value) if isinstance(value, float) else value.is_finite()):
            raise ValueError(f"not {what}: {_shown(value)}")
        return Decimal(repr(value)) if isinstance(value, float) else value  # repr: the float as written
    text = value.strip()
    grammar, _ = _NUMBER[options.decimal_comma]
    found = grammar.fullmatch(text) if len(text) <= MAX_NUMBER_CHARS else None
    if found is None or not (found.group(2) or found.group(4)):
        other, other_mark = _NUMBER[not options.decimal_comma]
        hint = ""
        if len(text) <= MAX_NUMBER_CHARS and other.fullmatch(text) and other_mark in text:
            hint = (
                " (is ',' the decimal mark in this file? then set decimal_comma)"
                if other_mark == ","
                else " ('.' is read as a thousands separator: is decimal_comma set by mistake?)"
            )
        raise ValueError(f"not {what}: {_shown(text)}{hint}")
    sign, whole, separator, fraction = found.groups()
    whole = (whole or "0").replace(separator, "") if separator else whole or "0"
    return Decimal(f"{sign}{whole}.{fraction}" if fraction is not None else f"{sign}{whole}")


def _integer(value: Any, options: ParseOptions) -> int:
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)  # the common case, without the general grammar
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _number(value, options, "a whole number")
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number: {_shown(value.strip() if isinstance(value, str) else value)}")
    return int(number)


def _decimal(value: Any, options: ParseOptions) -> Decimal:
    return _number(value, options, "a number")


def _date(value: Any, options: ParseOptions) -> dt.date:
    expected = f"not a date in the format {options.date_format}"
    if isinstance(value, dt.datetime):  # an XLSX date cell is a datetime at midnight
        if value.time() != dt.time() or value.tzinfo is not None:
            raise ValueError(f"{expected}: {_shown(value.isoformat(sep=' '))} has a time of day")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{expected}: {_shown(value)}")
    text = value.strip()
    read = options._date.read(text)
    if read is None or read.time() != dt.time():
        raise ValueError(f"{expected}: {_shown(text)}")
    return read.date()


def _datetime(value: Any, options: ParseOptions) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _utc(value, options, value.isoformat(sep=" "))
    if isinstance(value, dt.date):
        return _utc(dt.datetime.combine(value, dt.time()), options, value.isoformat())
    given = options._datetime
    expected = (
        f"not a date and time in the format {given.name}"
        if given is not None
        else f"not a date and time in ISO 8601 or as {options.date_format} HH:MM[:SS]"
    )
    if not isinstance(value, str):
        raise ValueError(f"{expected}: {_shown(value)}")
    text = value.strip()
    read = given.read(text) if given is not None else _iso(text) or options._date_time(text)
    if read is None:
        raise ValueError(f"{expected}: {_shown(text)}")
    return _utc(read, options, text)


def _iso(text: str) -> dt.datetime | None:
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None  # fromisoformat also reads 20240301 and week dates: only the usual forms are ISO here
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _utc(moment: dt.datetime, options: ParseOptions, shown: str) -> dt.datetime:
    if moment.tzinfo is not None:
        return moment.astimezone(dt.UTC)
    zone = options._zone
    local = moment.replace(tzinfo=zone, fold=0)  # fold=0: the first of a local time that happens twice
    utc = local.astimezone(dt.UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != moment:
        raise ValueError(
            f"{_shown(shown)} does not exist in {options.timezone}: the clocks skip that time (daylight saving)"
        )
    return utc
