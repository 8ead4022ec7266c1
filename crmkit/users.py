"""Staff users: who owns customers, logs activities and gets tasks, with the role and branches that decide
what they may do (:mod:`crmkit.access`)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.db.models import User, UserBranch
from crmkit.errors import NotFound, ValidationError
from crmkit.limits import Text, check, require_id
from crmkit.schemas import Schemas, load
from crmkit.unit import Transaction, Units


class Users:
    """``crm.users``."""

    def __init__(self, *, schemas: Schemas, units: Units, access: Access, audit: Audit) -> None:
        self._audit = audit
        self._schemas = schemas
        self._units = units
        self._access = access

    def create(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        """Add a member of staff: ``name``, ``email``, ``role`` (one of ``crm.access.roles``; ``operator`` by
        default), home ``branch`` and other ``branches`` they work in."""
        errors: dict[str, Any] = {}
        try:
            values = load(self._schemas.user_in, data, message="invalid user")
        except ValidationError as exc:
            errors = dict(exc.errors)
        role = data.get("role", "operator") if isinstance(data, Mapping) else None
        if isinstance(role, str) and role not in self._access.roles and "role" not in errors:
            errors["role"] = [f"unknown role {role!r}: expected one of {', '.join(sorted(self._access.roles))}"]
        if errors:  # every problem at once, the role's with the others
            raise ValidationError(errors, "invalid user")
        branches = sorted(set(values.pop("branches")) - {values.get("branch")})
        with self._units.write(tx) as t:
            self._access.require("users:manage", t)
            if values.get("email") and t.session.scalar(select(User.id).where(User.email == values["email"])):
                raise ValidationError({"email": [f"a user with email {values['email']} exists"]}, "invalid user")
            user = User(**values)
            t.session.add(user)
            t.session.flush()
            t.session.add_all(UserBranch(user_id=user.id, branch=b) for b in branches)
            t.session.flush()
            record = self._dump(user, branches)
            told = {k: [None, v] for k, v in record.items() if v not in (None, []) and k != "id"}
            self._audit.record(t, "user.created", "user", entity_id=user.id, changes=told)
            return record

    def get(self, user_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        user_id = require_id(user_id, "user")
        with self._units.read(tx) as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound("user", user_id)
            return self._dump(user, self._branches(s, [user.id]).get(user.id, []))

    def list(self, *, branch: str | None = None, tx: Transaction | None = None) -> list[dict[str, Any]]:
        query = select(User).order_by(User.id)
        if branch is not None:
            branch = check(Text(), branch, "branch", "invalid filter")
            query = query.where(User.branch == branch)
        with self._units.read(tx) as s:
            users = list(s.execute(query).scalars())
            branches = self._branches(s, [u.id for u in users])
            return [self._dump(u, branches.get(u.id, [])) for u in users]

    def actor(self, user_id: int, *, tx: Transaction | None = None) -> Actor:
        """The actor user ``user_id`` acts as: their role's permissions, over the customers of their home
        branch and their other branches. ``NotFound`` for no such user, ``AccessDenied`` for an inactive one."""
        user_id = require_id(user_id, "user")
        with self._units.read(tx) as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound("user", user_id)
            reach = [*self._branches(s, [user.id]).get(user.id, []), *([user.branch] if user.branch else [])]
            return self._access.for_user(user.id, user.role, reach, active=user.active)

    @staticmethod
    def _branches(session: Any, user_ids: Iterable[int]) -> dict[int, builtins.list[str]]:
        ids = list(user_ids)
        out: dict[int, builtins.list[str]] = {}
        if not ids:
            return out
        query = select(UserBranch.user_id, UserBranch.branch).where(UserBranch.user_id.in_(ids))
        for user_id, branch in session.execute(query.order_by(UserBranch.user_id, UserBranch.branch)):
            out.setdefault(user_id, []).append(branch)
        return out

    def _dump(self, user: User, branches: builtins.list[str]) -> dict[str, Any]:
        record: dict[str, Any] = self._schemas.user_out.dump(user)
        record["branches"] = branches
        return record
