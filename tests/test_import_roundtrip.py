"""Export, then import: what crmkit writes it reads back unchanged (phones as typed, text a spreadsheet would
have run as a formula, plugin and run-time fields), in every format."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from crmkit_fitness import FitnessPlugin

from crmkit import CRM, FieldSpec

PEOPLE = [
    {"name": "Anna", "email": "anna@x.example", "phone": "+1 (212) 555-0100", "goal": "muscle", "card_number": "C-1"},
    {"name": '=HYPERLINK("http://x")', "email": "eq@x.example", "phone": "+12125550101", "goal": "sport"},
    {"name": "'quoted", "email": "q@x.example", "phone": "(212) 555-0102", "campaign": "-5+3"},
    {"name": "Bo", "email": "bo@x.example", "birthday": "1990-03-04", "member_since": "2020-01-02"},
]
#: what an import can set, hence what must come back equal
COMPARED = ("name", "email", "phone", "phone_normalized", "goal", "card_number", "campaign", "birthday",
            "member_since")  # fmt: skip


def _crm(crm_factory: Any) -> CRM:
    crm: CRM = crm_factory([FitnessPlugin()])
    crm.fields.define(FieldSpec("member_since", "date"))
    return crm


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
def test_an_export_imports_back_unchanged(crm_factory: Any, tmp_path: Path, fmt: str) -> None:
    source = _crm(crm_factory)
    for person in PEOPLE:
        source.customers.create(person)
    path = tmp_path / f"customers.{fmt}"
    assert source.exports.customers(path).rows == len(PEOPLE)

    again = source.imports.customers(path, match=("email",))  # the same customers: nothing to change
    assert again.counts == {"created": 0, "updated": 0, "unchanged": len(PEOPLE), "skipped": 0, "rejected": 0}

    target = _crm(crm_factory)  # another CRM: created as they were
    moved = target.imports.customers(path)
    assert moved.counts["created"] == len(PEOPLE), moved.rejected
    before = {c["email"]: {k: c[k] for k in COMPARED} for c in source.customers.search({}).items}
    after = {c["email"]: {k: c[k] for k in COMPARED} for c in target.customers.search({}).items}
    assert after == before and len(before) == len(PEOPLE)
    # the history columns came along, so the cohorts stay true (XLSX keeps times to the millisecond)
    digits = 3 if fmt == "xlsx" else 6
    created = {c["email"]: (_at(c["created_at"], digits), c["stage"]) for c in source.customers.search({}).items}
    kept = {c["email"]: (_at(c["created_at"], digits), c["stage"]) for c in target.customers.search({}).items}
    assert kept == created


def _at(iso: str, digits: int) -> float:
    return round(dt.datetime.fromisoformat(iso).timestamp(), digits)
