"""Who may do what: roles, permissions and the actor a call runs as.

A permission is an allow-list entry, ``"<resource>:<action>"`` (``"customers:write"``,
``"reports:run"``, a plugin's ``"fitness_memberships:write"``). A role (:class:`RoleSpec`) is a set of
permissions and a row scope: ``all`` customers, those of the user's ``branches``, or only those the user
``own``\\ s. Roles and permissions are declarations, like fields: the core's come through the same hooks as
a plugin's (``crmkit_register_roles``, ``crmkit_register_permissions``), and a plugin permission names the
roles that get it.

Every call runs as an :class:`Actor`: a user (``crm.as_user(id)``, or a unit of work opened with
``crm.transaction(actor_id=...)``), a named system actor for automation (``crm.as_system("triggers")``), or,
when neither is given, the application itself. The application is trusted with everything unless the CRM
is built with ``require_user=True``: then a call without a user is refused.

This module is part of the public plugin API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Literal

import attrs

from crmkit.errors import AccessDenied, UserRequired
from crmkit.specs import names_tuple

Scope = Literal["all", "branches", "own"]
SCOPES: tuple[str, ...] = ("all", "branches", "own")

#: The core's permissions, each with what it allows.
CORE_PERMISSIONS: dict[str, str] = {
    "customers:read": "read customers, their contacts and history, personal data masked",
    "customers:read_personal": "read the personal data of customers (names, emails, phones, declared fields)",
    "customers:write": "create and update customers, move them between stages",
    "customers:merge": "merge two customers",
    "customers:import": "import customers and run importers; revert an import",
    "customers:export": "export customers, activities and tasks; a person's data as one document",
    "customers:erase": "erase a person's data",
    "activities:read": "read activities",
    "activities:write": "log and ingest activities",
    "tasks:read": "read tasks",
    "tasks:write": "create and complete tasks",
    "reports:run": "run reports and KPIs",
    "triggers:run": "run retention triggers",
    "users:manage": "create users and change their roles and branches",
    "fields:manage": "add run-time fields",
    "audit:read": "read the audit log",
}

_PERMISSION = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def _permission(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _PERMISSION.match(value) or len(value) > 96:
        raise ValueError(f"{type(instance).__name__}.{attribute.name}: {value!r} is not '<resource>:<action>'")


def _permissions(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError(f"expected permissions, got the string {value!r}; write ({value!r},)")
    return frozenset(value)


@attrs.frozen
class PermissionSpec:
    """A permission a plugin's own code checks (``crm.access.require("fitness_memberships:write")``), and
    the roles that have it."""

    name: str = attrs.field(validator=_permission)
    description: str = ""
    roles: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    owner: str = ""


@attrs.frozen
class RoleSpec:
    """A role: the permissions it grants (``"*"`` grants every one) and the customers it reaches."""

    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[a-z][a-z0-9_]{0,19}$"))
    label: str = ""
    permissions: frozenset[str] = attrs.field(default=frozenset(), converter=_permissions)
    scope: Scope = attrs.field(default="branches", validator=attrs.validators.in_(SCOPES))
    owner: str = ""


@attrs.frozen
class Actor:
    """Who a call runs as, with what it may do and which customers it reaches.

    ``user_id`` is ``None`` for the application itself and for system actors. ``branches`` is ``None`` when
    the actor reaches every branch.
    """

    name: str
    role: str
    permissions: frozenset[str]
    user_id: int | None = None
    scope: Scope = "all"
    branches: frozenset[str] | None = None
    system: bool = False

    def can(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    def require(self, permission: str) -> Actor:
        if not self.can(permission):
            raise AccessDenied(self.describe(), permission)
        return self

    @property
    def sees_personal(self) -> bool:
        return self.can("customers:read_personal")

    @property
    def unscoped(self) -> bool:
        return self.scope == "all"

    def reaches(self, branch: str | None, owner_id: int | None) -> bool:
        """Whether a customer of ``branch`` owned by ``owner_id`` is within this actor's scope: every
        customer, those of the actor's branches (and those of no branch), or those the actor owns."""
        if self.scope == "all":
            return True
        if self.scope == "own":
            return self.user_id is not None and owner_id == self.user_id
        return branch is None or branch in (self.branches or ())

    def describe(self) -> str:
        if self.user_id is not None:
            return f"user {self.user_id} ({self.role})"
        return f"system actor {self.name!r}" if self.system else "the application"


#: The application calling crmkit without naming a user, on a CRM that allows it: trusted with everything.
APPLICATION = Actor(name="application", role="admin", permissions=frozenset({"*"}), system=True)


