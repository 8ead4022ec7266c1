"""Declarations that plugins (and the core itself) contribute through hooks.

They are frozen attrs classes: a plugin builds them once, the core reads them and builds tables, schemas
and rules from them. attrs validators here check the *declaration* (a programmer's mistake, caught at
load time); user input is validated by marshmallow at the API boundary, never by these classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

FieldType = Literal["string", "text", "integer", "decimal", "boolean", "date", "datetime"]
FIELD_TYPES: tuple[str, ...] = ("string", "text", "integer", "decimal", "boolean", "date", "datetime")

CORE_STAGES: tuple[str, ...] = ("lead", "active", "loyal", "lost")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def names_tuple(value: Iterable[str]) -> tuple[str, ...]:
    """attrs converter for a tuple of names, e.g. ``attrs.field(default=(), converter=names_tuple)``.

    Annotated (unlike a bare ``converter=tuple``) so that a type checker accepts ``("grams",)`` or a list
    where the declaration takes names. A lone string is refused: ``tuple("visit")`` would silently become
    five one-letter names.
    """
    if isinstance(value, str):
        raise TypeError(f"expected a tuple of names, got the string {value!r}; write ({value!r},)")
    return tuple(value)


def _field_specs(value: Iterable[FieldSpec]) -> tuple[FieldSpec, ...]:
    return tuple(value)


def _identifier(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value) or len(value) > 48:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a lowercase identifier"
            f" (a-z, 0-9, _; at most 48 characters), got {value!r}"
        )


def _str_dict(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class FieldSpec:
    """A customer field declared by a plugin (stored as a typed column) or by an admin (stored as JSON).

    ``choices`` turns the field into a dropdown: any other value is rejected; ``choice_labels`` gives the
    label a person reads for a choice (``{"walk_in": "Walked in"}``; a choice without one reads as its
    name with spaces, "Walk in"). ``personal`` flags personal
    data, which drives masking, export and erasure. ``required`` should be rare: too many required fields
    produce garbage data.
    """

    name: str = attrs.field(validator=_identifier)
    type: FieldType = attrs.field(default="string", validator=attrs.validators.in_(FIELD_TYPES))
    label: str = ""
    choices: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    required: bool = False
    personal: bool = False
    index: bool = False
    choice_labels: Mapping[str, str] = attrs.field(factory=dict, converter=_str_dict, hash=False, kw_only=True)
    default: Any = None
    max_length: int = 255
    description: str = ""
    owner: str = ""

    def __attrs_post_init__(self) -> None:
        if self.choices and self.type != "string":
            raise ValueError(f"FieldSpec {self.name!r}: choices are only allowed on string fields")
        if self.choices and self.default is not None and self.default not in self.choices:
            raise ValueError(f"FieldSpec {self.name!r}: default {self.default!r} is not one of its choices")
        if self.required and self.default is not None:
            raise ValueError(f"FieldSpec {self.name!r}: a required field cannot have a default")
        unknown = sorted(set(self.choice_labels) - set(self.choices))
        if unknown:
            raise ValueError(f"FieldSpec {self.name!r}: choice_labels name values that are not choices: {unknown}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, used to persist run-time fields."""
        data = attrs.asdict(self)
        data["choices"] = list(self.choices)
        data["choice_labels"] = dict(self.choice_labels)
        return data

    @classmethod
    def from_row(cls, data: dict[str, Any]) -> FieldSpec:
        known = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@attrs.frozen
class StageSpec:
    """A lifecycle stage. Core stages have no parent; a plugin's sub-stage names the core stage it refines
    (a fitness *adaptation* is an *active* customer), so generic reports keep working on every vertical."""

    name: str = attrs.field(validator=_identifier)
    label: str = ""
    parent: str | None = None
    order: int = 0
    initial: bool = False
    description: str = ""
    owner: str = ""

    @property
    def lifecycle(self) -> str:
        """The core stage this stage belongs to."""
        return self.parent or self.name


