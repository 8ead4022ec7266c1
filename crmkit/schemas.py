"""marshmallow schemas assembled from the core fields and every loaded plugin's declarations.

They guard every public write (``load``) and serialise every read (``dump``). The public ones are the
instances on ``crm.schemas``, built for that CRM's plugins and run-time fields; an app reuses them in its own
HTTP layer (to validate a form, to document an API):

* ``customer_in``: what ``crm.customers.create`` accepts, core, plugin and run-time fields, flat;
* ``customer_out``: a customer as every read returns it;
* ``activity_in``: what ``crm.activities.log`` accepts (per-kind rules checked after the fields);
* ``activity_out``: an activity as every read returns it;
* ``task_in`` / ``task_out``: what ``crm.tasks.create`` accepts / a task as read;
* ``user_in`` / ``user_out``: what ``crm.users.create`` accepts / a user as read;
* ``contact_in`` / ``contact_out``: what ``crm.customers.add_contact`` accepts / a contact as read.

``crm.customers.update`` takes ``customer_in`` loaded with ``partial=True``, without ``stage``. Input schemas
refuse unknown keys and trim text; their fields come from :mod:`crmkit.limits` and :mod:`crmkit.fields`, with
the storage limits of their columns. In an output schema a field is ``required`` when a read always sets it
and ``allow_none`` when it may be null, so a document generated from it is exact:
:func:`crmkit.openapi.register_fields` teaches apispec crmkit's own field classes. ``customer_in`` and
``customer_out`` are rebuilt when a run-time field is added: read them from ``crm.schemas`` each time rather
than keeping a copy. :class:`Schemas` is ``crm.schemas``; the other functions and classes of this module
build its schemas and are not themselves the public surface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, cast

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, post_load, pre_load, validate, validates_schema
from marshmallow import fields as mf

from crmkit.db.models import ACTIVITY_DIRECTIONS, ACTIVITY_STATUSES, CONSENT_PURPOSES, TASK_STATUSES
from crmkit.fields import marshmallow_field, output_field, to_json_value
from crmkit.limits import Day, Email, Int, JSONObject, Moment, Money, Text, load
from crmkit.specs import CHANNELS, ActivityKindSpec, FieldSpec

__all__ = ["load"]  # re-exported: it lives beside the fields in crmkit.limits

#: ``normalize(raw, region)``: the normalised phone, or ``ValueError`` with the reason.
Normalizer = Callable[[str, str | None], str | None]
#: ``region_of(country, branch)``: the region a customer's phone is read in.
RegionOf = Callable[[str | None, str | None], str]


class _Strict(Schema):
    """Unknown keys are errors (a typo must not silently drop data); text input is trimmed."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _trim(self, data: Any, **_: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return data


