"""Fields that an admin adds at run time, without a deploy: declared in the database, stored as JSON."""

from __future__ import annotations

from collections.abc import Callable

from marshmallow import ValidationError as MarshmallowError
from sqlalchemy import select

from crmkit.access import Access
from crmkit.audit import Audit
from crmkit.db.models import CustomField
from crmkit.errors import ValidationError
from crmkit.fields import marshmallow_field
from crmkit.limits import text_problem
from crmkit.plugins import CORE_CUSTOMER_FIELDS, Registry
from crmkit.specs import FieldSpec
from crmkit.unit import Transaction, Units

#: The longest text a run-time string field may declare: kept in JSON, it has no column to bound it.
_MAX_RUNTIME_LENGTH = 10_000

#: Core customer columns that hold personal data.
CORE_PERSONAL_FIELDS: tuple[str, ...] = ("name", "email", "email_normalized", "phone", "phone_normalized", "birthday")


class RuntimeFields:
    """``crm.fields``: every customer field this CRM knows, and the run-time ones an admin adds.

    Run-time values live in ``crm_customers.extra`` and are validated against their declaration, choices
    included. To promote one to a real column, declare it in a plugin and migrate its values.
    """

    def __init__(self, registry: Registry, units: Units, access: Access, audit: Audit) -> None:
        self._access = access
        self._audit = audit
        self._registry = registry
        self._units = units
        self._runtime: dict[str, FieldSpec] | None = None
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever the set of run-time fields may have changed (the schemas rebuild)."""
        self._listeners.append(listener)

    def declared(self) -> dict[str, FieldSpec]:
        """Fields declared by plugins, by name."""
        return dict(self._registry.fields)

    def personal(self) -> list[str]:
        """The **names** (strings, not :class:`~crmkit.FieldSpec` objects) of every customer field flagged
        as personal data, keys of the customer record: the core's (``name``, ``email``,
        ``email_normalized``, ``phone``, ``phone_normalized``, ``birthday``), then the plugins' and the
        run-time fields' with ``personal=True``, in declaration order. Export, erasure and masking work
        from this list, never from scanning tables."""
        declared = [f.name for f in [*self._registry.fields.values(), *self.runtime()] if f.personal]
        return [*CORE_PERSONAL_FIELDS, *declared]

    def runtime(self) -> list[FieldSpec]:
        """Fields added at run time, read from the database once and cached."""
        if self._runtime is None:
            with self._units.read() as s:
                rows = s.execute(select(CustomField).order_by(CustomField.id)).scalars()
                self._runtime = {r.name: FieldSpec.from_row(r.spec) for r in rows}
        return list(self._runtime.values())

    def all(self) -> list[FieldSpec]:
        """Every customer field beyond the core's: the plugins', then the run-time ones."""
        return [*self._registry.fields.values(), *self.runtime()]

    def reload(self) -> None:
        """Forget the cache, e.g. after another process added a field."""
        self._runtime = None
        self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def define(self, spec: FieldSpec, *, tx: Transaction | None = None) -> FieldSpec:
        """Add a run-time field. Its name must not clash with a core, plugin or run-time field."""
        self._access.require("fields:manage", tx)
        taken = CORE_CUSTOMER_FIELDS | set(self._registry.fields) | {f.name for f in self.runtime()}
        if spec.name in taken:
            raise ValidationError({"name": [f"field {spec.name!r} already exists"]}, "cannot add field")
        problems = _spec_problems(spec)
        if problems:
            raise ValidationError(problems, "cannot add field")
        spec = FieldSpec.from_row({**spec.to_dict(), "owner": "runtime", "index": False})
        with self._units.write(tx) as t:
            t.session.add(CustomField(name=spec.name, spec=spec.to_dict()))
            t.session.flush()
            self._audit.record(t, "field.defined", "field", entity_id=spec.name, changes=spec.to_dict())
            # usable at once, in this unit of work too; forgotten again if it rolls back
            assert self._runtime is not None
            self._runtime[spec.name] = spec
            self._changed()
            t.after_rollback(self.reload)
        return spec


def _spec_problems(spec: FieldSpec) -> dict[str, list[str]]:
    """What keeps ``spec`` from being stored as JSON on both databases, or from loading its own default."""
    problems: dict[str, list[str]] = {}
    for name in ("label", "description"):
        problem = text_problem(getattr(spec, name))
        if problem:
            problems[name] = [problem]
    choices: tuple[object, ...] = spec.choices  # an admin's input: the declared type is not yet true
    bad_choices = [c for c in choices if not isinstance(c, str) or text_problem(c)]
    if bad_choices:
        problems["choices"] = [f"{c!r} is not storable text" for c in bad_choices]
    if type(spec.max_length) is not int or not 1 <= spec.max_length <= _MAX_RUNTIME_LENGTH:
        problems["max_length"] = [f"must be an integer from 1 to {_MAX_RUNTIME_LENGTH}"]
    if spec.default is not None and not problems:
        if type(spec.default) not in (str, int, float, bool):  # kept in the field's JSON declaration
            problems["default"] = ["must be text, a number or a boolean (a date as ISO text)"]
        else:
            try:
                marshmallow_field(spec).deserialize(spec.default)
            except MarshmallowError as exc:
                problems["default"] = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
    return problems
