"""Column limits as marshmallow fields, until the core's ``crmkit.limits`` is available: text that fits its
column and holds no NUL, integers that fit their column, money that fits ``Numeric(precision, scale)`` without
rounding, and dates and moments within 1900..2199. Every limit is a ``ValidationError`` naming the field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, validate
from marshmallow import fields as mf

FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2199, 12, 31)


class Text(mf.String):
    def __init__(self, *, max_length: int, min_length: int = 0, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(min=min_length, max=max_length), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode text (no lone surrogates)") from None
        return text


class Int(mf.Integer):
    def __init__(self, *, bits: int = 32, min: int | None = None, max: int | None = None, **kwargs: Any) -> None:
        low = -(2 ** (bits - 1)) if min is None else min
        high = 2 ** (bits - 1) - 1 if max is None else max
        super().__init__(validate=validate.Range(min=low, max=high), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        # marshmallow turns 5.5 into 5: a number that is not whole is a mistake, not a session count
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class Money(mf.Decimal):
    def __init__(self, *, precision: int = 10, scale: int = 2, **kwargs: Any) -> None:
        self.precision, self.scale = precision, scale
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, float):
            value = repr(value)
        amount: Decimal = super()._deserialize(value, attr, data, **kwargs)
        unit = Decimal(1).scaleb(-self.scale)
        if amount != amount.quantize(unit):  # rounding it would store another amount than the one given
            raise ValidationError(f"must have at most {self.scale} decimals")
        if abs(amount) >= Decimal(10) ** (self.precision - self.scale):
            raise ValidationError(f"must be less than {Decimal(10) ** (self.precision - self.scale)} in size")
        return amount.quantize(unit)


class Day(mf.Date):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dt.datetime):
            raise ValidationError("Not a valid date.")
        day: dt.date = super()._deserialize(value, attr, data, **kwargs)
        if not FIRST_DAY <= day <= LAST_DAY:
            raise ValidationError(f"must be between {FIRST_DAY} and {LAST_DAY}")
        return day


class Moment(mf.AwareDateTime):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        moment: dt.datetime = super()._deserialize(value, attr, data, **kwargs)
        if not FIRST_DAY <= moment.astimezone(dt.UTC).date() <= LAST_DAY:
            raise ValidationError(f"must be between {FIRST_DAY} and {LAST_DAY}")
        return moment.astimezone(dt.UTC)


def Id(**kwargs: Any) -> Int:
    """A row id: a positive integer that fits a BIGINT."""
    return Int(bits=64, min=1, **kwargs)