class _Out(Schema):
    """An output schema. The fields named in ``ALWAYS`` are set in every record (``required``), the others
    may be null (``allow_none``): dumping ignores both, a document generated from the schema shows them."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"id"})

    def on_bind_field(self, field_name: str, field_obj: mf.Field[Any]) -> None:
        if field_name in self.ALWAYS:
            field_obj.required = True
        else:
            field_obj.allow_none = True


def _out(declared: dict[str, mf.Field[Any]], name: str, always: Iterable[str]) -> type[Schema]:
    schema = cast("type[_Out]", _Out.from_dict(declared, name=name))
    schema.ALWAYS = frozenset(always)
    return schema


class Country(mf.Field[str | None]):
    """ISO 3166 alpha-2, stored upper-case; only regions ``phonenumbers`` knows, since phones are read in it.

    Not a ``String``: an empty value loads as ``None``, which a ``String`` field's contract does not allow."""

    default_error_messages = {"invalid": "Not a valid string."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value
        code = text.strip().upper()
        if not code:
            return None  # an empty form field: no country
        if len(code) != 2 or not code.isascii() or not code.isalpha() or code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(f"not a known ISO 3166 alpha-2 country code: {text!r}")
        return code


def _str(max_length: int, **kwargs: Any) -> mf.String:
    return Text(max_length=max_length, allow_none=True, **kwargs)


def customer_in(
    fields: Iterable[FieldSpec],
    runtime: Iterable[FieldSpec],
    normalize_phone: Normalizer,
    stages: Iterable[str],
    region_of: RegionOf,
) -> type[Schema]:
    """The schema of customer input: core fields, plugin fields, run-time fields, all flat.

    A full input's phone is checked in the region its own ``country`` or ``branch`` gives (``region_of``).
    A partial input (an update) cannot know the stored country and branch: the service checks it.
    """
    declared: dict[str, mf.Field[Any]] = {
        "name": Text(required=True, min_length=1, max_length=200),
        "email": Email(allow_none=True, max_length=320),
        "phone": Text(allow_none=True, max_length=50),
        "birthday": Day(allow_none=True, not_after_today=True),
        "source": _str(100),
        "campaign": _str(100),
        "owner_id": Int(allow_none=True),
        "branch": _str(100),
        "country": Country(allow_none=True),
        "stage": Text(validate=validate.OneOf(list(stages))),
    }
    for spec in fields:
        declared[spec.name] = marshmallow_field(spec)
    for spec in runtime:
        declared[spec.name] = marshmallow_field(spec)

    class CustomerIn(_Strict):
        @validates_schema(skip_on_field_errors=False, pass_original=True)
        def _phone_in_region(self, values: dict[str, Any], original: Any, *, partial: Any = None, **_: Any) -> None:
            phone = values.get("phone")
            if partial or not phone or not isinstance(original, Mapping):
                return
            if original.get("country") and "country" not in values:
                return  # the country is wrong; a phone read in some other region would only confuse
            try:
                normalize_phone(phone, region_of(values.get("country"), values.get("branch")))
            except ValueError as exc:
                raise ValidationError({"phone": [str(exc)]}) from exc

    return CustomerIn.from_dict(declared, name="CustomerIn")


def customer_out(fields: Iterable[FieldSpec], runtime: Iterable[FieldSpec]) -> type[Schema]:
    declared: dict[str, mf.Field[Any]] = {
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
        "country": mf.String(),
        "stage": mf.String(),
        "lifecycle": mf.String(),
        "stage_changed_at": mf.DateTime(),
        "created_at": mf.DateTime(),
        "updated_at": mf.DateTime(),
    }
    for spec in [*fields, *runtime]:
        declared[spec.name] = output_field(spec)
    return _out(declared, "CustomerOut", _CUSTOMER_ALWAYS)


_CUSTOMER_ALWAYS = ("id", "name", "stage", "lifecycle", "stage_changed_at", "created_at", "updated_at")


def activity_in(kinds: Mapping[str, ActivityKindSpec], statuses: Iterable[str] = ACTIVITY_STATUSES) -> type[Schema]:
    """Activity input. Per-kind rules (required fields, kind data) are checked after the field checks.
    ``statuses`` are the declared activity statuses (the core's and the plugins')."""
    data_schemas = {
        name: _Strict.from_dict({f.name: marshmallow_field(f) for f in kind.data_fields})()
        for name, kind in kinds.items()
    }

    class ActivityIn(_Strict):
        customer_id = Int(required=True)
        kind = Text(required=True, validate=validate.OneOf(sorted(kinds)))
        channel = Text(allow_none=True, validate=validate.OneOf(CHANNELS))
        direction = Text(allow_none=True, validate=validate.OneOf(ACTIVITY_DIRECTIONS))
        status = Text(load_default="done", validate=validate.OneOf(list(statuses)))
        subject = _str(300)
        result = Text(allow_none=True)
        occurred_at = Moment(allow_none=True)
        duration_min = Int(allow_none=True, min=0, max=24 * 60)
        amount = Money(14, 2, allow_none=True, validate=validate.Range(min=0))
        currency = Text(allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="ISO 4217 code"))
        owner_id = Int(allow_none=True)
        contact_id = Int(allow_none=True)
        data = mf.Dict(keys=Text(), load_default=dict)
        # the idempotency key: where the event comes from and its id there (see ``Activities.ingest``)
        source = Text(allow_none=True, min_length=1, max_length=100)
        external_id = Text(allow_none=True, min_length=1, max_length=200)

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
            if not kind.data_fields and (free := _free_json_problems(data)):
                errors["data"] = free
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
            else:  # free JSON, as the database will hand it back (plain dicts and lists)
                values["data"] = _FREE_JSON.deserialize(values.get("data") or {})
            return values

    return ActivityIn


_FREE_JSON = JSONObject()


def _free_json_problems(data: Any) -> list[str]:
    """Why free activity data cannot be stored as JSON the same on both databases (empty if it can)."""
    try:
        _FREE_JSON.deserialize(data)
    except ValidationError as exc:
        return exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
    return []


def activity_out() -> type[Schema]:
    return _out(
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
        "ActivityOut",
        ("id", "customer_id", "kind", "status", "occurred_at", "data", "created_at"),
    )


class TaskIn(_Strict):
    title = Text(required=True, min_length=1, max_length=300)
    reason = Text(allow_none=True)
    customer_id = Int(allow_none=True)
    assignee_id = Int(allow_none=True)
    due_at = Moment(allow_none=True)
    remind_at = Moment(allow_none=True)
    priority = Int(load_default=0, min=0, max=100)
    source = _str(100)
    source_id = _str(100)


