"""The storage limits of every column a user can write, as marshmallow fields: the one place they live.

SQLite stores almost anything (text of any length, numbers of any size, NUL bytes) while PostgreSQL rejects
the same values with a driver error, so each limit is checked here, at the boundary, and the same input gets
the same :class:`~crmkit.errors.ValidationError` on both databases:

* text (:class:`Text`): no NUL character, no lone surrogate (neither driver can encode one), at most the
  column's length;
* integers (:class:`Int`): not a bool, not a fraction, within the column's 32- or 64-bit range;
* money (:class:`Money`): finite, no more decimal places than the column keeps (never rounded), below the
  column's magnitude;
* dates (:class:`Day`) and datetimes (:class:`Moment`): 1900 to 2199, so adding a duration cannot overflow;
* free JSON (:class:`JSONObject`): text, finite numbers, booleans, null, lists and objects only;
* ids of reads (:func:`require_id`): an int, and one outside the column's range cannot exist.

:func:`load` runs a schema of these fields and turns marshmallow's error into crmkit's. **Public and stable**
for plugins (see ``docs/plugin-api.md``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from marshmallow import Schema, validate
from marshmallow import ValidationError as FieldError
from marshmallow import fields as mf

from crmkit.errors import NotFound, ValidationError

MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
#: Datetimes are accepted from ``MIN_MOMENT`` to before ``MAX_MOMENT`` (UTC).
MIN_MOMENT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_MOMENT = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_INT64_MIN, _INT64_MAX = INT64
#: How deep free JSON may nest: deep enough for any real payload, far from the databases' recursion limits.
MAX_JSON_DEPTH = 20
#: Floats at or above this magnitude are written in exponent form, which PostgreSQL reads back as an exact
#: decimal (an int for 1e16): not the float that was stored, and not what SQLite returns.
MAX_JSON_FLOAT = 1e15
#: The most records one page of a list may hold, and the most values one ``__in`` filter may list.
MAX_PAGE_SIZE = 1000
MAX_IN_VALUES = 1000

NUL = "must not contain NUL characters"
NOT_UNICODE = "is not valid Unicode text"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on both databases, or ``None``."""
    if "\x00" in value:
        return NUL
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # only a lone surrogate fails to encode
            return NOT_UNICODE
    return None


def _range_message(low: int, high: int) -> str:
    return f"must be between {low} and {high}"


