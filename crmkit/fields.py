"""Field declarations turned into what each layer needs: a typed column, an input field, an output field.

:data:`FIELD_TYPES` is the one table of the field types a :class:`~crmkit.specs.FieldSpec` can have. Input
fields are built on :mod:`crmkit.limits` with the limits of the column the value is stored in, so a plugin's
field and a run-time field (kept in JSON) accept exactly what their storage keeps on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
from marshmallow import fields as mf
from marshmallow import validate
from sqlalchemy import Boolean, Column, Date, Integer, Numeric, String, Text
from sqlalchemy.types import TypeEngine

from crmkit import limits
from crmkit.db.types import UTCDateTime
from crmkit.specs import FieldSpec

#: The ``Numeric(precision, scale)`` of decimal fields; run-time decimals kept in JSON have the same limits.
MONEY = (14, 2)
_CENT = Decimal(1).scaleb(-MONEY[1])


@attrs.frozen
class FieldType:
    """What one field type is in each layer."""

    column: Callable[[FieldSpec], TypeEngine[Any]]
    #: The input field, given the spec and marshmallow's keyword arguments (required, default...).
    field: Callable[[FieldSpec, dict[str, Any]], mf.Field[Any]]
    output: Callable[[], mf.Field[Any]]


def _string(spec: FieldSpec, kwargs: dict[str, Any]) -> mf.Field[Any]:
    validators = [validate.OneOf(spec.choices)] if spec.choices else []
    return limits.Text(max_length=spec.max_length, validate=validators, **kwargs)


FIELD_TYPES: dict[str, FieldType] = {
    "string": FieldType(lambda spec: String(spec.max_length), _string, mf.String),
    "text": FieldType(lambda spec: Text(), lambda spec, kw: limits.Text(**kw), mf.String),
    "integer": FieldType(lambda spec: Integer(), lambda spec, kw: limits.Int(bits=32, **kw), mf.Integer),
    "decimal": FieldType(
        lambda spec: Numeric(*MONEY), lambda spec, kw: limits.Money(*MONEY, **kw), lambda: mf.Decimal(as_string=True)
    ),
    "boolean": FieldType(lambda spec: Boolean(), lambda spec, kw: mf.Boolean(**kw), mf.Boolean),
    "date": FieldType(lambda spec: Date(), lambda spec, kw: limits.Day(**kw), mf.Date),
    "datetime": FieldType(lambda spec: UTCDateTime(), lambda spec, kw: limits.Moment(**kw), mf.DateTime),
}


def _type(spec: FieldSpec) -> FieldType:
    try:
        return FIELD_TYPES[spec.type]
    except KeyError:  # pragma: no cover - FieldSpec validates
        raise ValueError(f"unknown field type {spec.type!r}") from None


def column_type(spec: FieldSpec) -> TypeEngine[Any]:
    return _type(spec).column(spec)


def column_for(spec: FieldSpec) -> Column[Any]:
    """A nullable column: ``required`` is enforced at the boundary, so adding a required field to a
    table that already has rows needs no back-fill."""
    return Column(spec.name, column_type(spec), nullable=True, index=spec.index, comment=spec.label or None)


def marshmallow_field(spec: FieldSpec) -> mf.Field[Any]:
    """The marshmallow field that validates input for ``spec``, with its column's limits; the same whether
    the value goes to a typed column or to JSON (see :func:`to_json_value`)."""
    kwargs: dict[str, Any] = {"required": spec.required, "allow_none": not spec.required}
    if spec.default is not None:
        kwargs["load_default"] = spec.default
    return _type(spec).field(spec, kwargs)


def output_field(spec: FieldSpec) -> mf.Field[Any]:
    """The marshmallow field that serialises a stored value of ``spec``."""
    return _type(spec).output()


def to_json_value(spec: FieldSpec, value: Any) -> Any:
    """A validated value as it is kept in JSON (run-time fields, activity data). A decimal becomes a float:
    below 10**12 with two places it has at most 14 digits, which a float keeps exactly."""
    if value is None:
        return None
    if spec.type in ("date", "datetime"):
        return value.isoformat()
    if spec.type == "decimal":
        return float(value)
    return value


def from_json_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "date":
        return dt.date.fromisoformat(value)
    if spec.type == "datetime":
        return dt.datetime.fromisoformat(value)
    if spec.type == "decimal":
        amount = Decimal(repr(value))
        try:
            return amount.quantize(_CENT)
        except ArithmeticError:  # a value stored before the limits were checked
            return amount
    return value
