"""Personal data is masked for a role without ``customers:read_personal``, on every customer read and in
exports, and such a role may not filter or order by it. Checked by looking for the personal values
themselves in what a viewer gets."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from crmkit import CRM, AccessDenied, FieldSpec, RoleSpec, hookimpl

PERSONAL = ("Vera Lynn", "vera@example.com", "+14155550123", "1980-02-03", "AB123456")


class Club:
    plugin_name = "club"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [FieldSpec("passport", personal=True), FieldSpec("plan", choices=("basic", "premium"))]

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:  # exports for the head office, without personal data
        return [RoleSpec("analyst", "Analyst", {"customers:read", "customers:export"}, scope="all")]


@pytest.fixture
def club(crm_factory: Any) -> CRM:
    crm = crm_factory([Club()])
    crm.customers.create(
        {
            "name": "Vera Lynn",
            "email": "vera@example.com",
            "phone": "+1 415 555 0123",
            "birthday": "1980-02-03",
            "passport": "AB123456",
            "plan": "premium",
            "campaign": "spring",
        }
    )
    return crm


def _reads(crm: CRM, *, export: bool) -> list[Any]:
    (customer_id,) = [c["id"] for c in crm.customers.iter()]
    reads: list[Any] = [
        crm.customers.get(customer_id),
        crm.customers.get_many([customer_id]),
        crm.customers.list(),
        crm.customers.search().to_dict(),
    ]
    if export:
        exported = io.BytesIO()
        crm.exports.customers(exported, format="jsonl")
        reads.append(exported.getvalue().decode())
    return reads


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_a_role_without_personal_data_reads_every_customer_field_but_the_personal_ones(club: CRM, role: str) -> None:
    manager = club.users.create({"name": "Max", "role": "manager"})["id"]
    reader = club.users.create({"name": "Rae", "role": role})["id"]
    with club.as_user(manager):
        seen = json.dumps(_reads(club, export=True), default=str)
    assert all(value in seen for value in PERSONAL)  # the values are there to be hidden
    with club.as_user(reader):
        reads = _reads(club, export=role == "analyst")
    shown = json.dumps(reads, default=str)
    assert [value for value in PERSONAL if value in shown] == []
    record = reads[0]
    assert (record["plan"], record["campaign"], record["stage"]) == ("premium", "spring", "lead")
    assert all(record[k] is None for k in ("name", "email", "phone", "birthday", "passport", "email_normalized"))
    if role == "analyst":
        assert '"plan": "premium"' in reads[-1]  # the export has the record, masked


@pytest.mark.parametrize(
    ("where", "order_by", "named"),
    [
        ({"email": "vera@example.com"}, "id", "email"),
        ({"name__prefix": "Ve"}, "id", "name"),
        (None, "-passport", "passport"),
    ],
)
def test_a_viewer_may_not_filter_or_order_by_personal_data(
    club: CRM, where: dict[str, Any] | None, order_by: str, named: str
) -> None:
    viewer = club.users.create({"name": "Vic", "role": "viewer"})["id"]
    with (
        club.as_user(viewer),
        pytest.raises(AccessDenied, match=f"may not filter or order by personal data \\({named}\\)"),
    ):
        club.customers.search(where, order_by=order_by)
    with club.as_user(viewer):
        assert club.customers.count({"plan": "premium"}) == 1
    operator = club.users.create({"name": "Op", "role": "operator"})["id"]
    with club.as_user(operator):
        assert len(club.customers.search(where, order_by=order_by).items) == 1