@attrs.frozen
class TransitionSpec:
    """An allowed move between two stages. Moves that no declaration allows raise ``TransitionError``.

    ``requires_reason`` marks a backward move (e.g. lost -> active): it must be given a cause.
    """

    source: str = attrs.field(validator=_identifier)
    target: str = attrs.field(validator=_identifier)
    requires_reason: bool = False
    owner: str = ""


#: Channels an activity can come through.
CHANNELS: tuple[str, ...] = ("phone", "email", "sms", "chat", "in_person", "app", "web", "pos", "other")

ACTIVITY_COLUMNS: tuple[str, ...] = (
    "contact_id",
    "subject",
    "result",
    "occurred_at",
    "duration_min",
    "amount",
    "currency",
    "channel",
    "direction",
    "owner_id",
)


@attrs.frozen
class ActivityKindSpec:
    """A kind of activity (call, meeting, visit, purchase...).

    ``required`` names activity columns (see ``ACTIVITY_COLUMNS``) or ``data_fields`` that must be present
    for this kind. ``data_fields`` are kind-specific values kept in the activity's JSON data and validated
    against their declarations. ``calendar`` marks kinds that occupy the owner's time, checked for
    overlaps when booked.

    An activity of any kind has a status (``crmkit.db.models.ACTIVITY_STATUSES``), ``done`` unless the
    input gives another: ``planned`` (booked ahead; ``result`` is then not required), ``in_progress``,
    ``done`` (it happened), ``cancelled`` or ``missed`` (a no-show). Only ``done`` counts as happened for
    triggers, goals and KPIs; ``planned``, ``in_progress`` and ``done`` occupy a calendar kind's owner.

    ``personal_data`` names the keys of the activity's ``data`` that hold personal data (a call's
    ``caller`` and ``callee`` numbers), for a kind whose data is free JSON; a declared data field says so
    with ``personal=True``. Erasing a person removes those keys from their activities (``crm.privacy``).
    """

    name: str = attrs.field(validator=_identifier)
    label: str = ""
    channel: str | None = None
    required: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    data_fields: tuple[FieldSpec, ...] = attrs.field(default=(), converter=_field_specs)
    calendar: bool = False
    description: str = ""
    owner: str = ""
    personal_data: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)

    @property
    def personal_keys(self) -> tuple[str, ...]:
        """The keys of ``data`` an erasure removes: ``personal_data`` and the personal data fields."""
        return (
            *self.personal_data,
            *(f.name for f in self.data_fields if f.personal and f.name not in self.personal_data),
        )

    def __attrs_post_init__(self) -> None:
        if self.channel is not None and self.channel not in CHANNELS:
            raise ValueError(f"ActivityKindSpec {self.name!r}: channel {self.channel!r} is not one of {list(CHANNELS)}")
        data_names = {f.name for f in self.data_fields}
        unknown = [r for r in self.required if r not in ACTIVITY_COLUMNS and r not in data_names]
        if unknown:
            raise ValueError(
                f"ActivityKindSpec {self.name!r}: required names {unknown} are neither activity columns"
                f" {list(ACTIVITY_COLUMNS)} nor its data_fields"
            )


def _status_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    _identifier(instance, attribute, value)
    if len(str(value)) > 20:  # the width of crm_activities.status
        raise ValueError(f"ActivityStatusSpec.name must be at most 20 characters, got {value!r}")


@attrs.frozen
class ActivityStatusSpec:
    """A status an activity can have (``no_show``, ``late_cancel``), declared by a plugin next to the core's
    ``planned``, ``in_progress``, ``done``, ``cancelled`` and ``missed``.

    ``happened`` makes activities with this status count as something that happened: the default of the
    trigger helpers (``q.count``, ``q.last``, ``q.cadence``...), a trigger's goal and the KPIs count the
    statuses declared happened (``crm.registry.happened``). ``frees_calendar`` says the activity no longer
    occupies its owner's calendar (cancelled, missed): one that does not free it is checked for overlaps
    when a calendar kind is logged.
    """

    name: str = attrs.field(validator=_status_name)
    label: str = ""
    happened: bool = False
    frees_calendar: bool = False
    description: str = ""
    owner: str = ""


