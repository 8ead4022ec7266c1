"""marshmallow schemas assembled from the core fields and every loaded plugin's declarations.

They guard every public write (``load``) and serialise every read (``dump``). Apps can reuse them in their
own HTTP layer: ``crm.schemas.customer_in`` validates exactly what ``crm.customers.create`` accepts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, post_load, pre_load, validate, validates_schema
from marshmallow import fields as mf

from crmkit.db.models import ACTIVITY_DIRECTIONS, ACTIVITY_STATUSES, TASK_STATUSES, USER_ROLES
from crmkit.fields import marshmallow_field, to_json_value
from crmkit.specs import CHANNELS, ActivityKindSpec, FieldSpec

Normalizer = Callable[[str], str | None]


class _Strict(Schema):
    """Unknown keys are errors (a typo must not silently drop data); text input is trimmed."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _trim(self, data: Any, **_: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return data


def _phone(normalize: Normalizer) -> Callable[[str], None]:
    def check(value: str) -> None:
        try:
            normalize(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    return check


def _str(max_length: int, **kwargs: Any) -> mf.String:
    return mf.String(validate=validate.Length(max=max_length), allow_none=True, **kwargs)


def customer_in(
    fields: Iterable[FieldSpec], runtime: Iterable[FieldSpec], normalize_phone: Normalizer, stages: Iterable[str]
) -> type[Schema]:
    """The schema of customer input: core fields, plugin fields, run-time fields, all flat."""
    declared: dict[str, mf.Field] = {
        "name": mf.String(required=True, validate=validate.Length(min=1, max=200)),
        "email": mf.Email(allow_none=True, validate=validate.Length(max=320)),
        "phone": mf.String(allow_none=True, validate=[validate.Length(max=50), _phone(normalize_phone)]),
        "birthday": mf.Date(allow_none=True),
        "source": _str(100),
        "campaign": _str(100),
        "owner_id": mf.Integer(allow_none=True),
        "branch": _str(100),
        "stage": mf.String(validate=validate.OneOf(list(stages))),
    }
    for spec in fields:
        declared[spec.name] = marshmallow_field(spec)
    for spec in runtime:
        declared[spec.name] = marshmallow_field(spec, json_safe=True)
    return _Strict.from_dict(declared, name="CustomerIn")


def customer_out(fields: Iterable[FieldSpec], runtime: Iterable[FieldSpec]) -> type[Schema]:
    declared: dict[str, mf.Field] = {
        "id": mf.Integer(),
        "name": mf.String(),
        "email": mf.String(),
        "email_normalized": mf.String(),
        "phone": mf.String(),
        "phone_normalized": mf.String(),
        "birthday": mf.Date(),
        "source": mf.String(),
        "campaign": mf.String(),
        "owner_id": mf.Integer(),
        "branch": mf.String(),
        "stage": mf.String(),
        "lifecycle": mf.String(),
        "stage_changed_at": mf.DateTime(),
        "created_at": mf.DateTime(),
        "updated_at": mf.DateTime(),
    }
    for spec in [*fields, *runtime]:
        declared[spec.name] = _out_field(spec)
    return Schema.from_dict(declared, name="CustomerOut")


def _out_field(spec: FieldSpec) -> mf.Field:
    return {
        "string": mf.String,
        "text": mf.String,
        "integer": mf.Integer,
        "decimal": lambda: mf.Decimal(as_string=True),
        "boolean": mf.Boolean,
        "date": mf.Date,
        "datetime": mf.DateTime,
    }[spec.type]()


def activity_in(kinds: Mapping[str, ActivityKindSpec]) -> type[Schema]:
    """Activity input. Per-kind rules (required fields, kind data) are checked after the field checks."""
    data_schemas = {
        name: _Strict.from_dict({f.name: marshmallow_field(f, json_safe=True) for f in kind.data_fields})()
        for name, kind in kinds.items()
    }

    class ActivityIn(_Strict):
        customer_id = mf.Integer(required=True)
        kind = mf.String(required=True, validate=validate.OneOf(sorted(kinds)))
        channel = mf.String(allow_none=True, validate=validate.OneOf(CHANNELS))
        direction = mf.String(allow_none=True, validate=validate.OneOf(ACTIVITY_DIRECTIONS))
        status = mf.String(load_default="done", validate=validate.OneOf(ACTIVITY_STATUSES))
        subject = _str(300)
        result = mf.String(allow_none=True)
        occurred_at = mf.AwareDateTime(default_timezone=dt.UTC, allow_none=True)
        duration_min = mf.Integer(allow_none=True, validate=validate.Range(min=0, max=24 * 60))
        amount = mf.Decimal(places=2, allow_none=True, validate=validate.Range(min=0))
        currency = mf.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="ISO 4217 code"))
        owner_id = mf.Integer(allow_none=True)
        contact_id = mf.Integer(allow_none=True)
        data = mf.Dict(keys=mf.String(), load_default=dict)
        # the idempotency key: where the event comes from and its id there (see ``Activities.ingest``)
        source = mf.String(allow_none=True, validate=validate.Length(min=1, max=100))
        external_id = mf.String(allow_none=True, validate=validate.Length(min=1, max=200))

        @validates_schema(skip_on_field_errors=False)
        def _kind_rules(self, values: dict[str, Any], **_: Any) -> None:
            errors: dict[str, Any] = {}
            if values.get("external_id") is not None and values.get("source") is None:
                # without a source the key would be NULL in the unique index and never match anything
                errors["source"] = ["required with an external_id"]
            kind = kinds.get(values.get("kind", ""))
            if kind is None:
                if errors:
                    raise ValidationError(errors)
                return
            data = values.get("data") or {}
            sub = data_schemas[kind.name]
            # a kind that declares its data is strict about it; one that declares none takes free JSON
            problems = sub.validate(data) if kind.data_fields else {}
            for key, msgs in problems.items():
                errors[f"data.{key}"] = msgs
            for name in kind.required:
                if name in sub.fields and sub.fields[name].required:
                    continue  # the data check above already reports it
                if name == "result" and values.get("status") == "planned":
                    continue  # a planned meeting has no result yet
                present = data.get(name) if name in sub.fields else values.get(name)
                if present is None or present == "":
                    errors.setdefault(name, []).append(f"required for a {kind.name}")
            if errors:
                raise ValidationError(errors)

        @post_load
        def _typed_data(self, values: dict[str, Any], **_: Any) -> dict[str, Any]:
            kind = kinds[values["kind"]]
            if kind.data_fields:  # store converted values and defaults, not the raw input
                loaded = data_schemas[kind.name].load(values.get("data") or {})
                specs = {f.name: f for f in kind.data_fields}
                values["data"] = {k: to_json_value(specs[k], v) for k, v in loaded.items()}
            return values

    return ActivityIn


