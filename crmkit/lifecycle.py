"""The customer lifecycle: stages, allowed transitions and the append-only history of every move."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm.util import identity_key

from crmkit.access import Access
from crmkit.audit import Audit
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
#: Customers read per statement by :meth:`Lifecycle.move_many`: far below SQLite's limit of bound parameters.
_CHUNK = 1000


class Lifecycle:
    """``crm.lifecycle``: where a customer is, where they may go, and how they got there."""

    def __init__(self, registry: Registry, units: Units, hooks: Hooks, access: Access, audit: Audit) -> None:
        self._access = access
        self._audit = audit
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
        self._access.require("customers:write", tx)
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
        self._audit.record(
            tx, "customer.stage_moved", "customer", entity_id=customer.id, customer_id=customer.id,
            changes={"stage": [source, target], "cause": cause}, user_id=actor_id,
        )  # fmt: skip
        return change

    def history(self, customer_id: int, *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Every move of a customer, oldest first: ``customer_id``, ``from_stage`` (``None`` for the first),
        ``to_stage``, ``lifecycle``, ``at`` (ISO 8601, UTC), ``cause``, ``actor_id``."""
        self._access.require("customers:read", tx)
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

    def move_many(
        self,
        customer_ids: Iterable[int],
        target: str,
        *,
        cause: str,
        actor_id: int | None = None,
        at: dt.datetime | None = None,
        from_stages: Iterable[str] | None = None,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """Move several customers to ``target`` with set-based writes; return the moves made, by customer id,
        each as :meth:`move` returns one.

        Each move is checked as :meth:`move` checks one, lands in the history and is told to the plugins
        (``crmkit_stage_changed``, once per customer). With ``from_stages``, only the customers in one of
        those stages move and the others are left where they are; without it, every customer must exist
        and every move be allowed, or nothing moves. A customer whose last move is later than ``at`` (a
        backfill) is moved at the time of that last move, so the history stays in order.
        """
        self._access.require("customers:write", tx)
        ids = sorted({require_id(i, "customer") for i in customer_ids})
        cause = check(_CAUSE, cause, "cause", "invalid move")
        when = utcnow() if at is None else check(_AT, at, "at", "invalid move")
        sources = None if from_stages is None else list(from_stages)
        customers: Table = Customer.__table__
        history_table: Table = StageHistory.__table__
        with self._units.write(tx, actor_id) as t:
            actor = actor_id or t.actor_id
            found: list[Any] = []
            for start in range(0, len(ids), _CHUNK):
                query = select(Customer.id, Customer.stage, Customer.stage_changed_at).where(
                    Customer.id.in_(ids[start : start + _CHUNK])
                )
                if sources is not None:
                    query = query.where(Customer.stage.in_(sources))
                found.extend(t.session.execute(query.order_by(Customer.id).with_for_update()).all())
            if sources is None and len(found) < len(ids):
                missing = sorted(set(ids) - {row.id for row in found})
                raise NotFound("customer", missing[0])
            moves = []
            for row in found:
                self.check(row.stage, target, cause)
                moves.append((row.id, row.stage, max(when, row.stage_changed_at)))
            if not moves:
                return []
            lifecycle = self.stage(target).lifecycle
            t.session.execute(
                update(customers)
                .where(customers.c.id == bindparam("_id"))
                .values(stage=target, lifecycle=lifecycle, stage_changed_at=bindparam("_at")),
                [{"_id": cid, "_at": moved_at} for cid, _, moved_at in moves],
            )
            history = [
                {
                    "customer_id": cid,
                    "from_stage": source,
                    "to_stage": target,
                    "to_lifecycle": lifecycle,
                    "at": moved_at,
                    "cause": cause,
                    "actor_id": actor,
                }
                for cid, source, moved_at in moves
            ]
            t.session.execute(insert(history_table), history)
            # the rows changed under the session: customers it holds must be read again
            for cid, _, _ in moves:
                loaded = t.session.identity_map.get(identity_key(Customer, cid))
                if loaded is not None:
                    t.session.expire(loaded)
            changes = [
                move_record(cid, source, target, lifecycle, moved_at, cause, actor) for cid, source, moved_at in moves
            ]
            for change in changes:
                self._hooks.stage_changed(t, change)
            # a bulk path: one entry for the batch
            counts = {"moved": len(moves), "to_stage": target, "cause": cause}
            self._audit.record(t, "customers.stage_moved", "customer", changes=counts, user_id=actor)
        return changes


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
