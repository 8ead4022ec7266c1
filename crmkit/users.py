"""Staff users: who owns customers, logs activities and gets tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from crmkit.db.models import User
from crmkit.errors import NotFound, ValidationError
from crmkit.limits import Text, check, require_id
from crmkit.schemas import Schemas, load
from crmkit.unit import Transaction, Units


class Users:
    """``crm.users``."""

    def __init__(self, *, schemas: Schemas, units: Units) -> None:
        self._schemas = schemas
        self._units = units

    def create(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        values = load(self._schemas.user_in, data, message="invalid user")
        with self._units.write(tx) as t:
            if values.get("email") and t.session.scalar(select(User.id).where(User.email == values["email"])):
                raise ValidationError({"email": [f"a user with email {values['email']} exists"]}, "invalid user")
            user = User(**values)
            t.session.add(user)
            t.session.flush()
            return self._schemas.user_out.dump(user)

    def get(self, user_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        user_id = require_id(user_id, "user")
        with self._units.read(tx) as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound("user", user_id)
            return self._schemas.user_out.dump(user)

    def list(self, *, branch: str | None = None, tx: Transaction | None = None) -> list[dict[str, Any]]:
        query = select(User).order_by(User.id)
        if branch is not None:
            branch = check(Text(), branch, "branch", "invalid filter")
            query = query.where(User.branch == branch)
        with self._units.read(tx) as s:
            return self._schemas.user_out.dump(s.execute(query).scalars(), many=True)
