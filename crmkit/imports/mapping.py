"""Which column of a file feeds which customer field.

A column maps to a field by its header: the field's name or label, compared without case, spaces or
punctuation (``E-mail`` is ``email``, ``Card number`` is ``card_number``), or by a few common aliases.
The caller's ``mapping`` overrides that, column by column (``{"Mobile": "phone", "Notes": None}``; ``None``
leaves a column out). Besides the customer's fields an import can fill four targets of its own:
``external_id`` (the customer's id in the system the file comes from), ``created_at``, ``stage`` and
``stage_changed_at`` (a migration keeps the customer's history).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import attrs

from crmkit.errors import ValidationError
from crmkit.specs import FieldSpec, StageSpec

#: the import's own targets, beyond the customer's fields
EXTERNAL_ID, CREATED_AT, STAGE, STAGE_CHANGED_AT = "external_id", "created_at", "stage", "stage_changed_at"
#: what a customer can be matched on
MATCH_KEYS = ("email", "phone", EXTERNAL_ID)
_CORE = {
    "name": "string",
    "email": "string",
    "phone": "string",
    "birthday": "date",
    "source": "string",
    "campaign": "string",
    "owner_id": "integer",
    "branch": "string",
    "country": "string",
}
_ALIASES = {
    "fullname": "name",
    "customer": "name",
    "customername": "name",
    "mail": "email",
    "emailaddress": "email",
    "mobile": "phone",
    "mobilephone": "phone",
    "phonenumber": "phone",
    "telephone": "phone",
    "tel": "phone",
    "dateofbirth": "birthday",
    "dob": "birthday",
    "birthdate": "birthday",
    "externalid": EXTERNAL_ID,
    "created": CREATED_AT,
    "createdon": CREATED_AT,
    "signupdate": CREATED_AT,
    "joined": CREATED_AT,
    "status": STAGE,
}


@attrs.frozen
class Target:
    """A field an import can fill: its name, its value type and its choices (if any)."""

    name: str
    kind: str
    choices: tuple[str, ...] = ()
    label: str = ""


def targets(fields: Iterable[FieldSpec], stages: Iterable[StageSpec]) -> dict[str, Target]:
    """Every target of a customer import, by name: core fields, ``fields`` (plugin and run-time), the
    import's own."""
    out = {name: Target(name, kind) for name, kind in _CORE.items()}
    for spec in fields:
        out[spec.name] = Target(spec.name, spec.type, spec.choices, spec.label)
    out[EXTERNAL_ID] = Target(EXTERNAL_ID, "string")
    out[CREATED_AT] = Target(CREATED_AT, "datetime")
    out[STAGE] = Target(STAGE, "string", tuple(s.name for s in stages))
    out[STAGE_CHANGED_AT] = Target(STAGE_CHANGED_AT, "datetime")
    return out


def _key(text: str) -> str:
    # "created_at (UTC)" is how crmkit's XLSX export heads a time column: the same field
    return re.sub(r"[^0-9a-z]", "", re.sub(r"\s*\(utc\)$", "", text.casefold().strip()))


def resolve(
    header: Sequence[str], known: Mapping[str, Target], overrides: Mapping[str, str | None] | None = None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """``({column: target}, ignored columns)`` for a file with ``header``; ``ValidationError`` when the
    mapping names a column the file lacks or a target that does not exist, or maps two columns to one
    target."""
    overrides = dict(overrides or {})
    errors: dict[str, list[str]] = {}
    for column, target in overrides.items():
        if column not in header:
            errors[column] = [f"the mapping names column {column!r}, which the file does not have"]
        elif target is not None and target not in known:
            errors[column] = [f"unknown field {target!r}: expected one of {', '.join(known)}"]
    by_key: dict[str, str] = {}
    for spec in known.values():
        by_key.setdefault(_key(spec.name), spec.name)
        if spec.label:
            by_key.setdefault(_key(spec.label), spec.name)
    mapping: dict[str, str] = {}
    ignored: list[str] = []
    for column in header:
        if column in overrides:
            chosen = overrides[column]
        else:
            key = _key(column)
            chosen = by_key.get(key) or _ALIASES.get(key)
        if chosen is None or chosen not in known:
            ignored.append(column)
            continue
        mapping[column] = chosen
    seen: dict[str, str] = {}
    for column, target in mapping.items():
        if target in seen:
            errors.setdefault(column, []).append(f"maps to {target!r}, as column {seen[target]!r} does")
        seen.setdefault(target, column)
    if errors:
        raise ValidationError(errors, "invalid column mapping")
    return mapping, tuple(ignored)