def core_roles() -> list[RoleSpec]:
    """The four core roles. An operator enters customers and their personal data; a manager also merges,
    imports, exports and runs reports and triggers; a viewer reads, without personal data, and runs reports."""
    read = {"customers:read", "activities:read", "tasks:read"}
    operator = {*read, "customers:read_personal", "customers:write", "activities:write", "tasks:write"}
    manager = {
        *operator,
        "customers:merge",
        "customers:import",
        "customers:export",
        "reports:run",
        "triggers:run",
        "audit:read",
    }
    return [
        RoleSpec("admin", "Administrator", {"*"}, scope="all"),
        RoleSpec("manager", "Manager", manager, scope="branches"),
        RoleSpec("operator", "Operator", operator, scope="branches"),
        RoleSpec("viewer", "Viewer", {*read, "reports:run"}, scope="branches"),
    ]


def resolve_roles(roles: Mapping[str, RoleSpec], permissions: Mapping[str, PermissionSpec]) -> dict[str, RoleSpec]:
    """The roles with the plugin permissions that name them added."""
    grants: dict[str, set[str]] = {name: set(role.permissions) for name, role in roles.items()}
    for spec in permissions.values():
        for role in spec.roles:
            grants[role].add(spec.name)
    return {name: attrs.evolve(role, permissions=frozenset(grants[name])) for name, role in roles.items()}


class ActorContext:
    """The actor of the calls in the current context (thread or task), for one CRM: set by
    ``crm.as_user`` and ``crm.as_system``, read by every service."""

    def __init__(self) -> None:
        self._current: ContextVar[Actor | None] = ContextVar(f"crmkit_actor_{id(self)}", default=None)

    def get(self) -> Actor | None:
        return self._current.get()

    @contextmanager
    def using(self, actor: Actor) -> Iterator[Actor]:
        token = self._current.set(actor)
        try:
            yield actor
        finally:
            self._current.reset(token)


class Access:
    """``crm.access``: the roles and permissions of this CRM, and the actor of a call.

    Services ask :meth:`require` before they act; :meth:`actor` is who the call runs as: the unit of
    work's user, else the context's (``crm.as_user``, ``crm.as_system``), else the application.
    """

    def __init__(
        self,
        *,
        roles: Mapping[str, RoleSpec],
        permissions: Mapping[str, PermissionSpec],
        require_user: bool,
        context: ActorContext,
    ) -> None:
        self.roles = dict(roles)
        core = {name: PermissionSpec(name, text, owner="core") for name, text in CORE_PERMISSIONS.items()}
        self.permissions = {**core, **permissions}
        self.require_user = require_user
        self._context = context

    def actor(self, tx: object | None = None) -> Actor:
        """Who a call given ``tx`` (or none) runs as; :class:`UserRequired` when nobody is named and the
        CRM needs a user."""
        actor = getattr(tx, "actor", None) if tx is not None else None
        if actor is None:
            actor = self._context.get()
        if actor is None:
            if self.require_user:
                raise UserRequired
            return APPLICATION
        return actor

    def require(self, permission: str, tx: object | None = None) -> Actor:
        """The actor of the call, if it may ``permission``; else :class:`AccessDenied`."""
        if permission not in self.permissions:
            raise ValueError(f"unknown permission {permission!r}: declare it with crmkit_register_permissions")
        return self.actor(tx).require(permission)

    def for_user(self, user_id: int, role: str, branches: Iterable[str], active: bool = True) -> Actor:
        """The actor of a user, from what is stored about them."""
        if not active:
            raise AccessDenied(f"user {user_id} ({role})", "act", f"user {user_id} is not active")
        spec = self.roles.get(role)
        if spec is None:  # a role no plugin declares any more grants nothing
            return Actor(f"user {user_id}", role, frozenset(), user_id, "own", frozenset())
        reach = None if spec.scope == "all" else frozenset(branches)
        return Actor(f"user {user_id}", role, spec.permissions, user_id, spec.scope, reach)

    def system(self, name: str, permissions: Iterable[str] = ("*",)) -> Actor:
        """A named system actor (``"triggers"``, ``"importer:telephony"``): what automation runs as."""
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ValueError(f"a system actor needs a name of 1 to 64 characters, got {name!r}")
        return Actor(name, "system", frozenset(permissions), None, "all", None, system=True)

    def using(self, actor: Actor) -> AbstractContextManager[Actor]:
        return self._context.using(actor)
