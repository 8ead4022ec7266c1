"""Field declarations turned into what each layer needs: a typed column, a marshmallow field."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import fields as mf
from marshmallow import validate
from sqlalchemy import Boolean, Column, Date, Integer, Numeric, String, Text
from sqlalchemy.types import TypeEngine

from crmkit.db.types import UTCDateTime
from crmkit.specs import FieldSpec


def column_type(spec: FieldSpec) -> TypeEngine[Any]:
    match spec.type:
        case "string":
            return String(spec.max_length)
        case "text":
            return Text()
        case "integer":
            return Integer()
        case "decimal":
            return Numeric(14, 2)
        case "boolean":
            return Boolean()
        case "date":
            return Date()
        case "datetime":
            return UTCDateTime()
    raise ValueError(f"unknown field type {spec.type!r}")  # pragma: no cover - FieldSpec validates


def column_for(spec: FieldSpec) -> Column[Any]:
    """A nullable column: ``required`` is enforced at the boundary, so adding a required field to a
    table that already has rows needs no back-fill."""
    return Column(spec.name, column_type(spec), nullable=True, index=spec.index, comment=spec.label or None)


def marshmallow_field(spec: FieldSpec, *, json_safe: bool = False) -> mf.Field:
    """The marshmallow field that validates input for ``spec``.

    ``json_safe`` loads decimals as floats, for values kept in a JSON column; typed columns get
    ``Decimal``.
    """
    validators: list[Any] = []
    kwargs: dict[str, Any] = {"required": spec.required, "allow_none": not spec.required}
    if spec.default is not None:
        kwargs["load_default"] = spec.default
    match spec.type:
        case "string":
            validators.append(validate.Length(max=spec.max_length))
            if spec.choices:
                validators.append(validate.OneOf(spec.choices))
            field: mf.Field = mf.String(validate=validators, **kwargs)
        case "text":
            field = mf.String(**kwargs)
        case "integer":
            field = mf.Integer(strict=False, **kwargs)
        case "decimal":
            field = mf.Float(**kwargs) if json_safe else mf.Decimal(places=2, **kwargs)
        case "boolean":
            field = mf.Boolean(**kwargs)
        case "date":
            field = mf.Date(**kwargs)
        case "datetime":
            field = mf.AwareDateTime(default_timezone=dt.UTC, **kwargs)
        case _:  # pragma: no cover - FieldSpec validates
            raise ValueError(f"unknown field type {spec.type!r}")
    return field


def to_json_value(spec: FieldSpec, value: Any) -> Any:
    """A validated value as it is kept in the JSON column of run-time fields."""
    if value is None:
        return None
    if spec.type in ("date", "datetime"):
        return value.isoformat()
    return value


def from_json_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "date":
        return dt.date.fromisoformat(value)
    if spec.type == "datetime":
        return dt.datetime.fromisoformat(value)
    return value
