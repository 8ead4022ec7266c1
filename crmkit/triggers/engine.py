"""Running triggers: one ``INSERT ... SELECT`` per trigger finds and records every match, then the actions
run over the new firings in batches.

Idempotency comes from the database, not from Python bookkeeping: a firing's unique key is (trigger,
customer, cooldown window), inserted with ``ON CONFLICT DO NOTHING``, and a customer who fired within the
cooldown is excluded by the query itself. A second run, or a concurrent one on PostgreSQL (it waits on the
unique index, then inserts nothing), fires nothing twice.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import jinja2
from sqlalchemy import case, delete, exists, false, func, literal, select, true

from crmkit.db.functions import upsert_insert
from crmkit.db.models import Activity, Customer, OutboxMessage, Task, TriggerFiring, TriggerRun
from crmkit.db.types import BigId, UTCDateTime, utcnow
from crmkit.errors import NotFound, PluginError
from crmkit.limits import Moment, check
from crmkit.triggers.query import HOLDOUT_BUCKETS, TriggerQuery, exists_where, holdout_sql
from crmkit.triggers.spec import Effectiveness, Firing, RunReport, Trigger, TriggerResult
from crmkit.unit import Transaction, savepoint

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crmkit.app import CRM

Progress = Callable[[Trigger, TriggerResult], None]
_MOMENT = Moment()


def _aware(moment: dt.datetime, name: str = "as_of") -> dt.datetime:
    """``moment`` (naive: UTC) within the range every stored time keeps to: the windows computed from it
    (cooldowns, goals, days ago) then never overflow a date."""
    return check(_MOMENT, moment, name, f"invalid {name}")  # type: ignore[no-any-return]


def _days_since(value: Any, as_of: dt.datetime) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (as_of - (value if value.tzinfo else value.replace(tzinfo=dt.UTC))).days
    return (as_of.date() - value).days


class Triggers:
    """``crm.triggers``: the declared triggers, their runs and their effectiveness."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm
        self.env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self._triggers: dict[str, Trigger] = {}
        self._compiled: dict[str, jinja2.Template] = {}
        for trigger in crm.registry.triggers.values():
            self._add(trigger)

    # -- declarations --------------------------------------------------------------------------------

    def register(self, trigger: Trigger) -> None:
        """Add a trigger in code (an app's own, or a test's). Same checks as a plugin's."""
        if trigger.name in self._triggers:
            raise PluginError(trigger.owner or "app", f"trigger {trigger.name!r} is already declared")
        self._add(trigger)

    def _add(self, trigger: Trigger) -> None:
        owner = trigger.owner or "app"
        if not isinstance(trigger, Trigger):
            raise PluginError(owner, f"{trigger!r} is not a crmkit.triggers.Trigger")
        reg = self._crm.registry
        for stage in trigger.stages:
            if stage not in reg.stages:
                raise PluginError(owner, f"trigger {trigger.name!r}: unknown stage {stage!r}")
        if trigger.move_to is not None and trigger.move_to not in reg.stages:
            raise PluginError(owner, f"trigger {trigger.name!r}: cannot move to unknown stage {trigger.move_to!r}")
        if trigger.goal is not None:
            for kind in trigger.goal.kinds:
                if kind not in reg.activity_kinds:
                    raise PluginError(owner, f"trigger {trigger.name!r}: goal kind {kind!r} is not an activity kind")
        for source in self._templates(trigger):
            try:
                self.env.parse(source)
            except jinja2.TemplateSyntaxError as exc:
                raise PluginError(owner, f"trigger {trigger.name!r}: bad template {source!r}: {exc}") from exc
        self._triggers[trigger.name] = trigger

    @staticmethod
    def _templates(trigger: Trigger) -> list[str]:
        out = []
        if trigger.task:
            out += [trigger.task.title, trigger.task.reason]
        if trigger.message:
            out += [trigger.message.body, trigger.message.subject]
        return out

    def all(self) -> list[Trigger]:
        """Every trigger, highest priority first."""
        return sorted(self._triggers.values(), key=lambda t: (-t.priority, t.name))

    def get(self, name: str) -> Trigger:
        try:
            return self._triggers[name]
        except KeyError:
            raise NotFound("trigger", name) from None

    # -- evaluation ------------------------------------------------------------------------------------

    def matching(self, name: str, as_of: dt.datetime) -> Any:
        """The ``SELECT`` of customer ids the trigger would fire for at ``as_of`` (cooldown applied)."""
        trigger = self.get(name)
        as_of = _aware(as_of)
        q = TriggerQuery(self._crm, as_of)
        condition = trigger.condition(q)
        c = q.customer
        recent = exists_where(
            TriggerFiring.trigger == trigger.name,
            TriggerFiring.customer_id == c.c.id,
            TriggerFiring.as_of > q.ago(trigger.cooldown),
            TriggerFiring.as_of < q.ahead(trigger.cooldown),
        )
        # SQLite tests the terms in the order written: the cheap stage columns first, so the condition's
        # subqueries only run for customers in the stages, and the cooldown last, for the few still matching
        where = [q.stage_filter(trigger.stages)] if trigger.stages else []
        return select(c.c.id.label("customer_id")).select_from(q.from_clause()).where(*where, condition, ~recent)

    def run(
        self,
        as_of: dt.datetime | None = None,
        *,
        names: Iterable[str] | None = None,
        dry_run: bool = False,
        batch_size: int = 1000,
        progress: Progress | None = None,
    ) -> RunReport:
        """Evaluate the triggers for ``as_of`` (now by default) and act on the new matches.

        ``dry_run`` only counts who would fire. Each trigger commits on its own: an action that raises rolls
        back that one firing (reported in ``errors``), the rest of the trigger and the other triggers
        complete.
        """
        crm = self._crm
        as_of = _aware(as_of or utcnow())
        triggers = [self.get(n) for n in names] if names is not None else self.all()
        run_id = None
        if not dry_run:
            with crm.transaction() as tx:
                run = TriggerRun(as_of=as_of)
                tx.session.add(run)
                tx.session.flush()
                run_id = run.id
        if dry_run:
            # only reads: one session for every trigger rather than a transaction each
            with crm.session() as s:
                results = self._each(triggers, lambda t: self._count(s, t, as_of), progress)
        else:
            results = self._each(triggers, lambda t: self._fire(t, as_of, run_id, batch_size), progress)
        report = RunReport(as_of, dry_run, tuple(results))
        if run_id is not None:
            with crm.transaction() as tx:
                run = tx.session.get(TriggerRun, run_id)
                assert run is not None
                run.finished_at = utcnow()
                run.summary = {
                    r.trigger: {"fired": r.fired, "held_out": r.held_out, "failed": r.failed} for r in results
                }
        return report

    @staticmethod
    def _each(
        triggers: list[Trigger], evaluate: Callable[[Trigger], TriggerResult], progress: Progress | None
    ) -> list[TriggerResult]:
        results = []
        for trigger in triggers:
            result = evaluate(trigger)
            results.append(result)
            if progress is not None:
                progress(trigger, result)
        return results

    def _count(self, session: Session, trigger: Trigger, as_of: dt.datetime) -> TriggerResult:
        query = self.matching(trigger.name, as_of).subquery()
        matched = session.scalar(select(func.count()).select_from(query)) or 0
        return TriggerResult(trigger.name, matched=matched)

    def _fire(self, trigger: Trigger, as_of: dt.datetime, run_id: int | None, batch_size: int) -> TriggerResult:
        crm = self._crm
        errors: list[str] = []
        with crm.transaction() as tx:
            self._insert_firings(tx, trigger, as_of, run_id)
            counts = dict(
                tx.session.execute(
                    select(TriggerFiring.held_out, func.count())
                    .where(TriggerFiring.run_id == run_id, TriggerFiring.trigger == trigger.name)
                    .group_by(TriggerFiring.held_out)
                ).all()
            )
            last_id = 0
            while self._has_actions(trigger):
                batch = tx.session.execute(
                    select(TriggerFiring.id, TriggerFiring.customer_id)
                    .where(
                        TriggerFiring.run_id == run_id,
                        TriggerFiring.trigger == trigger.name,
                        TriggerFiring.held_out.is_(False),
                        TriggerFiring.id > last_id,
                    )
                    .order_by(TriggerFiring.id)
                    .limit(batch_size)
                ).all()
                if not batch:
                    break
                last_id = batch[-1].id
                errors.extend(self._act_isolated(tx, trigger, as_of, [(r.id, r.customer_id) for r in batch]))
        fired = counts.get(False, 0) - len(errors)
        return TriggerResult(
            trigger.name,
            matched=fired + counts.get(True, 0) + len(errors),
            fired=fired,
            held_out=counts.get(True, 0),
            failed=len(errors),
            errors=tuple(errors),
        )

    def _has_actions(self, trigger: Trigger) -> bool:
        """Whether firings need any per-customer work (without it, recording them is all there is to do)."""
        listening = self._crm.hooks.implemented("trigger_fired")
        return listening or any((trigger.task, trigger.move_to, trigger.message, trigger.call))

    def _insert_firings(self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, run_id: int | None) -> None:
        matches = self.matching(trigger.name, as_of).subquery()
        window_key = int(as_of.timestamp() // trigger.cooldown.total_seconds())
        goal_until = as_of + trigger.goal.window if trigger.goal else None
        held_out: Any = (
            holdout_sql(trigger.name, matches.c.customer_id) < round(trigger.holdout * HOLDOUT_BUCKETS)
            if trigger.holdout
            else false()
        )
        source = select(
            literal(trigger.name).label("trigger"),
            matches.c.customer_id,
            literal(window_key, BigId).label("window_key"),
            literal(as_of, UTCDateTime()).label("as_of"),
            literal(goal_until, UTCDateTime()).label("goal_until"),
            case((held_out, True), else_=False).label("held_out"),
            literal(run_id, BigId).label("run_id"),
        ).where(true())  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT, or it misparses
        insert = upsert_insert(tx.session)
        columns = ["trigger", "customer_id", "window_key", "as_of", "goal_until", "held_out", "run_id"]
        statement = (
            insert(TriggerFiring)
            .from_select(columns, source)
            .on_conflict_do_nothing(index_elements=["trigger", "customer_id", "window_key"])
        )
        tx.session.execute(statement)

    # -- actions -------------------------------------------------------------------------------------

    def _act_isolated(
        self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, firings: list[tuple[int, int]]
    ) -> list[str]:
        """Act on a batch in one savepoint; if that fails, retry one firing per savepoint so only the
        failing ones are rolled back (and their firing rows deleted, so they may fire again later)."""
        try:
            with savepoint(tx):
                self._act(tx, trigger, as_of, firings)
            return []
        except Exception:
            if len(firings) == 1:
                return self._drop(tx, firings[0], trigger)
        errors: list[str] = []
        for firing in firings:
            try:
                with savepoint(tx):
                    self._act(tx, trigger, as_of, [firing])
            except Exception:
                errors.extend(self._drop(tx, firing, trigger))
        return errors

    def _drop(self, tx: Transaction, firing: tuple[int, int], trigger: Trigger) -> list[str]:
        exc = sys.exc_info()[1]
        tx.session.execute(delete(TriggerFiring).where(TriggerFiring.id == firing[0]))
        return [f"customer {firing[1]}: {type(exc).__name__}: {exc}"]

    def _act(self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, firings: list[tuple[int, int]]) -> None:
        crm = self._crm
        session = tx.session
        ids = [cid for _, cid in firings]
        records = self._records(session, ids)
        evidence = self._evidence(session, trigger, as_of, ids)
        items = [
            Firing(fid, trigger.name, records[cid], evidence.get(cid, {}), as_of, held_out=False)
            for fid, cid in firings
        ]
        contexts = [self._context(f) for f in items]  # rendered by the task and the message alike
        now = utcnow()
        source = {"source": f"trigger:{trigger.name}", "created_at": now}
        if trigger.task is not None:
            task = trigger.task
            rows = [
                {
                    "title": self._render(task.title, ctx)[:300],
                    "reason": self._render(task.reason, ctx) or None,
                    "customer_id": f.customer["id"],
                    "assignee_id": task.assignee_id or f.customer.get("owner_id"),
                    "due_at": as_of + task.due_in,
                    "remind_at": None,
                    "status": "open",
                    "priority": trigger.priority,
                    "source_id": str(f.id),
                    **source,
                }
                for f, ctx in zip(items, contexts, strict=True)
            ]
            session.execute(Task.__table__.insert(), rows)
        if trigger.move_to is not None:
            self._move(tx, trigger, as_of, ids)
        if trigger.message is not None:
            message = trigger.message
            rows = [
                {
                    "channel": message.channel,
                    "customer_id": f.customer["id"],
                    "subject": self._render(message.subject, ctx) or None,
                    "body": self._render(message.body, ctx),
                    "status": "pending",
                    "attempts": 0,
                    "source_id": str(f.id),
                    **source,
                }
                for f, ctx in zip(items, contexts, strict=True)
            ]
            outbox = OutboxMessage.__table__
            ids = list(session.scalars(outbox.insert().returning(outbox.c.id), rows))
            # only the messages these firings wrote: others belong to their own writers' deliveries (or to
            # the app's periodic crm.outbox.deliver())
            tx.after_commit(partial(crm.outbox.deliver, ids, limit=len(ids)))
        if trigger.call is not None:
            for f in items:
                trigger.call(tx, f)
        crm.hooks.trigger_fired(tx, trigger, items)
        session.flush()

    def _move(self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, ids: list[int]) -> None:
        target = trigger.move_to
        assert target is not None
        sources = [
            s for (s, t), spec in self._crm.registry.transitions.items() if t == target and not spec.requires_reason
        ]
        movable = tx.session.scalars(select(Customer).where(Customer.id.in_(ids), Customer.stage.in_(sources)))
        for customer in movable:
            # a backfill never dates a move before the customer's previous one
            at = max(as_of, customer.stage_changed_at)
            self._crm.lifecycle.record(
                tx, customer, customer.stage, target, cause=f"trigger {trigger.name}", actor_id=None, at=at
            )

    def _records(self, session: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
        customers = self._crm.customers
        query = customers.select().where(Customer.__table__.c.id.in_(ids))
        return {row["id"]: customers._flat(row) for row in session.execute(query).mappings()}

    def _evidence(
        self, session: Any, trigger: Trigger, as_of: dt.datetime, ids: list[int]
    ) -> dict[int, dict[str, Any]]:
        if not trigger.evidence:
            return {}
        q = TriggerQuery(self._crm, as_of)
        columns = [build(q).label(name) for name, build in trigger.evidence.items()]
        query = select(q.customer.c.id, *columns).select_from(q.from_clause()).where(q.customer.c.id.in_(ids))
        out = {}
        for row in session.execute(query).mappings():
            values = dict(row)
            out[values.pop("id")] = values
        return out

    def _context(self, firing: Firing) -> dict[str, Any]:
        as_of = firing.as_of
        return {
            "customer": firing.customer,
            **firing.evidence,
            "evidence": firing.evidence,
            "as_of": as_of,
            "trigger": firing.trigger,
            "days_since": lambda value: _days_since(value, as_of),
        }

    def _render(self, source: str, context: dict[str, Any]) -> str:
        if not source:
            return ""
        template = self._compiled.get(source)
        if template is None:  # compile once per template, not once per firing
            template = self._compiled[source] = self.env.from_string(source)
        return template.render(context).strip()

    # -- effectiveness ---------------------------------------------------------------------------------

    def effectiveness(
        self, *, names: Iterable[str] | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[Effectiveness]:
        """Per trigger with a goal: firings and conversions of the contacted and of the held-out group.

        A firing converts when the customer has a goal activity after the firing and within the goal's
        window. Computed by the database, one statement per trigger.
        """
        wanted = [self.get(n) for n in names] if names is not None else self.all()
        out = []
        with self._crm.session() as s:
            for trigger in wanted:
                if trigger.goal is None:
                    continue
                converted = exists().where(
                    Activity.customer_id == TriggerFiring.customer_id,
                    Activity.kind.in_(list(trigger.goal.kinds)),
                    Activity.status == "done",
                    Activity.occurred_at > TriggerFiring.as_of,
                    Activity.occurred_at <= TriggerFiring.goal_until,
                )
                query = select(
                    TriggerFiring.held_out,
                    func.count(),
                    func.coalesce(func.sum(case((converted, 1), else_=0)), 0),
                ).where(TriggerFiring.trigger == trigger.name)
                if since is not None:
                    query = query.where(TriggerFiring.as_of >= literal(_aware(since, "since"), UTCDateTime()))
                if until is not None:
                    query = query.where(TriggerFiring.as_of < literal(_aware(until, "until"), UTCDateTime()))
                rows = {bool(h): (n, c) for h, n, c in s.execute(query.group_by(TriggerFiring.held_out))}
                fired, conv = rows.get(False, (0, 0))
                held, held_conv = rows.get(True, (0, 0))
                out.append(Effectiveness(trigger.name, fired, int(conv), held, int(held_conv)))
        return out
