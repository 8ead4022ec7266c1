"""What customers, activities and tasks can be searched by: the :class:`~crmkit.listing.Listing` of each.

Built from explicit inputs (tables, declared fields, schemas), so the services only hand over what they
hold. A customer's ``email`` and ``phone`` filter and order by their normalised forms, the ones duplicate
checks use: ``{"email": "Ann@Example.com"}`` finds ``ann@example.com``, ``{"phone": "081 234 5678"}`` finds
the number as the CRM's phone normaliser reads it in the CRM's default region (write ``+`` and the country
code for another one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from marshmallow import fields as mf
from marshmallow import validate
from sqlalchemy import Select, Table, select

from crmkit.db.models import ACTIVITY_DIRECTIONS, ACTIVITY_STATUSES, TASK_STATUSES, Activity, Task
from crmkit.limits import Day, Email, Int, Moment, Money, Text
from crmkit.listing import Filterable, Listing, Normalised, field_filter, json_filter
from crmkit.schemas import Country
from crmkit.specs import CHANNELS, FieldSpec

_ID = Int(min=0)
_BIG_ID = Int(bits=64, min=0)
_MOMENT = Moment()


@attrs.frozen
class _Kind:
    """How a value of a core column is read, before it is bound to its column."""

    field: mf.Field
    prefix: mf.Field | None = None


def _text(max_length: int | None, *, choices: Iterable[str] = ()) -> _Kind:
    """A text column: ``choices`` refuse values the column never holds, listing them."""
    options = sorted(choices)
    field = Text(max_length=max_length, validate=[validate.OneOf(options)] if options else [])
    return _Kind(field, prefix=Text(max_length=max_length))


def _bind(table: Table, kinds: Mapping[str, _Kind]) -> dict[str, Filterable]:
    """Each filter on its column of ``table``, NULL-able as the column is."""
    return {
        name: Filterable(table.c[name], kind.field, prefix=kind.prefix, nullable=bool(table.c[name].nullable))
        for name, kind in kinds.items()
    }


def customer_listing(
    *,
    customers: Table,
    query: Select[Any],
    extensions: Mapping[str, Table],
    fields_of: Callable[[str], Iterable[FieldSpec]],
    runtime: Iterable[FieldSpec],
    stages: Mapping[str, str],
    normalize_phone: Callable[[str], str | None],
    record: Callable[[Mapping[Any, Any]], dict[str, Any]],
) -> Listing:
    """``query`` selects one row per customer with every plugin field (``Customers.select()``); ``stages``
    maps each stage to its lifecycle; ``normalize_phone`` reads a number in the default region."""
    core = _bind(
        customers,
        {
            "id": _Kind(_ID),
            "name": _text(200),
            "birthday": _Kind(Day()),
            "source": _text(100),
            "campaign": _text(100),
            "owner_id": _Kind(_ID),
            "branch": _text(100),
            "country": _Kind(Country(), prefix=Text(max_length=2)),
            "stage": _text(48, choices=stages),
            "lifecycle": _text(16, choices=set(stages.values())),
            "stage_changed_at": _Kind(_MOMENT),
            "created_at": _Kind(_MOMENT),
            "updated_at": _Kind(_MOMENT),
        },
    )
    core["email"] = Filterable(
        customers.c.email_normalized,
        Normalised(Email(), lambda email: email.strip().lower()),
        prefix=Normalised(Text(max_length=320), str.lower),
        cursor=Text(),
    )
    core["phone"] = Filterable(
        customers.c.phone_normalized,
        Normalised(Text(max_length=50), normalize_phone),
        prefix=Text(max_length=20),
        cursor=Text(),
    )
    for plugin, table in extensions.items():
        for spec in fields_of(plugin):
            # a customer created before the plugin was installed has no extension row: NULL in the join
            field = field_filter(spec, table.c[spec.name], nullable=True)
            core[spec.name] = attrs.evolve(field, id_alias=table.c.customer_id)
    for spec in runtime:
        core[spec.name] = json_filter(spec, customers.c.extra)
    return Listing("customer", query, customers.c.id, core, record)


def activity_listing(*, kinds: Iterable[str], record: Callable[[Mapping[Any, Any]], dict[str, Any]]) -> Listing:
    """Activities, by the columns an activity list is filtered by; ``kinds`` are the declared kinds (an
    unknown kind is a mistake worth an error, not an empty list)."""
    table: Table = Activity.__table__  # type: ignore[assignment]
    fields = _bind(
        table,
        {
            "id": _Kind(_BIG_ID),
            "customer_id": _Kind(_ID),
            "kind": _text(48, choices=kinds),
            "status": _text(20, choices=ACTIVITY_STATUSES),
            "channel": _text(20, choices=CHANNELS),
            "direction": _text(10, choices=ACTIVITY_DIRECTIONS),
            "owner_id": _Kind(_ID),
            "contact_id": _Kind(_ID),
            "occurred_at": _Kind(_MOMENT),
            "created_at": _Kind(_MOMENT),
            "source": _text(100),
            "external_id": _text(200),
            "amount": _Kind(Money(14, 2)),
        },
    )
    return Listing("activity", select(table), table.c.id, fields, record, id_bits=64)


def task_listing(*, record: Callable[[Mapping[Any, Any]], dict[str, Any]]) -> Listing:
    table: Table = Task.__table__  # type: ignore[assignment]
    fields = _bind(
        table,
        {
            "id": _Kind(_BIG_ID),
            "customer_id": _Kind(_ID),
            "assignee_id": _Kind(_ID),
            "status": _text(20, choices=TASK_STATUSES),
            "priority": _Kind(Int()),
            "due_at": _Kind(_MOMENT),
            "remind_at": _Kind(_MOMENT),
            "created_at": _Kind(_MOMENT),
            "completed_at": _Kind(_MOMENT),
        },
    )
    return Listing("task", select(table), table.c.id, fields, record, id_bits=64)