@attrs.frozen
class ImportedActivity:
    """What one line of an integration's file is, as its importer's ``parse`` reads it.

    ``key`` is the event's own id in the source system (a call's id, a receipt number, a card and a time):
    with the importer's ``source`` it is the activity's idempotency key, so the same event imported twice
    is stored once. ``customer`` names who it is about as a match key and its value: ``("phone", raw)``
    (read in the import's phone region and normalised), ``("email", raw)``, ``("external_id", raw)`` (an id
    recorded by a customer import of ``source``'s system), or ``(field, value)`` for any indexed customer
    field (a plugin's ``card_number``). ``values`` are the activity's own input fields (``occurred_at``,
    ``direction``, ``status``, ``subject``, ``amount``, ``currency``, ``duration_min``, ``data``...), validated
    as ``crm.activities.log`` validates them. ``lead`` is a new customer's input to create when nobody
    matches (an unknown caller), or ``None`` to reject the line then.
    """

    key: str
    customer: tuple[str, str]
    values: dict[str, Any]
    lead: dict[str, Any] | None = None


@attrs.frozen
class ImportContext:
    """What an importer's ``parse`` is given besides the line: the import's parsing options
    (:class:`crmkit.imports.values.ParseOptions`, for dates in the file's format and time zone, decimals,
    the phone region) and the importer's own ``settings`` (``crm.imports.run(..., settings={...})``)."""

    options: Any
    settings: dict[str, Any]


@attrs.frozen
class ImporterSpec:
    """An integration's file: a turnstile export, a phone system's call log, a till's receipts.

    The core reads the file (CSV, XLSX or JSON lines, streamed), finds each of ``columns`` by its header
    (a column's name or any of its aliases, compared without case, spaces or punctuation), rejects a line
    missing one of ``required``, and hands the rest to ``parse(values, context)``. That returns an
    :class:`ImportedActivity` of ``kind`` or raises ``ValueError`` with the reason the line is rejected.
    The core then matches the customer, stores the activities through ``crm.activities.ingest`` with
    ``source`` (the importer's name unless given) and the line's ``key`` as idempotency key, writes the
    reject file, records the import and can revert it (``crm.imports.run`` / ``revert``).
    """

    name: str = attrs.field(validator=_identifier)
    kind: str = attrs.field(validator=_identifier)
    parse: Any = attrs.field()
    columns: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    required: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    label: str = ""
    description: str = ""
    source: str = ""
    formats: tuple[str, ...] = attrs.field(default=("csv", "xlsx", "jsonl"), converter=names_tuple)
    owner: str = ""

    def __attrs_post_init__(self) -> None:
        if not callable(self.parse):
            raise ValueError(f"ImporterSpec {self.name!r}: parse must be callable, got {self.parse!r}")
        unknown = [c for c in self.required if c not in self.columns]
        if unknown:
            raise ValueError(f"ImporterSpec {self.name!r}: required columns {unknown} are not among its columns")
        bad = [f for f in self.formats if f not in ("csv", "xlsx", "jsonl")]
        if bad:
            raise ValueError(f"ImporterSpec {self.name!r}: unknown formats {bad}: expected csv, xlsx, jsonl")
        if len(self.source or self.name) > 100:
            raise ValueError(f"ImporterSpec {self.name!r}: source must be at most 100 characters")

    @property
    def key_source(self) -> str:
        """The ``source`` of the activities it stores."""
        return self.source or self.name


#: The core's activity statuses (``crmkit.db.models.ACTIVITY_STATUSES``, described there).
CORE_ACTIVITY_STATUSES: tuple[ActivityStatusSpec, ...] = (
    ActivityStatusSpec("planned", "Planned", description="Booked ahead, not happened yet."),
    ActivityStatusSpec("in_progress", "In progress", description="Under way now."),
    ActivityStatusSpec("done", "Done", happened=True, description="It happened."),
    ActivityStatusSpec("cancelled", "Cancelled", frees_calendar=True, description="Called off."),
    ActivityStatusSpec("missed", "Missed", frees_calendar=True, description="Was due and did not happen."),
)
