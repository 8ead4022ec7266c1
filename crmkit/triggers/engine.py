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
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import jinja2
from marshmallow import ValidationError as FieldError
from sqlalchemy import ColumnElement, case, delete, exists, false, func, literal, null, select, true, update

from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.contact_policy import ContactRules, outcome
from crmkit.db.functions import upsert_insert
from crmkit.db.models import CONSENT_PURPOSES, Activity, Customer, TriggerFiring, TriggerRun
from crmkit.db.types import BigId, UTCDateTime, utcnow
from crmkit.errors import NotFound, PluginError, ValidationError
from crmkit.limits import Int, Moment, Text, check, id_filter
from crmkit.listing import Filterable, Page, check_limit, customer_scope, decode_cursor, encode_cursor
from crmkit.schemas import MessageIn
from crmkit.triggers.query import HOLDOUT_BUCKETS, TriggerQuery, exists_where, holdout_sql
from crmkit.triggers.spec import (
    MAX_NAME,
    MIN_SAMPLE,
    SOURCE_PREFIX,
    Effectiveness,
    Firing,
    MessageAction,
    RunReport,
    TaskAction,
    Trigger,
    TriggerResult,
)
from crmkit.unit import Transaction, savepoint

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.orm import Session

    from crmkit.customers import Customers
    from crmkit.hooks import Hooks
    from crmkit.lifecycle import Lifecycle
    from crmkit.outbox import Outbox
    from crmkit.plugins import Registry
    from crmkit.tasks import Tasks
    from crmkit.unit import Units

Progress = Callable[[Trigger, TriggerResult], None]
_MOMENT = Moment()
_NAME = Text(max_length=MAX_NAME)
#: Firings are paged by their id (BIGINT), which the cursor holds.
_BY_ID = Filterable(TriggerFiring.__table__.c.id, Int(bits=64), nullable=False)


def _reached_firings(actor: Actor) -> list[ColumnElement[bool]]:
    """The condition that keeps firings to those of customers ``actor`` reaches (none when it reaches all)."""
    reach = customer_scope(actor, Customer.__table__)
    if reach is None:
        return []
    return [TriggerFiring.customer_id.in_(select(Customer.id).where(reach))]


def _aware(moment: dt.datetime, name: str = "as_of") -> dt.datetime:
    """``moment`` (naive: UTC) within the range every stored time keeps to: the windows computed from it
    (cooldowns, goals, days ago) then never overflow a date."""
    return check(_MOMENT, moment, name, f"invalid {name}")


def _iso(moment: dt.datetime) -> str:
    """A datetime as the read model writes it: ISO 8601 in UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def json_safe(value: Any) -> Any:
    """A value computed by the database as the read model gives it: datetimes ISO 8601 in UTC, dates
    ``YYYY-MM-DD``, decimals as strings; numbers, text, booleans and ``None`` as they are."""
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def as_datetime(value: Any) -> dt.datetime | None:
    """An ISO 8601 datetime (naive: UTC) or a date (its midnight in UTC), as an aware datetime, for a
    template that computes with a time of the read model (``{{ (customer.created_at | as_datetime).year }}``)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value) if len(value) > 10 else dt.date.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def as_date(value: Any) -> dt.date | None:
    """An ISO 8601 date (or datetime: its UTC date) as a ``date``, for a template that formats a date of the
    read model (``{{ (customer.birthday | as_date).strftime('%d %B') }}``)."""
    moment = as_datetime(value)
    return None if moment is None else moment.astimezone(dt.UTC).date()


def _days_since(value: Any, as_of: dt.datetime) -> int | None:
    """Whole days from ``value`` (a datetime, a date, or either in ISO 8601) to ``as_of``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) <= 10:
            return (as_of.date() - dt.date.fromisoformat(value)).days
        value = as_datetime(value)
    if isinstance(value, dt.datetime):
        return (as_of - (value if value.tzinfo else value.replace(tzinfo=dt.UTC))).days
    return (as_of.date() - value).days


#: Two moments far apart that a trigger's statement is built for, to see whether it can be built once.
_PROBES = (dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC), dt.datetime(2013, 11, 12, 13, 14, 15, tzinfo=dt.UTC))
#: A firing as the actions get it: id, customer, the contact policy's outcome and send time.
_Firing = tuple[int, int, str | None, dt.datetime | None]


def _tally(rows: Iterable[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Counts by outcome and by reason from rows of (outcome, reason, count)."""
    contacts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for contact, reason, n in rows:
        contacts[contact] = contacts.get(contact, 0) + n
        if reason:
            reasons[reason] = reasons.get(reason, 0) + n
    return contacts, reasons


