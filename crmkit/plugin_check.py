"""The contract checks a plugin author gets for free: :func:`check_plugin` (re-exported by
:mod:`crmkit.testing`).

Each check does what a deployment does, in the order it does it: the plugin's migrations build a fresh
database, a customer is created in one of the plugin's own stages with a valid value of every field it
declares and read back, an activity of each of its kinds is logged, each of its reports is rendered. A
failure is an ``AssertionError`` that names the plugin and the table, field, kind or report at fault.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import inspect

from crmkit.errors import CRMError
from crmkit.specs import ActivityKindSpec, FieldSpec

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.reports import Param

#: When the checks' activities happen: fixed, so a plugin's rules never see a different day.
WHEN = dt.datetime(2024, 2, 29, 9, 30, tzinfo=dt.UTC)

# one valid value per field type, each near what its column must hold: non-ASCII text, a 32-bit integer's
# largest value, a decimal with every digit of Numeric(14, 2), a leap day, a time with microseconds
_SAMPLES: dict[str, Any] = {
    "text": "Zoë's notes ✓\nsecond line\t" + "x" * 5000,
    "integer": 2**31 - 1,
    "decimal": "999999999999.99",
    "boolean": True,
    "date": "2024-02-29",
    "datetime": "2024-02-29T23:59:58.123456+00:00",
}
_ACTIVITY_COLUMNS: dict[str, Any] = {
    "subject": "Contract check",
    "result": "done",
    "occurred_at": WHEN.isoformat(),
    "duration_min": 45,
    "amount": "12.50",
    "currency": "EUR",
    "direction": "inbound",
}
_PARAMS: dict[str, Any] = {
    "string": "x",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "date": "2024-02-01",
    "datetime": WHEN.isoformat(),
}


def check_plugin(crm: CRM, name: str) -> None:
    """Check plugin ``name`` of ``crm`` the way a deployment uses it.

    ``crm`` must be on an **empty** database (``crm_factory([plugin], create_schema=False)``): the check
    runs the migrations itself (:func:`crmkit.migrate.upgrade`), because ``crm.create_schema()`` creates
    every declared table whether or not a migration does. It then asserts that:

    * the plugin is loaded and each of its declarations is stamped with its name;
    * after the migrations, each table the plugin declares (``<plugin>_customer`` for its fields, its
      models) exists with every declared column;
    * a customer can be created in the plugin's own initial stage (the first by ``order``; the core's
      first initial stage if the plugin declares none) with a valid value of every field the plugin
      declares, and reading the customer back gives each value as written: a string of ``max_length``
      non-ASCII characters (or the last choice), a long text, the largest 32-bit integer, a decimal with
      every digit of ``Numeric(14, 2)``, ``True``, a leap day, a time with microseconds;
    * an activity of each kind the plugin declares can be logged with the columns and data fields that
      kind requires (a user as owner, a contact of the customer, a sample value for each), and the data
      fields read back as written;
    * each report the plugin declares renders in every format, given a sample for each required parameter
      that has no default.

    A failure raises ``AssertionError`` naming the plugin and what failed.
    """
    _loaded(crm, name)
    _migrated(crm, name)
    customer_id = _customer_round_trip(crm, name)
    for kind in crm.registry.activity_kinds.values():
        if kind.owner == name:
            _log(crm, name, kind, customer_id)
    for report in crm.registry.reports.values():
        if report.owner == name:
            _render(crm, name, report.name, report.params)


def _fail(name: str, message: str) -> NoReturn:
    raise AssertionError(f"check_plugin({name!r}): {message}")


def _loaded(crm: CRM, name: str) -> None:
    if name not in crm.plugins:
        _fail(name, f"the plugin is not loaded (loaded: {list(crm.plugins)})")
    reg = crm.registry
    specs: list[Any] = [*reg.fields.values(), *reg.stages.values(), *reg.activity_kinds.values()]
    for spec in [*specs, *reg.reports.values(), *reg.triggers.values()]:
        if not spec.owner:
            _fail(name, f"{spec!r} was not stamped with its plugin")


def _migrated(crm: CRM, name: str) -> None:
    from crmkit import migrate

    existing = set(inspect(crm.engine).get_table_names())
    if existing:
        _fail(
            name,
            "needs a CRM on an empty database, to build it with the plugin's migrations"
            f" (crm_factory([...], create_schema=False)); this one has tables: {', '.join(sorted(existing))}",
        )
    try:
        migrate.upgrade(crm)
    except CRMError as exc:
        _fail(name, f"the migrations failed: {exc}")
    inspector = inspect(crm.engine)
    existing = set(inspector.get_table_names())
    declared = [table for owner, table in crm.registry.tables.values() if owner == name]
    if name in crm.extension_tables:
        declared.insert(0, crm.extension_tables[name])
    for table in declared:
        if table.name not in existing:
            _fail(
                name,
                f"table {table.name!r} does not exist after the migrations (crmkit.migrate.upgrade): add a"
                f" revision that creates it ('crmkit db revision --branch {name} -m MESSAGE')",
            )
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in columns]
        if missing:
            _fail(
                name,
                f"table {table.name!r} lacks columns {missing} after the migrations: add a revision that adds"
                f" them ('crmkit db revision --branch {name} -m MESSAGE')",
            )


def _initial_stage(crm: CRM, name: str) -> str:
    initial = sorted((s for s in crm.registry.stages.values() if s.initial), key=lambda s: s.order)
    own = [s for s in initial if s.owner == name]
    return (own or initial)[0].name


def _customer_round_trip(crm: CRM, name: str) -> int:
    stage = _initial_stage(crm, name)
    fields = crm.registry.fields_of(name)
    given = {f.name: field_sample(f) for f in fields}
    try:
        created = crm.customers.create({"name": "Contract check", "stage": stage, **given}, allow_duplicate=True)
        read = crm.customers.get(created["id"])
    except CRMError as exc:
        _fail(name, f"creating a customer in stage {stage!r} with a valid value of every field failed: {exc}")
    if read.get("stage") != stage:
        _fail(name, f"the customer was created in stage {stage!r} but reads back in {read.get('stage')!r}")
    for spec in fields:
        if spec.name not in read:
            _fail(name, f"field {spec.name!r} is missing from the customer record")
        _same(name, f"field {spec.name!r} ({spec.type})", spec, given[spec.name], read[spec.name])
    return int(created["id"])


def field_sample(spec: FieldSpec) -> Any:
    """A valid input value for ``spec``, chosen to test its storage: see :func:`check_plugin`."""
    if spec.choices:
        return spec.choices[-1]
    if spec.type == "string":
        return ("Zoë✓" * (spec.max_length // 4 + 1))[: spec.max_length]  # no edge spaces: input is trimmed
    return _SAMPLES[spec.type]


def _same(name: str, what: str, spec: FieldSpec, given: Any, read: Any) -> None:
    if _value(spec.type, given) != _value(spec.type, read):
        _fail(name, f"{what} did not round-trip: wrote {given!r}, read back {read!r}")


def _value(kind: str, value: Any) -> Any:
    """``value`` as the Python value it stands for, whichever representation a read gives."""
    if value is None:
        return None
    if kind == "decimal" and not isinstance(value, bool):
        return Decimal(str(value))
    if kind == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind == "datetime" and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return value


def _log(crm: CRM, name: str, kind: ActivityKindSpec, customer_id: int) -> None:
    data_fields = {f.name: f for f in kind.data_fields}
    values: dict[str, Any] = {"customer_id": customer_id, "kind": kind.name, **_ACTIVITY_COLUMNS}
    values["channel"] = kind.channel or "other"
    data = {f.name: field_sample(f) for f in kind.data_fields if f.required or f.name in kind.required}
    try:
        if "owner_id" in kind.required or kind.calendar:
            values["owner_id"] = crm.users.create({"name": f"Contract owner of {kind.name}"})["id"]
        if "contact_id" in kind.required:
            values["contact_id"] = crm.customers.add_contact(customer_id, {"name": "Contract contact"})["id"]
        logged = crm.activities.log({**values, "data": data}, allow_conflict=True)
        read = crm.activities.get(logged["id"])
    except CRMError as exc:
        _fail(name, f"logging a {kind.name!r} activity with its required fields failed: {exc}")
    stored: Mapping[str, Any] = read.get("data") or {}
    for key, given in data.items():
        _same(name, f"data field {key!r} of activity kind {kind.name!r}", data_fields[key], given, stored.get(key))


def _render(crm: CRM, name: str, report: str, params: Sequence[Param]) -> None:
    from crmkit.reports.engine import FORMATS

    values = {
        p.name: p.choices[0] if p.choices else _PARAMS[p.type] for p in params if p.required and p.default is None
    }
    for format in FORMATS:
        try:
            text = crm.reports.render(report, values, format=format, now=WHEN)
        except Exception as exc:  # a report's data function is the plugin's code: any error is the finding
            _fail(name, f"report {report!r} does not render as {format}: {type(exc).__name__}: {exc}")
        if not text:
            _fail(name, f"report {report!r} rendered as {format} is empty")