class TaskOut(_Out):
    ALWAYS = frozenset({"id", "title", "status", "priority", "created_at"})
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
    name = Text(required=True, min_length=1, max_length=200)
    email = Email(allow_none=True, max_length=320)
    role = Text(load_default="operator", max_length=20)  # one of the declared roles: crm.users checks it
    branch = _str(100)
    branches = mf.List(Text(max_length=100, min_length=1), load_default=list)
    active = mf.Boolean(load_default=True)


class UserOut(_Out):
    ALWAYS = frozenset({"id", "name", "role", "active"})
    id = mf.Integer()
    name = mf.String()
    email = mf.String()
    role = mf.String()
    branch = mf.String()
    branches = mf.List(mf.String())
    active = mf.Boolean()


class ContactIn(_Strict):
    name = Text(required=True, min_length=1, max_length=200)
    role = _str(100)
    email = Email(allow_none=True, max_length=320)
    phone = _str(50)


class ContactOut(_Out):
    ALWAYS = frozenset({"id", "customer_id", "name"})
    id = mf.Integer()
    customer_id = mf.Integer()
    name = mf.String()
    role = mf.String()
    email = mf.String()
    phone = mf.String()


class MessageIn(_Strict):
    """A message for the outbox (:meth:`crmkit.outbox.Outbox.enqueue_many`). ``channel`` names the gateway
    that delivers it (``sms``, ``email``...): any lowercase name a ``crmkit_send_message`` hook answers to."""

    channel = Text(
        required=True,
        max_length=20,
        validate=validate.Regexp(r"^[a-z][a-z0-9_]*$", error="a lowercase channel name such as 'sms'"),
    )
    customer_id = Int(allow_none=True)
    subject = _str(300)
    body = Text(required=True, min_length=1)
    source = _str(100)
    source_id = _str(100)
    purpose = Text(allow_none=True, validate=validate.OneOf(CONSENT_PURPOSES, error="must be one of: {choices}"))


class MessageOut(Schema):
    id = mf.Integer()
    channel = mf.String()
    customer_id = mf.Integer()
    subject = mf.String()
    body = mf.String()
    source = mf.String()
    source_id = mf.String()
    status = mf.String()
    attempts = mf.Integer()
    error = mf.String()
    next_attempt_at = mf.DateTime()
    created_at = mf.DateTime()
    sent_at = mf.DateTime()
    purpose = mf.String()
    due_at = mf.DateTime()


class Schemas:
    """``crm.schemas``: the marshmallow schemas of one CRM, public for an app's own HTTP layer.

    ``customer_in`` validates exactly what ``crm.customers.create`` accepts (``load(..., partial=True)``
    what ``update`` accepts) and ``customer_out`` dumps what every read returns; likewise ``activity_*``,
    ``task_*``, ``user_*`` and ``contact_*``. The customer schemas carry the core, plugin and run-time
    fields and are rebuilt when an admin adds a run-time field.
    """

    def __init__(
        self,
        kinds: Mapping[str, ActivityKindSpec],
        fields: Callable[[], Iterable[FieldSpec]],
        stages: Callable[[], Iterable[str]],
        normalize_phone: Normalizer,
        region_of: RegionOf,
        statuses: Iterable[str] = ACTIVITY_STATUSES,
    ) -> None:
        # ``fields`` gives every customer field beyond the core's (plugin, then run-time), as of now
        self._fields = fields
        self._stages = stages
        self._normalize_phone = normalize_phone
        self._region_of = region_of
        self._customer_in: Schema | None = None
        self._customer_out: Schema | None = None
        self.activity_in: Schema = activity_in(kinds, statuses)()
        self.activity_out: Schema = activity_out()()
        self.task_in: Schema = TaskIn()
        self.task_out: Schema = TaskOut()
        self.user_in: Schema = UserIn()
        self.user_out: Schema = UserOut()
        self.contact_in: Schema = ContactIn()
        self.contact_out: Schema = ContactOut()

    def invalidate(self) -> None:
        """Forget the customer schemas: the next use rebuilds them with the current run-time fields."""
        self._customer_in = self._customer_out = None

    @property
    def customer_in(self) -> Schema:
        if self._customer_in is None:
            self._customer_in = customer_in(
                self._fields(), (), self._normalize_phone, self._stages(), self._region_of
            )()
        return self._customer_in

    @property
    def customer_out(self) -> Schema:
        if self._customer_out is None:
            self._customer_out = customer_out(self._fields(), ())()
        return self._customer_out