def activity_out() -> type[Schema]:
    return Schema.from_dict(
        {
            "id": mf.Integer(),
            "customer_id": mf.Integer(),
            "contact_id": mf.Integer(),
            "kind": mf.String(),
            "channel": mf.String(),
            "direction": mf.String(),
            "status": mf.String(),
            "subject": mf.String(),
            "result": mf.String(),
            "occurred_at": mf.DateTime(),
            "ends_at": mf.DateTime(),
            "duration_min": mf.Integer(),
            "amount": mf.Decimal(as_string=True),
            "currency": mf.String(),
            "owner_id": mf.Integer(),
            "data": mf.Dict(),
            "source": mf.String(),
            "external_id": mf.String(),
            "created_at": mf.DateTime(),
        },
        name="ActivityOut",
    )


class TaskIn(_Strict):
    title = mf.String(required=True, validate=validate.Length(min=1, max=300))
    reason = mf.String(allow_none=True)
    customer_id = mf.Integer(allow_none=True)
    assignee_id = mf.Integer(allow_none=True)
    due_at = mf.AwareDateTime(default_timezone=dt.UTC, allow_none=True)
    remind_at = mf.AwareDateTime(default_timezone=dt.UTC, allow_none=True)
    priority = mf.Integer(load_default=0, validate=validate.Range(min=0, max=100))
    source = _str(100)
    source_id = _str(100)


class TaskOut(Schema):
    id = mf.Integer()
    title = mf.String()
    reason = mf.String()
    customer_id = mf.Integer()
    assignee_id = mf.Integer()
    due_at = mf.DateTime()
    remind_at = mf.DateTime()
    status = mf.String(validate=validate.OneOf(TASK_STATUSES))
    priority = mf.Integer()
    source = mf.String()
    source_id = mf.String()
    created_at = mf.DateTime()
    completed_at = mf.DateTime()


class UserIn(_Strict):
    name = mf.String(required=True, validate=validate.Length(min=1, max=200))
    email = mf.Email(allow_none=True)
    role = mf.String(load_default="operator", validate=validate.OneOf(USER_ROLES))
    branch = _str(100)
    active = mf.Boolean(load_default=True)


class UserOut(Schema):
    id = mf.Integer()
    name = mf.String()
    email = mf.String()
    role = mf.String()
    branch = mf.String()
    active = mf.Boolean()


class ContactIn(_Strict):
    name = mf.String(required=True, validate=validate.Length(min=1, max=200))
    role = _str(100)
    email = mf.Email(allow_none=True)
    phone = _str(50)


class ContactOut(Schema):
    id = mf.Integer()
    customer_id = mf.Integer()
    name = mf.String()
    role = mf.String()
    email = mf.String()
    phone = mf.String()


def load(schema: Schema, data: Any, *, partial: bool = False, message: str = "invalid input") -> dict[str, Any]:
    """Validate ``data`` with ``schema``; raise crmkit's ``ValidationError`` listing every problem."""
    from crmkit.errors import ValidationError as CRMValidationError

    if not isinstance(data, Mapping):
        raise CRMValidationError({"_schema": ["expected a mapping of field names to values"]}, message)
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise CRMValidationError(errors, message) from None
