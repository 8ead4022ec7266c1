"""A role scoped to branches reaches the customers of its branches (and those of no branch), a role scoped
to ``own`` only the customers it owns, in the SQL of every customer list and in single reads and writes.
Expected ids are picked by hand from the customers the test creates."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from crmkit import CRM, AccessDenied, RoleSpec, hookimpl
from crmkit.errors import NotFound


class Desk:
    plugin_name = "desk"

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:
        mine = {"customers:read", "customers:read_personal", "customers:write", "activities:read", "tasks:read"}
        return [RoleSpec("trainer", "Personal trainer", mine, scope="own")]


@pytest.fixture
def chain(crm_factory: Any) -> tuple[CRM, dict[str, int], dict[str, int]]:
    crm = crm_factory([Desk()])
    users = {
        "north": crm.users.create({"name": "Nina", "role": "operator", "branch": "north"})["id"],
        "both": crm.users.create({"name": "Bo", "role": "manager", "branch": "north", "branches": ["south"]})["id"],
        "trainer": crm.users.create({"name": "Tom", "role": "trainer", "branch": "north"})["id"],
        "admin": crm.users.create({"name": "Ada", "role": "admin"})["id"],
    }
    customers = {
        "north": crm.customers.create({"name": "N", "branch": "north"})["id"],
        "south": crm.customers.create({"name": "S", "branch": "south"})["id"],
        "nowhere": crm.customers.create({"name": "X"})["id"],
        "toms": crm.customers.create({"name": "T", "branch": "south", "owner_id": users["trainer"]})["id"],
    }
    for customer_id in customers.values():
        crm.activities.log({"customer_id": customer_id, "kind": "note", "subject": "hello"})
        crm.tasks.create({"customer_id": customer_id, "title": "Call"})
    return crm, users, customers


REACHED = {  # user -> the customers they reach, by hand
    "north": {"north", "nowhere"},
    "both": {"north", "south", "nowhere", "toms"},
    "trainer": {"toms"},
    "admin": {"north", "south", "nowhere", "toms"},
}


@pytest.mark.parametrize("user", sorted(REACHED))
def test_every_customer_list_keeps_to_the_users_reach(chain: Any, user: str) -> None:
    crm, users, customers = chain
    expected = sorted(customers[name] for name in REACHED[user])
    with crm.as_user(users[user]):
        assert sorted(c["id"] for c in crm.customers.list()) == expected
        assert sorted(c["id"] for c in crm.customers.search(limit=100).items) == expected
        assert crm.customers.count() == len(expected)
        assert sorted(crm.customers.get_many(customers.values())) == expected
        assert sorted(a["customer_id"] for a in crm.activities.search(limit=100).items) == expected
        assert sorted(t["customer_id"] for t in crm.tasks.search(limit=100).items) == expected
        for name, customer_id in customers.items():
            if name in REACHED[user]:
                assert crm.customers.get(customer_id)["id"] == customer_id
            else:
                with pytest.raises(NotFound):
                    crm.customers.get(customer_id)


def test_an_export_keeps_to_the_users_reach(chain: Any) -> None:
    crm, users, customers = chain
    out = io.BytesIO()
    with crm.as_user(users["both"]):
        crm.exports.customers(out, format="jsonl")
    exported = sorted(json.loads(line)["id"] for line in out.getvalue().decode().splitlines())
    assert exported == sorted(customers[n] for n in REACHED["both"])
    # a manager of the north only: the south is not in the file
    north_manager = crm.users.create({"name": "Mo", "role": "manager", "branch": "north"})["id"]
    out = io.BytesIO()
    with crm.as_user(north_manager):
        crm.exports.customers(out, format="jsonl")
    assert sorted(json.loads(line)["id"] for line in out.getvalue().decode().splitlines()) == sorted(
        customers[n] for n in ("north", "nowhere")
    )


def test_writes_outside_the_reach_are_refused_as_if_the_customer_did_not_exist(chain: Any) -> None:
    crm, users, customers = chain
    with crm.as_user(users["north"]):
        with pytest.raises(NotFound):
            crm.customers.update(customers["south"], {"campaign": "spring"})
        with pytest.raises(NotFound):
            crm.customers.add_contact(customers["south"], {"name": "Partner"})
        with pytest.raises(AccessDenied, match="may not create a customer of branch 'south'"):
            crm.customers.create({"name": "New", "branch": "south"})
        assert crm.customers.update(customers["north"], {"campaign": "spring"})["campaign"] == "spring"
        assert crm.customers.create({"name": "Walk-in", "branch": "north"})["branch"] == "north"
    with crm.as_user(users["trainer"]), pytest.raises(AccessDenied, match="that they do not own"):
        crm.customers.create({"name": "Client"})
    assert crm.customers.get(customers["south"])["campaign"] is None
