"""The customer lifecycle: stages, allowed transitions and the append-only history of every move."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from crmkit.db.models import Customer, StageHistory
from crmkit.db.types import utcnow
from crmkit.errors import NotFound, TransitionError
from crmkit.hooks import Hooks
from crmkit.limits import Moment, Text, check, id_filter, require_id
from crmkit.plugins import Registry
from crmkit.specs import StageSpec, TransitionSpec
from crmkit.unit import Transaction, Units

_CAUSE = Text(max_length=200)
_AT = Moment()


class Lifecycle:
    """``crm.lifecycle``: where a customer is, where they may go, and how they got there."""

    def __init__(self, registry: Registry, units: Units, hooks: Hooks) -> None:
        self._registry = registry
        self._units = units
        self._hooks = hooks

    @property
    def stages(self) -> dict[str, StageSpec]:
        return self._registry.stages

    @property
    def transitions(self) -> dict[tuple[str, str], TransitionSpec]:
        return self._registry.transitions

    def stage(self, name: str) -> StageSpec:
        try:
            return self.stages[name]
        except KeyError:
            raise NotFound("stage", name) from None

    def allowed_targets(self, source: str) -> list[str]:
        return sorted(t for (s, t) in self.transitions if s == source)

    def check(self, source: str, target: str, cause: str | None) -> TransitionSpec:
        """The declaration that allows ``source -> target``, or ``TransitionError``."""
        if target not in self.stages:
            raise TransitionError(source, target, "unknown stage")
        spec = self.transitions.get((source, target))
        if spec is None:
            raise TransitionError(source, target)
        if not (cause and cause.strip()):
            reason = "this move goes backwards and needs a cause" if spec.requires_reason else "a move needs a cause"
            raise TransitionError(source, target, reason)
        return spec

    def move(
        self,
        customer_id: int,
        target: str,
        *,
        cause: str,
        actor_id: int | None = None,
        at: dt.datetime | None = None,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Move a customer to ``target``. Forbidden moves raise; every move lands in the history.

        Returns the move as :meth:`history` lists it, with ``customer_id``."""
        customer_id = require_id(customer_id, "customer")
        # the history's cause column is String(200); a blank cause is the transition's business (check())
        if cause is not None:
            cause = check(_CAUSE, cause, "cause", "invalid move")
        if at is not None:
            at = check(_AT, at, "at", "invalid move")
        with self._units.write(tx, actor_id) as t:
            customer = t.session.get(Customer, customer_id, with_for_update=True)
            if customer is None:
                raise NotFound("customer", customer_id)
            self.check(customer.stage, target, cause)
            if at is not None and at < customer.stage_changed_at:
                raise TransitionError(
                    customer.stage, target, f"a move cannot be dated before the last one ({customer.stage_changed_at})"
                )
            return self.record(t, customer, customer.stage, target, cause=cause, actor_id=actor_id or t.actor_id, at=at)

    def record(
        self,
        tx: Transaction,
        customer: Customer,
        source: str | None,
        target: str,
        *,
        cause: str,
        actor_id: int | None,
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Write a move that has been checked (``source`` is ``None`` for a new customer's first stage)
        and tell the plugins."""
        at = at or utcnow()
        spec = self.stage(target)
        customer.stage = target
        customer.lifecycle = spec.lifecycle
        customer.stage_changed_at = at
        tx.session.add(
            StageHistory(
                customer_id=customer.id,
                from_stage=source,
                to_stage=target,
                to_lifecycle=spec.lifecycle,
                at=at,
                cause=cause,
                actor_id=actor_id,
            )
        )
        tx.session.flush()
        change = move_record(customer.id, source, target, spec.lifecycle, at, cause, actor_id)
        self._hooks.stage_changed(tx, change)
        return change

    def history(self, customer_id: int, *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Every move of a customer, oldest first: ``customer_id``, ``from_stage`` (``None`` for the first),
        ``to_stage``, ``lifecycle``, ``at`` (ISO 8601, UTC), ``cause``, ``actor_id``."""
        if id_filter(customer_id, "customer") is None:
            return []
        with self._units.read(tx) as s:
            rows = s.execute(
                select(StageHistory)
                .where(StageHistory.customer_id == customer_id)
                .order_by(StageHistory.at, StageHistory.id)
            ).scalars()
            return [
                move_record(r.customer_id, r.from_stage, r.to_stage, r.to_lifecycle, r.at, r.cause, r.actor_id)
                for r in rows
            ]


def move_record(
    customer_id: int,
    source: str | None,
    target: str,
    lifecycle: str,
    at: dt.datetime,
    cause: str | None,
    actor_id: int | None,
) -> dict[str, Any]:
    """One stage move in the read model: what :meth:`Lifecycle.history` lists and hooks receive."""
    return {
        "customer_id": customer_id,
        "from_stage": source,
        "to_stage": target,
        "lifecycle": lifecycle,
        "at": at.astimezone(dt.UTC).isoformat(),
        "cause": cause,
        "actor_id": actor_id,
    }
