"""Roles, permissions and the actor a call runs as (``crmkit.access``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from crmkit import CRM, AccessDenied, PermissionSpec, RoleSpec, UserRequired, ValidationError, hookimpl
from crmkit.errors import NotFound, PluginError


class Gym:
    plugin_name = "gym"

    @hookimpl
    def crmkit_register_permissions(self) -> list[PermissionSpec]:
        return [PermissionSpec("gym_memberships:write", "sell and freeze memberships", roles=("operator", "coach"))]

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:
        return [RoleSpec("coach", "Coach", {"customers:read", "activities:write"}, scope="own")]


def test_the_core_roles_grant_what_the_practice_separates(crm: CRM) -> None:
    roles = crm.access.roles
    assert sorted(roles) == ["admin", "manager", "operator", "viewer"]
    assert roles["admin"].permissions == {"*"} and roles["admin"].scope == "all"
    assert {"customers:write", "customers:read_personal"} <= roles["operator"].permissions
    assert (
        not {"customers:merge", "customers:import", "customers:export", "reports:run"} & roles["operator"].permissions
    )
    assert {"customers:merge", "customers:import", "customers:export", "reports:run"} <= roles["manager"].permissions
    assert roles["viewer"].permissions == {"customers:read", "activities:read", "tasks:read", "reports:run"}
    assert "users:manage" not in roles["manager"].permissions


def test_a_plugin_declares_a_role_and_a_permission_granted_to_roles(crm_factory: Any) -> None:
    crm = crm_factory([Gym()])
    assert crm.access.roles["coach"].scope == "own"
    assert "gym_memberships:write" in crm.access.roles["coach"].permissions
    assert "gym_memberships:write" in crm.access.roles["operator"].permissions
    assert "gym_memberships:write" not in crm.access.roles["viewer"].permissions
    assert crm.access.permissions["gym_memberships:write"].owner == "gym"
    coach = crm.users.create({"name": "Kim", "role": "coach"})
    with crm.as_user(coach["id"]):
        assert crm.access.require("gym_memberships:write").user_id == coach["id"]
        with pytest.raises(AccessDenied, match=f"user {coach['id']} \\(coach\\) may not customers:write"):
            crm.access.require("customers:write")


class BadRole:
    plugin_name = "bad"

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:
        return [RoleSpec("clerk", permissions={"customers:read", "customers:delete"})]


class BadGrant:
    plugin_name = "bad"

    @hookimpl
    def crmkit_register_permissions(self) -> list[PermissionSpec]:
        return [PermissionSpec("bad_things:do", roles=("operator", "janitor"))]


class SecondAdmin:
    plugin_name = "bad"

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:
        return [RoleSpec("admin")]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (BadRole(), "role 'clerk' grants undeclared permissions \\['customers:delete'\\]"),
        (BadGrant(), "permission 'bad_things:do' names unknown roles \\['janitor'\\]"),
        (SecondAdmin(), "role 'admin' is already declared by plugin 'crmkit'"),
    ],
)
def test_a_role_or_permission_that_cannot_be_right_fails_at_load_time(plugin: object, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        CRM("sqlite://", plugins=[plugin], load_entry_points=False)


def test_declarations_that_are_not_identifiers_are_refused() -> None:
    with pytest.raises(ValueError, match="is not '<resource>:<action>'"):
        PermissionSpec("delete everything")
    with pytest.raises(ValueError):
        RoleSpec("Front Desk")
    with pytest.raises(TypeError, match="write \\('customers:read',\\)"):
        RoleSpec("desk", permissions="customers:read")


def test_a_user_has_a_declared_role_and_the_branches_they_work_in(crm: CRM) -> None:
    with pytest.raises(ValidationError, match="unknown role 'coach': expected one of admin, manager, operator, viewer"):
        crm.users.create({"name": "Kim", "role": "coach"})
    ana = crm.users.create({"name": "Ana", "role": "manager", "branch": "north", "branches": ["south", "north"]})
    assert (ana["role"], ana["branch"], ana["branches"]) == ("manager", "north", ["south"])
    assert crm.users.get(ana["id"])["branches"] == ["south"]
    assert [u["branches"] for u in crm.users.list()] == [["south"]]
    actor = crm.users.actor(ana["id"])
    assert (actor.role, actor.scope, actor.user_id) == ("manager", "branches", ana["id"])
    assert actor.branches == frozenset({"north", "south"})


def test_as_user_runs_the_block_as_that_user_and_no_other_context(crm: CRM) -> None:
    viewer = crm.users.create({"name": "Vic", "role": "viewer", "branch": "north"})
    seen_elsewhere: list[str] = []
    with crm.as_user(viewer["id"]) as actor:
        assert crm.access.actor() is actor
        assert not actor.sees_personal and actor.can("reports:run")
        other = threading.Thread(target=lambda: seen_elsewhere.append(crm.access.actor().name))
        other.start()
        other.join()
    assert seen_elsewhere == ["application"]
    assert crm.access.actor().name == "application"


def test_a_unit_of_work_acts_as_its_user_before_the_context(crm: CRM) -> None:
    admin = crm.users.create({"name": "Ada", "role": "admin"})
    viewer = crm.users.create({"name": "Vic", "role": "viewer"})
    with crm.as_user(viewer["id"]), crm.transaction(actor_id=admin["id"]) as tx:
        assert crm.access.actor(tx).user_id == admin["id"]
        assert crm.access.actor().user_id == viewer["id"]


def test_only_users_who_manage_users_create_them(crm: CRM) -> None:
    admin = crm.users.create({"name": "Ada", "role": "admin"})  # the application itself may
    manager = crm.users.create({"name": "Max", "role": "manager"})
    with crm.as_user(manager["id"]), pytest.raises(AccessDenied, match="may not users:manage"):
        crm.users.create({"name": "Eve", "role": "admin"})
    with crm.as_user(admin["id"]):
        assert crm.users.create({"name": "Op", "role": "operator"})["role"] == "operator"
    assert [u["name"] for u in crm.users.list()] == ["Ada", "Max", "Op"]


def test_an_inactive_or_unknown_user_acts_as_nobody(crm: CRM) -> None:
    gone = crm.users.create({"name": "Gone", "role": "admin", "active": False})
    with pytest.raises(AccessDenied, match=f"user {gone['id']} is not active"):
        crm.as_user(gone["id"])
    with pytest.raises(NotFound):
        crm.as_user(999_999)
    with pytest.raises(AccessDenied):
        crm.transaction(actor_id=gone["id"]).__enter__()


def test_a_crm_that_requires_a_user_refuses_anonymous_calls_but_not_named_automation(crm_factory: Any) -> None:
    crm = crm_factory(require_user=True)
    with pytest.raises(UserRequired, match="crm.as_user"):
        crm.access.actor()
    with pytest.raises(UserRequired):
        crm.users.create({"name": "Ada", "role": "admin"})
    with crm.as_system("provisioning") as system:
        assert (system.name, system.system, system.user_id) == ("provisioning", True, None)
        admin = crm.users.create({"name": "Ada", "role": "admin"})
    with crm.as_user(admin["id"]):
        assert crm.access.actor().user_id == admin["id"]
