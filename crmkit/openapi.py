"""crmkit's marshmallow fields described to apispec, so an OpenAPI document built from ``crm.schemas`` is exact.

apispec maps a field class to an OpenAPI type through its base classes, which gives crmkit's fields the right
``type``; what it cannot see are the limits they check in code rather than through marshmallow validators:
the length of a :class:`~crmkit.limits.Text`, the range of an :class:`~crmkit.limits.Int`, the decimal
places of :class:`~crmkit.limits.Money`. :func:`register_fields` adds them::

    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin
    from crmkit.openapi import register_fields

    marshmallow = MarshmallowPlugin()
    spec = APISpec("my app", "1.0", "3.0.3", plugins=[marshmallow])
    register_fields(marshmallow)
    spec.components.schema("Customer", schema=crm.schemas.customer_out)

apispec is not a dependency of crmkit: install it (``pip install apispec``) to use this module.
"""

from __future__ import annotations

from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields as mf

from crmkit import limits
from crmkit.schemas import Country

#: How decimals travel: as text, so no amount goes through a binary float (``"12.50"``).
DECIMAL: tuple[str, str] = ("string", "decimal")


def register_fields(plugin: MarshmallowPlugin) -> None:
    """Describe crmkit's field classes to ``plugin``, which must already be registered with an ``APISpec``."""
    converter = plugin.converter
    if converter is None:
        raise RuntimeError("register the MarshmallowPlugin with an APISpec before calling register_fields")
    # apispec keeps its field mapping in a class attribute that every converter shares: a copy, so only this
    # document learns crmkit's fields (the same as ``plugin.map_to_openapi_type`` for each, on the copy)
    converter.field_mapping = {
        **converter.field_mapping,
        limits.Money: DECIMAL,
        limits.Email: ("string", "email"),
        limits.JSONObject: ("object", None),
        Country: ("string", None),
    }
    converter.add_attribute_function(crmkit_limits)  # type: ignore[no-untyped-call]  # apispec leaves it untyped


def crmkit_limits(converter: Any, field: mf.Field[Any], ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """The OpenAPI attributes of the limits ``field`` checks in code (an apispec attribute function)."""
    del converter  # bound by apispec; the field holds everything needed
    if isinstance(field, limits.Text):
        attrs: dict[str, Any] = {}
        if field.max_length is not None:
            attrs["maxLength"] = field.max_length
        if field.min_length:
            attrs["minLength"] = field.min_length
        return attrs
    if isinstance(field, limits.Int):
        attrs = {
            "minimum": max(field.low, ret.get("minimum", field.low)),
            "maximum": min(field.high, ret.get("maximum", field.high)),
        }
        if (field.low, field.high) in (limits.INT32, limits.INT64):
            attrs["format"] = "int32" if (field.low, field.high) == limits.INT32 else "int64"
        return attrs
    if isinstance(field, limits.Money):
        digits, places = field.precision - field.scale, field.scale
        # apispec wrote its bounds with the field, as Decimals: JSON has no such thing
        bounds = {key: str(value) for key, value in ret.items() if key in ("x-minimum", "x-maximum")}
        return {**bounds, "pattern": rf"^-?\d{{1,{digits}}}(\.\d{{1,{places}}})?$"}
    if isinstance(field, mf.Decimal) and field.as_string:  # apispec says "number" for every Decimal
        nullable = isinstance(ret.get("type"), list) and "null" in ret["type"]  # OpenAPI 3.1's way
        return {"type": [DECIMAL[0], "null"] if nullable else DECIMAL[0], "format": DECIMAL[1]}
    if isinstance(field, Country):
        # an empty string means "no country", as null does
        return {"pattern": "^([A-Za-z]{2})?$"}
    return {}
