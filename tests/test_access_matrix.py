"""Every role against every guarded operation: each allowed call succeeds, each refused one raises
``AccessDenied`` and writes nothing. The expected matrix is written out here by hand, from the role table of
``docs/access.md``, not read from the code."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from crmkit import CRM, AccessDenied, FieldSpec

AS_OF = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ROLES = ("admin", "manager", "operator", "viewer")

#: operation -> the roles that may run it
ALLOWED: dict[str, set[str]] = {
    "create a customer": {"admin", "manager", "operator"},
    "update a customer": {"admin", "manager", "operator"},
    "read a customer": {"admin", "manager", "operator", "viewer"},
    "list customers": {"admin", "manager", "operator", "viewer"},
    "search customers": {"admin", "manager", "operator", "viewer"},
    "merge two customers": {"admin", "manager"},
    "log an activity": {"admin", "manager", "operator"},
    "read an activity": {"admin", "manager", "operator", "viewer"},
    "search activities": {"admin", "manager", "operator", "viewer"},
    "create a task": {"admin", "manager", "operator"},
    "list open tasks": {"admin", "manager", "operator", "viewer"},
    "move a customer's stage": {"admin", "manager", "operator"},
    "read stage history": {"admin", "manager", "operator", "viewer"},
    "define a field": {"admin"},
    "export customers": {"admin", "manager"},
    "import customers": {"admin", "manager"},
    "list imports": {"admin", "manager"},
    "run a report": {"admin", "manager", "viewer"},
    "run triggers": {"admin", "manager"},
    "create a user": {"admin"},
    "read the audit log": {"admin", "manager"},
    "verify the audit log": {"admin", "manager"},
    "export a person's data": {"admin", "manager"},
}

#: what each write leaves in the database, to check that a refused call wrote nothing
WRITES = {
    "create a customer": "SELECT count(*) FROM crm_customers",
    "update a customer": "SELECT count(*) FROM crm_customers WHERE campaign = 'spring'",
    "merge two customers": "SELECT count(*) FROM crm_merges",
    "log an activity": "SELECT count(*) FROM crm_activities",
    "create a task": "SELECT count(*) FROM crm_tasks",
    "move a customer's stage": "SELECT count(*) FROM crm_stage_history",
    "define a field": "SELECT count(*) FROM crm_custom_fields",
    "import customers": "SELECT count(*) FROM crm_customers",
    "run triggers": "SELECT count(*) FROM crm_trigger_runs",
    "create a user": "SELECT count(*) FROM crm_users",
}


def _operations(crm: CRM, customer_id: int, activity_id: int, n: int) -> dict[str, Callable[[], Any]]:
    upload = io.BytesIO(f"name,email\nImported {n},imported{n}@example.com\n".encode())
    upload.name = "people.csv"
    duplicate = crm.customers.create({"name": f"Twin {n}"})["id"]
    return {
        "create a customer": lambda: crm.customers.create({"name": f"New customer {n}"}),
        "update a customer": lambda: crm.customers.update(customer_id, {"campaign": "spring"}),
        "read a customer": lambda: crm.customers.get(customer_id),
        "list customers": lambda: crm.customers.list(),
        "search customers": lambda: crm.customers.search({"stage": "lead"}),
        "merge two customers": lambda: crm.customers.merge(customer_id, duplicate),
        "log an activity": lambda: crm.activities.log({"customer_id": customer_id, "kind": "note", "subject": "hi"}),
        "read an activity": lambda: crm.activities.get(activity_id),
        "search activities": lambda: crm.activities.search({"customer_id": customer_id}),
        "create a task": lambda: crm.tasks.create({"customer_id": customer_id, "title": "Call back"}),
        "list open tasks": lambda: crm.tasks.open(),
        "move a customer's stage": lambda: crm.lifecycle.move(customer_id, "active", cause="first visit"),
        "read stage history": lambda: crm.lifecycle.history(customer_id),
        "define a field": lambda: crm.fields.define(FieldSpec(f"note_{n}")),
        "export customers": lambda: crm.exports.customers(io.BytesIO(), format="csv"),
        "import customers": lambda: crm.imports.customers(upload),
        "list imports": lambda: crm.imports.list(),
        "run a report": lambda: crm.reports.run("crm.customer_growth", {"until": AS_OF.date()}),
        "run triggers": lambda: crm.triggers.run(AS_OF),
        "create a user": lambda: crm.users.create({"name": f"New {n}"}),
        "read the audit log": lambda: crm.audit.for_customer(customer_id),
        "verify the audit log": lambda: crm.audit.verify(),
        "export a person's data": lambda: crm.privacy.export(customer_id),
    }


def _count(crm: CRM, sql: str) -> int:
    with crm.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_the_matrix_is_complete() -> None:
    assert set(WRITES) <= set(ALLOWED)
    assert all(roles <= set(ROLES) for roles in ALLOWED.values())
    assert {role for roles in ALLOWED.values() for role in roles} == set(ROLES)


@pytest.mark.parametrize("operation", sorted(ALLOWED))
def test_each_role_may_do_exactly_what_its_row_says(crm: CRM, operation: str) -> None:
    users = {role: crm.users.create({"name": role.title(), "role": role})["id"] for role in ROLES}
    for n, role in enumerate(ROLES):
        customer = crm.customers.create({"name": f"Customer {n}"})["id"]
        activity = crm.activities.log({"customer_id": customer, "kind": "note", "subject": "seed"})["id"]
        call = _operations(crm, customer, activity, n)[operation]
        before = _count(crm, WRITES[operation]) if operation in WRITES else None
        with crm.as_user(users[role]):
            if role in ALLOWED[operation]:
                call()
                if before is not None:
                    assert _count(crm, WRITES[operation]) > before, f"{role}: {operation} wrote nothing"
            else:
                with pytest.raises(AccessDenied, match=f"user {users[role]} \\({role}\\) may not "):
                    call()
                if before is not None:
                    assert _count(crm, WRITES[operation]) == before, f"{role}: a refused {operation} wrote"


def test_a_unit_of_work_of_a_viewer_cannot_write_even_if_the_block_is_an_admins(crm: CRM) -> None:
    admin = crm.users.create({"name": "Ada", "role": "admin"})["id"]
    viewer = crm.users.create({"name": "Vic", "role": "viewer"})["id"]
    customer = crm.customers.create({"name": "Customer"})["id"]
    with crm.as_user(admin), pytest.raises(AccessDenied), crm.transaction(actor_id=viewer) as tx:
        crm.tasks.create({"customer_id": customer, "title": "Call back"}, tx=tx)
    assert _count(crm, "SELECT count(*) FROM crm_tasks") == 0
