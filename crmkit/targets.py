"""Plans per member of staff (10 meetings this month), the "plan" of plan-vs-fact reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, validate, validates_schema
from marshmallow import ValidationError as MarshmallowError
from marshmallow import fields as mf
from sqlalchemy import select

from crmkit.audit import Audit
from crmkit.db.models import TARGET_METRICS, Target, User
from crmkit.errors import ValidationError
from crmkit.limits import Day, Int, Text
from crmkit.schemas import load
from crmkit.unit import Transaction, Units


class TargetIn(Schema):
    user_id = Int(required=True)
    metric = Text(required=True, validate=validate.OneOf(TARGET_METRICS))
    period_start = Day(required=True)
    period_end = Day(required=True)
    planned = Int(required=True, min=0)

    @validates_schema
    def _period(self, values: dict[str, Any], **_: Any) -> None:
        if values["period_end"] < values["period_start"]:
            raise MarshmallowError({"period_end": ["must not be before period_start"]})


class TargetOut(Schema):
    id = mf.Integer()
    user_id = mf.Integer()
    metric = mf.String()
    period_start = mf.Date()
    period_end = mf.Date()
    planned = mf.Integer()


class Targets:
    """``crm.targets``: set and read plans. One plan per user, metric and period start."""

    def __init__(self, *, units: Units, audit: Audit) -> None:
        self._units = units
        self._audit = audit
        self._in = TargetIn()
        self._out = TargetOut()

    def set(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        """Create or replace the plan for ``user_id``, ``metric`` and ``period_start`` (inclusive dates)."""
        values = load(self._in, data, message="invalid target")
        with self._units.write(tx) as t:
            if t.session.get(User, values["user_id"]) is None:
                raise ValidationError({"user_id": [f"no user with id {values['user_id']}"]}, "invalid target")
            target = t.session.scalar(
                select(Target).where(
                    Target.user_id == values["user_id"],
                    Target.metric == values["metric"],
                    Target.period_start == values["period_start"],
                )
            )
            before = None if target is None else self._out.dump(target)
            if target is None:
                target = Target(**values)
                t.session.add(target)
            else:
                target.period_end, target.planned = values["period_end"], values["planned"]
            t.session.flush()
            record = self._out.dump(target)
            changes = {k: [None if before is None else before.get(k), v] for k, v in record.items() if k != "id"}
            changes = {k: pair for k, pair in changes.items() if pair[0] != pair[1]}
            self._audit.record(t, "target.set", "target", entity_id=target.id, changes=changes)
            return record

    def list(self, *, user_id: int | None = None, tx: Transaction | None = None) -> list[dict[str, Any]]:
        query = select(Target).order_by(Target.period_start, Target.user_id, Target.metric)
        if user_id is not None:
            query = query.where(Target.user_id == user_id)
        with self._units.read(tx) as s:
            return self._out.dump(s.scalars(query), many=True)