class Triggers:
    """``crm.triggers``: the declared triggers, their runs and their effectiveness."""

    def __init__(
        self,
        *,
        registry: Registry,
        tables: Mapping[str, Table],
        extension_tables: Mapping[str, Table],
        units: Units,
        hooks: Hooks,
        customers: Customers,
        tasks: Tasks,
        lifecycle: Lifecycle,
        outbox: Outbox,
        access: Access,
        audit: Audit,
        rules: ContactRules,
    ) -> None:
        self._access = access
        self._audit = audit
        self._rules = rules
        self._registry = registry
        self._tables = tables
        self._extension_tables = extension_tables
        self._units = units
        self._hooks = hooks
        self._customers = customers
        self._tasks = tasks
        self._lifecycle = lifecycle
        self._outbox = outbox
        self.env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self.env.filters.update(as_date=as_date, as_datetime=as_datetime)
        self._triggers: dict[str, Trigger] = {}
        # each trigger's statement, built once (see matching); None: built for every as_of
        self._built: dict[str, tuple[Any, TriggerQuery] | None] = {}
        self._compiled: dict[str, jinja2.Template] = {}
        for trigger in registry.triggers.values():
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
        reg = self._registry
        for stage in trigger.stages:
            if stage not in reg.stages:
                raise PluginError(owner, f"trigger {trigger.name!r}: unknown stage {stage!r}")
        if trigger.move_to is not None and trigger.move_to not in reg.stages:
            raise PluginError(owner, f"trigger {trigger.name!r}: cannot move to unknown stage {trigger.move_to!r}")
        if trigger.task is not None and not 0 <= trigger.priority <= 100:
            # a task takes the trigger's priority, and a task's priority is 0 to 100
            raise PluginError(owner, f"trigger {trigger.name!r}: a trigger with a task needs a priority from 0 to 100")
        if trigger.message is not None:
            try:
                MessageIn().fields["channel"].deserialize(trigger.message.channel)
            except FieldError as exc:
                raise PluginError(owner, f"trigger {trigger.name!r}: bad channel: {exc.messages}") from None
            purpose = trigger.message.purpose
            if purpose is not None and purpose not in CONSENT_PURPOSES:
                wanted = ", ".join(CONSENT_PURPOSES)
                raise PluginError(
                    owner, f"trigger {trigger.name!r}: message purpose {purpose!r} is not one of {wanted}"
                )
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
            if trigger.message.refused_task:
                out += [trigger.message.refused_task.title, trigger.message.refused_task.reason]
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
        """The ``SELECT`` of customer ids the trigger would fire for at ``as_of`` (cooldown applied).

        Built once per trigger and run again with the parameters of another ``as_of`` (the building blocks
        of :class:`TriggerQuery` name them), unless the condition bakes a value of its own into the
        statement, such as ``q.as_of`` itself: then it is built for every ``as_of``."""
        trigger = self.get(name)
        as_of = _aware(as_of)
        if name not in self._built:
            self._built[name] = self._build_once(trigger)
        built = self._built[name]
        if built is None:
            return self._select(trigger, self.query(as_of))[0]
        statement, query = built
        return statement.params(query.values(as_of))

    def _build_once(self, trigger: Trigger) -> tuple[Any, TriggerQuery] | None:
        """The trigger's statement for any ``as_of``, or ``None`` when its SQL depends on ``as_of`` in a way
        the parameters do not carry: built for two moments far apart, its SQL and every parameter not
        derived from ``as_of`` must be the same."""
        built = [self._select(trigger, self.query(moment)) for moment in _PROBES]
        dialect = self._units.write_engine.dialect
        compiled = [statement.compile(dialect=dialect) for statement, _ in built]
        fixed = [{k: v for k, v in c.params.items() if not k.startswith("crmkit_")} for c in compiled]
        if str(compiled[0]) != str(compiled[1]) or fixed[0] != fixed[1]:
            return None
        return built[0]

    def _select(self, trigger: Trigger, q: TriggerQuery) -> tuple[Any, TriggerQuery]:
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
        return select(c.c.id.label("customer_id")).select_from(q.from_clause()).where(*where, condition, ~recent), q

    def query(self, as_of: dt.datetime) -> TriggerQuery:
        """The ``q`` conditions are written against, for ``as_of``: to try a condition by hand,
        ``select(q.customer.c.id).select_from(q.from_clause()).where(condition(q))``."""
        return TriggerQuery(
            as_of,
            fields=self._registry.fields,
            tables=self._tables,
            extension_tables=self._extension_tables,
            happened=self._registry.happened,
            zones=self._rules.zones,
        )

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
        self._access.require("triggers:run")
        with self._access.using(self._access.system("triggers")):  # what the run does, it does as automation
            return self._run(as_of, names, dry_run, batch_size, progress)

    def _run(
        self,
        as_of: dt.datetime | None,
        names: Iterable[str] | None,
        dry_run: bool,
        batch_size: int,
        progress: Progress | None,
    ) -> RunReport:
        as_of = _aware(as_of or utcnow())
        triggers = [self.get(n) for n in names] if names is not None else self.all()
        run_id = None
        if not dry_run:
            with self._units.open() as tx:
                started = TriggerRun(as_of=as_of)
                tx.session.add(started)
                tx.session.flush()
                run_id = started.id
        # the more important trigger acts first, so when the contact policy's caps collide its message is
        # the one sent (and the report keeps the declared order)
        ranked = sorted(triggers, key=lambda t: -t.priority)
        if dry_run:
            # only reads: one session for every trigger rather than a transaction each
            with self._units.read() as s:
                done = self._each(ranked, lambda t: self._count(s, t, as_of), progress)
        else:
            done = self._each(ranked, lambda t: self._fire(t, as_of, run_id, batch_size), progress)
        by_name = {r.trigger: r for r in done}
        results = [by_name[t.name] for t in triggers]
        report = RunReport(as_of, dry_run, tuple(results))
        if run_id is not None:
            with self._units.open() as tx:
                finished = tx.session.get(TriggerRun, run_id)
                assert finished is not None
                finished.finished_at = utcnow()
                finished.summary = {
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
        message = trigger.message
        if not matched or message is None or not self._judged(message):
            return TriggerResult(trigger.name, matched=matched)
        # what the contact policy would make of the messages of those who would not be held out
        judgement = self._rules.judge(query.c.customer_id, message.channel, str(message.purpose), as_of)
        contact = outcome(judgement.reason, judgement.send_at, as_of, message.refused_task is not None)
        reason = func.coalesce(judgement.reason, case((contact == "held", self._rules.held_reason())))
        kept = self._kept(trigger, query.c.customer_id)
        counted = select(contact, reason, func.count()).select_from(query).where(kept).group_by(contact, reason)
        rows = session.execute(counted).all()
        contacts, reasons = _tally(rows)
        return TriggerResult(trigger.name, matched=matched, contacts=contacts, contact_reasons=reasons)

    def _judged(self, message: MessageAction) -> bool:
        return self._rules.policy.enabled and message.purpose is not None

    @staticmethod
    def _kept(trigger: Trigger, customer_id: Any) -> Any:
        """Not held out: the firings whose actions run."""
        if not trigger.holdout:
            return true()
        return holdout_sql(trigger.name, customer_id) >= round(trigger.holdout * HOLDOUT_BUCKETS)

    def _judge_firings(self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, run_id: int | None) -> None:
        """The contact policy's decision on each of the trigger's firings of this run, in two statements for
        all of them: why a message may not go (consent, a cap) and when it may (quiet hours), then what
        becomes of it."""
        message = trigger.message
        assert message is not None and message.purpose is not None
        f = TriggerFiring.__table__
        mine = (f.c.run_id == run_id, f.c.trigger == trigger.name, f.c.held_out.is_(False))
        # the customers judged are locked first, in id order, as a staff message locks its one customer:
        # a concurrent sender waits, and then counts this run's messages in the caps
        judged = select(f.c.customer_id).where(*mine)
        c = Customer.__table__
        tx.session.execute(select(c.c.id).where(c.c.id.in_(judged)).order_by(c.c.id).with_for_update()).all()
        judgement = self._rules.judge(f.c.customer_id, message.channel, message.purpose, as_of)
        tx.session.execute(update(f).where(*mine).values(contact_reason=judgement.reason, send_at=judgement.send_at))
        contact = outcome(f.c.contact_reason, f.c.send_at, as_of, message.refused_task is not None)
        held = case((contact == "held", self._rules.held_reason()), else_=f.c.contact_reason)
        tx.session.execute(update(f).where(*mine).values(contact=contact, contact_reason=held))

    def _fire(self, trigger: Trigger, as_of: dt.datetime, run_id: int | None, batch_size: int) -> TriggerResult:
        errors: list[str] = []
        with self._units.open() as tx:
            self._insert_firings(tx, trigger, as_of, run_id)
            counts = dict(
                tx.session.execute(
                    select(TriggerFiring.held_out, func.count())
                    .where(TriggerFiring.run_id == run_id, TriggerFiring.trigger == trigger.name)
                    .group_by(TriggerFiring.held_out)
                ).all()
            )
            contacts: dict[str, int] = {}
            reasons: dict[str, int] = {}
            if counts.get(False) and trigger.message is not None and self._judged(trigger.message):
                self._judge_firings(tx, trigger, as_of, run_id)
                f = TriggerFiring.__table__
                contacts, reasons = _tally(
                    tx.session.execute(
                        select(f.c.contact, f.c.contact_reason, func.count())
                        .where(f.c.run_id == run_id, f.c.trigger == trigger.name, f.c.held_out.is_(False))
                        .group_by(f.c.contact, f.c.contact_reason)
                    ).all()
                )
            if counts:  # the firings are a set-based write: one entry for the trigger's batch
                told: dict[str, Any] = {
                    "run_id": run_id,
                    "fired": counts.get(False, 0),
                    "held_out": counts.get(True, 0),
                }
                if contacts:
                    told["contacts"] = contacts
                self._audit.record(tx, "trigger.fired", "trigger", entity_id=trigger.name, changes=told)
            last_id = 0
            while self._has_actions(trigger):
                batch = tx.session.execute(
                    select(TriggerFiring.id, TriggerFiring.customer_id, TriggerFiring.contact, TriggerFiring.send_at)
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
                errors.extend(
                    self._act_isolated(
                        tx, trigger, as_of, run_id, [(r.id, r.customer_id, r.contact, r.send_at) for r in batch]
                    )
                )
        fired = counts.get(False, 0) - len(errors)
        return TriggerResult(
            trigger.name,
            matched=fired + counts.get(True, 0) + len(errors),
            fired=fired,
            held_out=counts.get(True, 0),
            failed=len(errors),
            errors=tuple(errors),
            contacts=contacts,
            contact_reasons=reasons,
        )

    def _has_actions(self, trigger: Trigger) -> bool:
        """Whether firings need any per-customer work (without it, recording them is all there is to do)."""
        listening = self._hooks.implemented("trigger_fired")
        return listening or any((trigger.task, trigger.move_to, trigger.message, trigger.call))

    def _insert_firings(self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, run_id: int | None) -> None:
        matches = self.matching(trigger.name, as_of).subquery()
        window_key = self._window(trigger, as_of)
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
        self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, run_id: int | None, firings: list[_Firing]
    ) -> list[str]:
        """Act on a batch in one savepoint; if that fails, retry one firing per savepoint so only the
        failing ones are rolled back (and their firing rows deleted, so they may fire again later)."""
        try:
            with savepoint(tx):
                self._act(tx, trigger, as_of, run_id, firings)
            return []
        except Exception:
            if len(firings) == 1:
                return self._drop(tx, firings[0], trigger)
        errors: list[str] = []
        for firing in firings:
            try:
                with savepoint(tx):
                    self._act(tx, trigger, as_of, run_id, [firing])
            except Exception:
                errors.extend(self._drop(tx, firing, trigger))
        return errors

    def _drop(self, tx: Transaction, firing: _Firing, trigger: Trigger) -> list[str]:
        exc = sys.exc_info()[1]
        tx.session.execute(delete(TriggerFiring).where(TriggerFiring.id == firing[0]))
        return [f"customer {firing[1]}: {type(exc).__name__}: {exc}"]

    def _act(
        self,
        tx: Transaction,
        trigger: Trigger,
        as_of: dt.datetime,
        run_id: int | None,
        firings: list[_Firing],
    ) -> None:
        """The trigger's actions for a batch of firings, through the public services (validated, set-based)."""
        ids = [f[1] for f in firings]
        decided = {f[0]: (f[2], f[3]) for f in firings}  # the contact policy's outcome and send time
        records = self._customers.get_many(ids, tx=tx)
        evidence = self._evidence(tx.session, trigger, as_of, ids)
        at = _iso(as_of)
        window = self._window(trigger, as_of)
        goal_until = _iso(as_of + trigger.goal.window) if trigger.goal else None
        items: list[Firing] = [
            {
                "id": fid,
                "trigger": trigger.name,
                "customer_id": cid,
                "run_id": run_id,
                "as_of": at,
                "window": window,
                "held_out": False,
                "goal_until": goal_until,
                "customer": records[cid],
                "evidence": evidence.get(cid, {}),
            }
            for fid, cid, *_ in firings
        ]
        contexts = [self._context(f, as_of) for f in items]  # rendered by the task and the message alike
        source = SOURCE_PREFIX + trigger.name
        both = list(zip(items, contexts, strict=True))
        if trigger.task is not None:
            self._create_tasks(tx, trigger, trigger.task, as_of, both)
        if trigger.move_to is not None:
            self._move(tx, trigger, as_of, ids)
        if trigger.message is not None:
            message = trigger.message
            # the messages the contact policy lets go (all of them when it does not judge this one)
            going = [(f, ctx) for f, ctx in both if decided[f["id"]][0] in (None, "sent", "held")]
            # delivered once the run's transaction commits (only these messages: see Outbox.enqueue_many)
            self._outbox.enqueue_many(
                [
                    {
                        "channel": message.channel,
                        "customer_id": f["customer_id"],
                        "subject": self._render(message.subject, ctx) or None,
                        "body": self._render(message.body, ctx),
                        "source": source,
                        "source_id": str(f["id"]),
                        "purpose": message.purpose,
                    }
                    for f, ctx in going
                ],
                due_at=[decided[f["id"]][1] or as_of for f, _ in going],
                not_before=[decided[f["id"]][1] if decided[f["id"]][0] == "held" else None for f, _ in going],
                tx=tx,
            )
            refused = [(f, ctx) for f, ctx in both if decided[f["id"]][0] == "task"]
            if message.refused_task is not None and refused:
                self._create_tasks(tx, trigger, message.refused_task, as_of, refused)
        if trigger.call is not None:
            for f in items:
                trigger.call(tx, f)
        self._hooks.trigger_fired(tx, trigger, items)
        tx.session.flush()

    def _create_tasks(
        self,
        tx: Transaction,
        trigger: Trigger,
        task: TaskAction,
        as_of: dt.datetime,
        firings: list[tuple[Firing, dict[str, Any]]],
    ) -> None:
        source = SOURCE_PREFIX + trigger.name
        self._tasks.create_many(
            [
                {
                    "title": self._render(task.title, ctx)[:300],
                    "reason": self._render(task.reason, ctx) or None,
                    "customer_id": f["customer_id"],
                    "assignee_id": task.assignee_id or f["customer"].get("owner_id"),
                    "due_at": as_of + task.due_in,
                    "priority": trigger.priority,
                    "source": source,
                    "source_id": str(f["id"]),
                }
                for f, ctx in firings
            ],
            tx=tx,
        )

    def _move(self, tx: Transaction, trigger: Trigger, as_of: dt.datetime, ids: list[int]) -> None:
        """Move the customers whose stage has a forward transition to the target; leave the others alone."""
        target = trigger.move_to
        assert target is not None
        lifecycle = self._lifecycle
        sources = [s for (s, t), spec in lifecycle.transitions.items() if t == target and not spec.requires_reason]
        if sources:
            lifecycle.move_many(ids, target, cause=f"trigger {trigger.name}", at=as_of, from_stages=sources, tx=tx)

    @staticmethod
    def _window(trigger: Trigger, as_of: dt.datetime) -> int:
        """The cooldown window of ``as_of``: part of a firing's unique key."""
        return int(as_of.timestamp() // trigger.cooldown.total_seconds())

    def _evidence(
        self, session: Any, trigger: Trigger, as_of: dt.datetime, ids: list[int]
    ) -> dict[int, dict[str, Any]]:
        if not trigger.evidence:
            return {}
        q = self.query(as_of)
        columns = [build(q).label(name) for name, build in trigger.evidence.items()]
        query = select(q.customer.c.id, *columns).select_from(q.from_clause()).where(q.customer.c.id.in_(ids))
        out = {}
        for row in session.execute(query).mappings():
            values = {name: json_safe(value) for name, value in row.items()}
            out[values.pop("id")] = values
        return out

    @staticmethod
    def _context(firing: Firing, as_of: dt.datetime) -> dict[str, Any]:
        """What a template sees: the firing's JSON-safe values (the ``as_date`` and ``as_datetime`` filters
        turn its ISO strings back into dates and times to format or compute with)."""
        return {
            "customer": firing["customer"],
            **firing["evidence"],
            "evidence": firing["evidence"],
            "as_of": firing["as_of"],
            "trigger": firing["trigger"],
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
        self,
        *,
        names: Iterable[str] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        min_sample: int = MIN_SAMPLE,
        by_action: bool = False,
    ) -> list[Effectiveness]:
        """Per trigger with a goal: firings and conversions of the contacted and of the held-out group, the
        uplift with its 95% interval, and "not enough data" below ``min_sample`` firings in either group.

        A firing converts when the customer has a goal activity after the firing and within the goal's
        window. With ``by_action``, a trigger whose message the contact policy judged has a row per outcome
        too (``message sent``, ``held``, ``dropped``, ``task``), each against the same control group: the
        firings whose message was dropped were not contacted either. Computed by the database, one
        statement per trigger, over the firings of the customers the acting user reaches.
        """
        if not isinstance(min_sample, int) or isinstance(min_sample, bool) or min_sample < 1:
            raise ValidationError({"min_sample": ["must be a whole number of 1 or more"]}, "invalid effectiveness")
        reached = _reached_firings(self._access.require("reports:run"))
        wanted = [self.get(n) for n in names] if names is not None else self.all()
        out = []
        with self._units.read() as s:
            for trigger in wanted:
                if trigger.goal is None:
                    continue
                converted = exists().where(
                    Activity.customer_id == TriggerFiring.customer_id,
                    Activity.kind.in_(list(trigger.goal.kinds)),
                    Activity.status.in_(self._registry.happened),
                    Activity.occurred_at > TriggerFiring.as_of,
                    Activity.occurred_at <= TriggerFiring.goal_until,
                )
                query = select(
                    TriggerFiring.held_out,
                    TriggerFiring.contact,
                    func.count(),
                    func.coalesce(func.sum(case((converted, 1), else_=0)), 0),
                ).where(TriggerFiring.trigger == trigger.name, *reached)
                if since is not None:
                    query = query.where(TriggerFiring.as_of >= literal(_aware(since, "since"), UTCDateTime()))
                if until is not None:
                    query = query.where(TriggerFiring.as_of < literal(_aware(until, "until"), UTCDateTime()))
                grouped = s.execute(query.group_by(TriggerFiring.held_out, TriggerFiring.contact)).all()
                contacted: dict[str | None, tuple[int, int]] = {}
                held = held_conv = 0
                for held_out, contact, n, c in grouped:
                    if held_out:
                        held, held_conv = held + n, held_conv + int(c)
                    else:
                        before = contacted.get(contact, (0, 0))
                        contacted[contact] = (before[0] + n, before[1] + int(c))
                fired = sum(n for n, _ in contacted.values())
                conv = sum(c for _, c in contacted.values())
                out.append(Effectiveness(trigger.name, fired, conv, held, held_conv, min_sample=min_sample))
                if by_action:
                    for contact in ("sent", "held", "task", "dropped"):
                        if contact in contacted:
                            n, c = contacted[contact]
                            action = f"message {contact}"
                            out.append(Effectiveness(trigger.name, n, c, held, held_conv, action, min_sample))
        return out

    # -- firings ---------------------------------------------------------------------------------------

    def firings(
        self,
        name: str | None = None,
        *,
        run_id: int | None = None,
        held_out: bool | None = None,
        since: dt.datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        tx: Transaction | None = None,
    ) -> Page:
        """Whom the triggers fired for or held out, oldest firing first, a page at a time.

        Filters: the trigger's ``name``, the run (``run_id``), the control group only (``held_out=True``)
        or the contacted only (``False``), and firings at or after ``since`` (their ``as_of``). ``after`` is
        the ``next_cursor`` of the previous page (keyset pagination on the firing id: a page is one indexed
        statement however deep it is). Each row is a JSON-safe dict: ``id``, ``trigger``, ``customer_id``,
        ``run_id``, ``as_of``, ``window`` (the cooldown window the firing took), ``held_out``, ``goal_until``
        (the end of the goal's window, ``None`` without a goal) and ``converted`` (whether a goal activity
        came in that window; ``None`` when the trigger has no goal or is no longer declared). Firings that
        failed were rolled back and are not listed, nor are the firings of customers the acting user does
        not reach.
        """
        conditions = _reached_firings(self._access.require("reports:run", tx))
        if name is not None:
            conditions.append(TriggerFiring.trigger == check(_NAME, name, "name", "invalid filter"))
        if run_id is not None:
            wanted = id_filter(run_id, "run")
            if wanted is None:
                return Page([], None)
            conditions.append(TriggerFiring.run_id == wanted)
        if held_out is not None:
            if not isinstance(held_out, bool):
                problem = f"must be true, false or None, got {held_out!r}"
                raise ValidationError({"held_out": [problem]}, "invalid filter")
            conditions.append(TriggerFiring.held_out.is_(held_out))
        if since is not None:
            conditions.append(TriggerFiring.as_of >= literal(_aware(since, "since"), UTCDateTime()))
        if after is not None:
            _, last_id = decode_cursor(after, "id", _BY_ID, id_bits=64)
            conditions.append(TriggerFiring.id > last_id)
        size = check_limit(limit)
        query = (
            select(
                TriggerFiring.id,
                TriggerFiring.trigger,
                TriggerFiring.customer_id,
                TriggerFiring.run_id,
                TriggerFiring.as_of,
                TriggerFiring.window_key,
                TriggerFiring.held_out,
                TriggerFiring.goal_until,
                self._converted(name).label("converted"),
            )
            .where(*conditions)
            .order_by(TriggerFiring.id)
            .limit(size + 1)
        )
        with self._units.read(tx) as session:
            rows = session.execute(query).all()
        items = [
            {
                "id": r.id,
                "trigger": r.trigger,
                "customer_id": r.customer_id,
                "run_id": r.run_id,
                "as_of": _iso(r.as_of),
                "window": r.window_key,
                "held_out": bool(r.held_out),
                "goal_until": None if r.goal_until is None else _iso(r.goal_until),
                "converted": None if r.converted is None else bool(r.converted),
            }
            for r in rows[:size]
        ]
        last = items[-1]["id"] if len(rows) > size else None
        return Page(items, None if last is None else encode_cursor("id", last, last))

    def _converted(self, name: str | None) -> ColumnElement[Any]:
        """Per firing, whether a goal activity came after it and within the goal's window: each declared
        trigger with a goal has its own kinds, so one ``CASE`` branch per trigger (only the firing's runs)."""
        branches = []
        for trigger in self._triggers.values():
            if trigger.goal is None or (name is not None and trigger.name != name):
                continue
            reached = exists_where(
                Activity.customer_id == TriggerFiring.customer_id,
                Activity.kind.in_(list(trigger.goal.kinds)),
                Activity.status.in_(self._registry.happened),
                Activity.occurred_at > TriggerFiring.as_of,
                Activity.occurred_at <= TriggerFiring.goal_until,
            )
            branches.append((TriggerFiring.trigger == trigger.name, case((reached, True), else_=False)))
        return case(*branches, else_=null()) if branches else null()