class Text(mf.String):
    """Text that both databases store as given: no NUL, no lone surrogate, at most ``max_length``."""

    def __init__(self, *, max_length: int | None = None, min_length: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(text)
        if problem is not None:
            raise FieldError(problem)
        if self.max_length is not None and len(text) > self.max_length:
            raise FieldError(f"longer than {self.max_length} characters")
        if len(text) < self.min_length:
            raise FieldError(
                "must not be empty" if self.min_length == 1 else f"shorter than {self.min_length} characters"
            )
        return text


class Email(Text):
    """An email address, at most 320 characters (the column's length)."""

    def __init__(self, *, max_length: int | None = 320, **kwargs: Any) -> None:
        validators = [validate.Email(error="Not a valid email address.")]
        extra = kwargs.pop("validate", None)
        if extra is not None:
            validators.extend(extra if isinstance(extra, list | tuple) else [extra])
        super().__init__(max_length=max_length, validate=validators, **kwargs)


class Int(mf.Integer):
    """An integer that fits the column: ``bits`` 32 (INTEGER) or 64 (BIGINT), optionally within ``min``..``max``.

    Whole floats and numeric text are taken as marshmallow takes them; fractions are refused, never truncated.
    """

    def __init__(self, *, bits: int = 32, min: int | None = None, max: int | None = None, **kwargs: Any) -> None:
        if bits not in (32, 64):
            raise ValueError(f"bits must be 32 or 64, got {bits}")
        kwargs.setdefault("strict", False)
        super().__init__(**kwargs)
        low, high = INT32 if bits == 32 else INT64
        self.low = low if min is None else min
        self.high = high if max is None else max

    def _validated(self, value: Any) -> int:
        if (isinstance(value, float) and math.isfinite(value) and not value.is_integer()) or (
            isinstance(value, decimal.Decimal) and value.is_finite() and value != value.to_integral_value()
        ):
            raise self.make_error("invalid", input=value)
        number = super()._validated(value)
        if not self.low <= number <= self.high:
            raise FieldError(_range_message(self.low, self.high))
        return number


class Money(mf.Decimal):
    """An amount for a ``Numeric(precision, scale)`` column: finite, at most ``scale`` decimal places (never
    rounded: 10.005 is refused, not stored as 10.00), and below ``10 ** (precision - scale)`` in magnitude."""

    def __init__(self, precision: int = 14, scale: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("as_string", False)
        super().__init__(places=None, **kwargs)
        self.precision = precision
        self.scale = scale
        self._quantum = decimal.Decimal(1).scaleb(-scale)
        self._bound = decimal.Decimal(10) ** (precision - scale)

    def _validated(self, value: Any) -> decimal.Decimal:
        number = super()._validated(value)
        if number.copy_abs() >= self._bound:  # copy_abs, unlike abs(), never rounds or overflows
            raise FieldError(f"must be less than {self._bound:,} in magnitude")
        try:
            exact = number.quantize(self._quantum)
        except decimal.DecimalException:  # an exponent beyond the context's range
            raise FieldError(f"has more than {self.scale} decimal places") from None
        if exact != number:
            raise FieldError(f"has more than {self.scale} decimal places")
        # 5, 5.0 and 5.000 are the same amount: stored and returned as 5.00, and -0.00 as 0.00
        return exact if exact else abs(exact)


def _latest_today() -> dt.date:
    # a date that is today somewhere on Earth (UTC+14) is not yet in the future
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()


class Day(mf.Date):
    """A date from 1900-01-01 to 2199-12-31; with ``not_after_today``, not in the future (a birthday)."""

    def __init__(self, *, not_after_today: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.not_after_today = not_after_today

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if isinstance(value, dt.datetime):  # a date subclass: its time would be dropped without a word
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        day = super()._deserialize(value, attr, data, **kwargs)
        if not MIN_DATE <= day <= MAX_DATE:
            raise FieldError(f"must be between {MIN_DATE} and {MAX_DATE}")
        if self.not_after_today and day > _latest_today():
            raise FieldError("cannot be in the future")
        return day


def moment_problem(value: dt.datetime) -> str | None:
    """Why an aware datetime is out of range, or ``None``. Comparing aware datetimes never overflows,
    unlike converting one near year 1 or 9999 to UTC."""
    if MIN_MOMENT <= value < MAX_MOMENT:
        return None
    return f"must be from {MIN_MOMENT:%Y-%m-%d} to before {MAX_MOMENT:%Y-%m-%d} (UTC)"


class Moment(mf.AwareDateTime):
    """An aware datetime (naive input is taken as UTC) from 1900-01-01T00:00Z to before 2200-01-01T00:00Z."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_timezone", dt.UTC)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        problem = moment_problem(moment)
        if problem is not None:
            raise FieldError(problem)
        return moment


_JSON_TYPES = "text, a number, true, false, null, a list or an object"


def _json_value(value: Any, depth: int) -> Any:
    """``value`` as it is stored and read back from JSON on both databases, or ``FieldError``."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise FieldError(problem)
        return str.__str__(value)  # a plain str, as JSON gives it back
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            raise FieldError(f"integers {_range_message(*INT64)}")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError("numbers must be finite (no NaN or infinity)")
        if abs(value) >= MAX_JSON_FLOAT:
            raise FieldError(f"decimal numbers must be less than {MAX_JSON_FLOAT:.0e} in magnitude")
        return float(value)
    if depth >= MAX_JSON_DEPTH:
        raise FieldError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, list | tuple):
        return [_json_value(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        return _json_object(value, depth + 1)
    raise FieldError(f"{type(value).__name__} is not a JSON value ({_JSON_TYPES})")


def _json_object(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise FieldError(f"keys must be text, got {key!r}")
        problem = text_problem(key)
        if problem is not None:
            raise FieldError(f"key {key!r} {problem}")
        out[str.__str__(key)] = _json_value(item, depth)
    return out


def json_ok(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is free JSON that :class:`JSONObject` loads unchanged: exact builtin types only
    (a subclass, a tuple or a non-dict mapping is converted by the field, so it is not "unchanged").

    The quick form of the field, for bulk ingest: the usual flat object is checked in one loop."""
    kind = type(value)
    if kind is dict:
        return depth < MAX_JSON_DEPTH and _json_items_ok(value, depth + 1)
    if kind is list:
        return depth < MAX_JSON_DEPTH and all(json_ok(item, depth + 1) for item in value)
    return _json_leaf_ok(value)


def _json_items_ok(value: dict[Any, Any], depth: int) -> bool:
    for key, item in value.items():
        if type(key) is not str or "\x00" in key or not (key.isascii() or text_problem(key) is None):
            return False
        kind = type(item)
        if kind is str:
            if "\x00" in item or not (item.isascii() or text_problem(item) is None):
                return False
        elif kind is dict or kind is list:
            if not json_ok(item, depth):
                return False
        elif not _json_leaf_ok(item):
            return False
    return True


def _json_leaf_ok(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or text_problem(value) is None)
    if value is None or kind is bool:
        return True
    if kind is int:
        return _INT64_MIN <= value <= _INT64_MAX
    if kind is float:
        return math.isfinite(value) and abs(value) < MAX_JSON_FLOAT
    return False


class JSONObject(mf.Dict):
    """A free JSON object: text keys; values text, finite numbers, booleans, null, lists and objects, nested
    at most ``MAX_JSON_DEPTH`` deep. Returned as plain dicts and lists, exactly as the database returns them."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        return _json_object(value, 1)


def require_id(value: object, kind: str, *, bits: int = 32) -> int:
    """``value`` as the id of a ``kind`` to read: ``ValidationError`` if it is not an int, ``NotFound`` if it
    is outside the id column's range (1 to the largest ``bits``-bit int), where no row can exist."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError({f"{kind}_id": [f"must be an integer id, got {value!r}"]}, f"invalid {kind} id")
    number = int(value)
    if not 1 <= number <= (INT32 if bits == 32 else INT64)[1]:
        raise NotFound(kind, number)
    return number


def id_filter(value: object, kind: str, *, bits: int = 32) -> int | None:
    """``value`` as an id to filter a list by: ``ValidationError`` if it is not an int, ``None`` if it is
    outside the column's range (the list is empty: no row can match)."""
    try:
        return require_id(value, kind, bits=bits)
    except NotFound:
        return None


def load(schema: Schema, data: Any, *, partial: bool = False, message: str = "invalid input") -> dict[str, Any]:
    """Validate ``data`` with ``schema``; raise crmkit's ``ValidationError`` listing every problem."""
    if not isinstance(data, Mapping):
        raise ValidationError({"_schema": ["expected a mapping of field names to values"]}, message)
    try:
        return dict(schema.load(data, partial=partial))
    except FieldError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationError(errors, message) from None


def load_each(
    rows: Iterable[Any], load_one: Callable[[Any], dict[str, Any]], *, message: str = "invalid input"
) -> list[dict[str, Any]]:
    """Every row loaded by ``load_one`` (which raises crmkit's ``ValidationError``), all or nothing: one
    ``ValidationError`` lists every problem of every row as ``"[index].field"``."""
    errors: dict[str, Any] = {}
    loaded: list[dict[str, Any]] = []
    for i, data in enumerate(rows):
        try:
            loaded.append(load_one(data))
        except ValidationError as exc:
            errors.update({f"[{i}].{field}": problems for field, problems in exc.errors.items()})
    if errors:
        raise ValidationError(errors, message)
    return loaded


def check(field: mf.Field[Any], value: Any, name: str, message: str = "invalid input") -> Any:
    """``value`` loaded by ``field`` for an argument that is not part of a schema (a move's cause, a task's
    completion time); crmkit's ``ValidationError`` naming ``name`` otherwise."""
    try:
        return field.deserialize(value)
    except FieldError as exc:
        messages = exc.messages if isinstance(exc.messages, list) else [exc.messages]
        raise ValidationError({name: messages}, message) from None
