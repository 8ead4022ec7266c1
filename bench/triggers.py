"""Fitness trigger evaluation: crmkit's dry run against the same conditions written by hand as plain SQL, and
against the per-customer ORM loop a developer might write without a trigger engine.

The hand SQL is what an expert would write straight against the tables: one ``SELECT COUNT(*)`` per
trigger, the club's configuration as parameters, correlated ``EXISTS`` on the indexes except where a handful
of rows qualify on their own (freezes or memberships ending, low balances), which one ``IN`` finds in a
single pass, and both windows of the frequency drop counted in one pass over the visits. It keeps every rule
of the engine so the results can be compared: the stage filter matches the stage or the lifecycle, a
customer who fired within the cooldown is left out, and every window is relative to ``as_of`` with the
same open and closed ends. The fitness plugin builds the same shapes, so both sides run the same plans; the
difference left is crmkit building and compiling its statements in Python.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import attrs
from crmkit_fitness.config import FitnessConfig, config_of
from crmkit_fitness.models import Membership
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from bench import shapes
from bench.common import Workload
from crmkit import CRM
from crmkit.db.models import Activity, Customer, StageHistory, TriggerFiring

PREFIX = "fitness."
DAY = dt.timedelta(days=1)


def trigger_workloads(crm: CRM, as_of: dt.datetime, *, sample: int = 10_000) -> list[Workload]:
    """crmkit's dry run of every fitness trigger against hand SQL, and against an ORM loop over ``sample``
    customers scaled to all of them."""
    names = fitness_triggers(crm)
    hand = HandSQL(crm, as_of)
    ids = sample_ids(crm, sample)
    with crm.session() as s:
        total = s.scalar(select(func.count()).select_from(Customer)) or 0
    loop = OrmLoop(crm, as_of)

    def dry_run() -> dict[str, int]:
        return crmkit_counts(crm, as_of, names)

    return [
        Workload(f"fitness triggers ({len(names)})", crmkit=dry_run, baseline=hand.counts),
        Workload(
            "per-customer ORM loop",
            crmkit=dry_run,
            baseline=lambda: loop.counts(ids),
            # the loop sees a sample, so only this much can be checked here; check_loop_agrees() compares the
            # two customer by customer
            same=_within,
            baseline_kind="per-customer ORM loop (sampled, scaled)",
            baseline_scale=total / max(len(ids), 1),
        ),
    ]


def check_sql_agrees(crm: CRM, as_of: dt.datetime) -> dict[str, tuple[int, int]]:
    """Every fitness trigger matches the same customers through crmkit and through the hand SQL, and
    matches someone. Returns the matches per trigger, (crmkit, hand SQL)."""
    hand = HandSQL(crm, as_of)
    found = {name: (crmkit_matches(crm, as_of, name), hand.matches(name)) for name in fitness_triggers(crm)}
    _raise_on([_diff(name, ours, theirs) for name, (ours, theirs) in found.items()], "hand SQL")
    return _nonempty(found, "hand SQL")


def check_loop_agrees(crm: CRM, as_of: dt.datetime, customer_ids: Sequence[int]) -> dict[str, tuple[int, int]]:
    """For ``customer_ids``, the ORM loop matches the same customers per trigger as crmkit, and every
    trigger matches someone among them. Returns the matches per trigger, (crmkit, ORM loop)."""
    wanted = set(customer_ids)
    loop = OrmLoop(crm, as_of).matches(customer_ids)
    found = {name: (crmkit_matches(crm, as_of, name) & wanted, loop[name]) for name in fitness_triggers(crm)}
    _raise_on([_diff(name, ours, theirs) for name, (ours, theirs) in found.items()], "ORM loop")
    return _nonempty(found, "ORM loop")


def _nonempty(found: dict[str, tuple[set[int], set[int]]], other: str) -> dict[str, tuple[int, int]]:
    counts = {name: (len(ours), len(theirs)) for name, (ours, theirs) in found.items()}
    if not counts:
        raise AssertionError("no fitness trigger to compare: is the fitness plugin loaded?")
    empty = [name for name, (ours, theirs) in counts.items() if not ours or not theirs]
    if empty:
        raise AssertionError(
            f"crmkit and the {other} match nobody for {', '.join(empty)}: comparing two empty sets proves"
            " nothing; the data must give every trigger someone to match (see bench/shapes.py)"
        )
    return counts


def _within(everyone: dict[str, int], sampled: dict[str, int]) -> bool:
    """The same triggers, and no more matches among the sampled customers than among all of them."""
    return everyone.keys() == sampled.keys() and all(sampled[name] <= everyone[name] for name in everyone)


def _diff(name: str, crmkit: set[int], other: set[int]) -> str:
    if crmkit == other:
        return ""
    only_crmkit, only_other = sorted(crmkit - other), sorted(other - crmkit)
    return f"{name}: only crmkit {_some(only_crmkit)}, only the other {_some(only_other)}"


def _some(ids: list[int]) -> str:
    return f"{len(ids)} {ids[:20]}{'...' if len(ids) > 20 else ''}"


def _raise_on(diffs: list[str], other: str) -> None:
    found = [d for d in diffs if d]
    if found:
        raise AssertionError(f"crmkit and the {other} disagree:\n  " + "\n  ".join(found))


# -- crmkit ---------------------------------------------------------------------------------------------


def fitness_triggers(crm: CRM) -> list[str]:
    """The fitness plugin's triggers, in the engine's order (highest priority first)."""
    return [t.name for t in crm.triggers.all() if t.name.startswith(PREFIX)]


def crmkit_counts(crm: CRM, as_of: dt.datetime, names: Sequence[str]) -> dict[str, int]:
    report = crm.triggers.run(as_of, names=names, dry_run=True)
    return {r.trigger: r.matched for r in report.results}


def crmkit_matches(crm: CRM, as_of: dt.datetime, name: str) -> set[int]:
    with crm.session() as s:
        return set(s.scalars(crm.triggers.matching(name, as_of)))


def sample_ids(crm: CRM, sample: int) -> list[int]:
    """``sample`` customer ids evenly spaced over all of them (all when there are fewer): deterministic, and
    spread over the whole club, old members and new; plus every member shaped to meet a trigger, so the
    loop has a match of every trigger to agree on (they cost the loop what any customer costs)."""
    with crm.session() as s:
        ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
    if sample >= len(ids):
        return ids
    spread = {ids[i * len(ids) // sample] for i in range(sample)}
    return sorted(spread | set(shapes.ids(crm)))


def fitness_config(crm: CRM) -> FitnessConfig:
    return config_of(crm)


# -- hand-written SQL -----------------------------------------------------------------------------------

#: The customer's done check-ins up to ``as_of``; each use adds the start of its window.
CHECKIN = "a.customer_id = c.id AND a.kind = 'checkin' AND a.status = 'done'"
NOT_CANCELLED = "m.status <> 'cancelled'"
#: A member: the core's active lifecycle, and loyal.
MEMBERS = ("active", "loyal")
#: The membership row is in use: active, or frozen with a freeze that has already ended.
IN_FORCE = "(m.status = 'active' OR (m.status = 'frozen' AND m.frozen_until < :today))"
#: Where the customer came from into the current stage (the last row of the append-only history).
CAME_FROM = "(SELECT h.from_stage FROM crm_stage_history h WHERE h.customer_id = c.id ORDER BY h.id DESC LIMIT 1)"
NEW_MEMBER = f"(c.stage = 'adaptation' OR (c.stage = 'at_risk' AND {CAME_FROM} = 'adaptation'))"
COOLDOWN = (
    'NOT EXISTS (SELECT 1 FROM crm_trigger_firings f WHERE f."trigger" = :trigger AND f.customer_id = c.id'
    " AND f.as_of > :cooldown_from AND f.as_of < :cooldown_to)"
)


def _visited_since(start: str) -> str:
    return f"EXISTS (SELECT 1 FROM crm_activities a WHERE {CHECKIN} AND {_window(start)})"


def _visits(start: str) -> str:
    return f"(SELECT COUNT(*) FROM crm_activities a WHERE {CHECKIN} AND {_window(start)})"


def _window(start: str) -> str:
    """``(start, as_of]``: a check-in exactly at the start of a window is outside it, one at ``as_of`` inside."""
    return f"a.occurred_at > :{start} AND a.occurred_at <= :now"


def _membership(*conditions: str) -> str:
    return f"EXISTS (SELECT 1 FROM fitness_memberships m WHERE m.customer_id = c.id AND {' AND '.join(conditions)})"


def _member_for(day: str) -> str:
    """A member for a while: a membership in force today, and one not cancelled that covered ``day``."""
    today = _membership(IN_FORCE, "m.starts_on <= :today", "m.ends_on >= :today")
    then = _membership(NOT_CANCELLED, f"m.starts_on <= :{day}", f"m.ends_on >= :{day}")
    return f"{today} AND {then}"


def _among(*conditions: str) -> str:
    """The customer has such a membership, found in one pass over the memberships: for conditions few rows
    meet, where a correlated EXISTS would search once per customer (SQLite runs it as written)."""
    return f"c.id IN (SELECT m.customer_id FROM fitness_memberships m WHERE {' AND '.join(conditions)})"


def _in_stages(*stages: str) -> str:
    # the engine's filter: a core stage names its sub-stages too, through their lifecycle
    names = ", ".join(f"'{s}'" for s in stages)
    return f"(c.stage IN ({names}) OR c.lifecycle IN ({names}))"


@attrs.frozen
class HandTrigger:
    """One trigger as SQL over the customers ``c``: its conditions, ANDed, and its cooldown."""

    where: tuple[str, ...]
    cooldown_days: int
    join: str = ""

    def sql(self, columns: str) -> str:
        return f"SELECT {columns} FROM crm_customers c{self.join} WHERE " + " AND ".join((*self.where, COOLDOWN))


def hand_triggers(config: FitnessConfig, birthday: str) -> dict[str, HandTrigger]:
    """The fitness triggers. SQLite tests the conditions in the order written, so the stage comes first, then
    the customer's own columns, then the subqueries, the one that rules out most customers first.
    ``birthday`` is the dialect's ``'MM-DD'`` of ``c.birthday``."""
    c = config
    valid = _membership(NOT_CANCELLED, "m.starts_on <= :today", "m.ends_on >= :today")
    birthdays = ", ".join(f":birthday_{i}" for i in range(c.birthday_days + 1))
    return {
        "fitness.stage_joined": HandTrigger((_in_stages("lead", "trial"), valid), 1),
        "fitness.stage_adapted": HandTrigger(
            (
                _in_stages("adaptation"),
                "c.stage_changed_at <= :adaptation_from",
                f"{_visits('adaptation_from')} >= :adaptation_visits",
            ),
            1,
        ),
        "fitness.stage_at_risk": HandTrigger(
            (
                _in_stages("adaptation", "active", "loyal"),
                "((c.stage = 'adaptation' AND c.stage_changed_at <= :adaptation_absent_from"
                f" AND NOT {_visited_since('adaptation_absent_from')})"
                " OR (c.stage IN ('active', 'loyal') AND c.stage_changed_at <= :active_absent_from"
                f" AND NOT {_visited_since('active_absent_from')}))",
            ),
            1,
        ),
        "fitness.stage_recovered": HandTrigger((_in_stages("at_risk"), _visited_since("week_ago")), 1),
        "fitness.stage_lapsed": HandTrigger(
            (
                _in_stages(*MEMBERS),
                "(c.stage = 'at_risk' OR c.stage_changed_at <= :lapsed_from)",
                f"NOT {_membership(NOT_CANCELLED, 'm.ends_on >= :today')}",
                f"NOT {_visited_since('lapsed_from')}",
            ),
            1,
        ),
        "fitness.trial_no_purchase": HandTrigger(
            (
                _in_stages("lead"),
                "fc.trial_ends_on < :today",
                "NOT EXISTS (SELECT 1 FROM fitness_memberships m WHERE m.customer_id = c.id)",
            ),
            30,
            join=" JOIN fitness_customer fc ON fc.customer_id = c.id",
        ),
        "fitness.membership_expiring": HandTrigger(
            (
                _in_stages(*MEMBERS),
                _among(IN_FORCE, "m.ends_on >= :today", "m.ends_on <= :expiring_until"),
                f"NOT {_membership(NOT_CANCELLED, 'm.ends_on > :expiring_until')}",
            ),
            c.expiring_days,
        ),
        "fitness.sessions_low": HandTrigger(
            (
                _in_stages(*MEMBERS),
                _among("m.sessions_left <= :low_balance", IN_FORCE, "m.starts_on <= :today", "m.ends_on >= :today"),
                f"(SELECT m.sessions_left FROM fitness_memberships m WHERE m.customer_id = c.id AND {IN_FORCE}"
                " AND m.starts_on <= :today AND m.ends_on >= :today ORDER BY m.ends_on DESC LIMIT 1) <= :low_balance",
                f"NOT {_membership(NOT_CANCELLED, 'm.starts_on > :today')}",
            ),
            14,
        ),
        "fitness.adaptation_absent": HandTrigger(
            (
                _in_stages("adaptation", "at_risk"),
                f"NOT {_visited_since('adaptation_absent_from')}",
                _member_for("adaptation_absent_day"),
                NEW_MEMBER,
            ),
            c.adaptation_absent_days,
        ),
        "fitness.active_absent": HandTrigger(
            (
                _in_stages(*MEMBERS),
                f"NOT {_visited_since('active_absent_from')}",
                _member_for("active_absent_day"),
                f"NOT {NEW_MEMBER}",
            ),
            c.active_absent_days,
        ),
        "fitness.frequency_drop": HandTrigger(
            (
                _in_stages(*MEMBERS),
                # both windows in one pass; recent <= share * baseline * recent_days / baseline_days, in integers
                "(SELECT COUNT(*) FILTER (WHERE a.occurred_at <= :recent_from) > 0"
                " AND COUNT(*) FILTER (WHERE a.occurred_at > :recent_from) * :recent_factor"
                " <= COUNT(*) FILTER (WHERE a.occurred_at <= :recent_from) * :baseline_factor"
                f" FROM crm_activities a WHERE {CHECKIN} AND {_window('baseline_from')})",
                valid,
            ),
            14,
        ),
        "fitness.freeze_ending": HandTrigger(
            (_among("m.status = 'frozen'", "m.frozen_until >= :today", "m.frozen_until <= :freeze_until"),), 7
        ),
        "fitness.birthday": HandTrigger((_in_stages(*MEMBERS, "lead"), f"{birthday} IN ({birthdays})"), 300),
    }


#: ``'MM-DD'`` of the birthday, per dialect.
BIRTHDAY = {"sqlite": "strftime('%m-%d', c.birthday)", "postgresql": "to_char(c.birthday, 'MM-DD')"}


class HandSQL:
    """The hand-written triggers of a club at ``as_of``, run through the driver's own connection."""

    def __init__(self, crm: CRM, as_of: dt.datetime) -> None:
        self.crm = crm
        self.dialect = crm.engine.dialect.name
        if self.dialect not in BIRTHDAY:
            raise ValueError(f"no hand SQL for {self.dialect}")
        config = fitness_config(crm)
        self.as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
        self.triggers = hand_triggers(config, BIRTHDAY[self.dialect])
        self.params = self._params(config)
        self.count_sql = {name: self._driver(t.sql("COUNT(*)")) for name, t in self.triggers.items()}
        self.ids_sql = {name: self._driver(t.sql("c.id")) for name, t in self.triggers.items()}

    def counts(self) -> dict[str, int]:
        with self.crm.engine.connect() as conn:
            return {
                name: conn.exec_driver_sql(sql, self._for(name)).scalar_one() for name, sql in self.count_sql.items()
            }

    def matches(self, name: str) -> set[int]:
        with self.crm.engine.connect() as conn:
            return set(conn.exec_driver_sql(self.ids_sql[name], self._for(name)).scalars())

    def _for(self, name: str) -> dict[str, Any]:
        cooldown = self.triggers[name].cooldown_days * DAY
        return {
            **self.params,
            "trigger": name,
            "cooldown_from": self._moment(self.as_of - cooldown),
            "cooldown_to": self._moment(self.as_of + cooldown),
        }

    def _params(self, c: FitnessConfig) -> dict[str, Any]:
        today = self.as_of.date()
        share = Fraction(str(c.frequency_drop_share))
        birthdays = [(today + i * DAY).strftime("%m-%d") for i in range(c.birthday_days + 1)]
        days_ago = {
            "adaptation_from": c.adaptation_days,
            "adaptation_absent_from": c.adaptation_absent_days,
            "active_absent_from": c.active_absent_days,
            "week_ago": 7,
            "lapsed_from": c.lapsed_days,
            "recent_from": c.frequency_recent_days,
            "baseline_from": c.frequency_recent_days + c.frequency_baseline_days,
        }
        return {
            "now": self._moment(self.as_of),
            **{key: self._moment(self.as_of - days * DAY) for key, days in days_ago.items()},
            "today": self._date(today),
            "adaptation_absent_day": self._date(today - c.adaptation_absent_days * DAY),
            "active_absent_day": self._date(today - c.active_absent_days * DAY),
            "expiring_until": self._date(today + c.expiring_days * DAY),
            "freeze_until": self._date(today + c.freeze_ending_days * DAY),
            "adaptation_visits": c.adaptation_visits,
            "low_balance": c.low_balance_sessions,
            "recent_factor": c.frequency_baseline_days * share.denominator,
            "baseline_factor": c.frequency_recent_days * share.numerator,
            **{f"birthday_{i}": day for i, day in enumerate(birthdays)},
        }

    def _moment(self, moment: dt.datetime) -> Any:
        # crmkit stores naive UTC; SQLite compares the text SQLAlchemy wrote, so the bound value must match it
        naive = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.dialect == "sqlite" else naive

    def _date(self, day: dt.date) -> Any:
        return day.isoformat() if self.dialect == "sqlite" else day

    def _driver(self, sql: str) -> str:
        """``:name`` parameters as the driver wants them: sqlite3 takes them as is, psycopg as ``%(name)s``."""
        if self.dialect == "sqlite":
            return sql
        return re.sub(r"(?<![:\w]):([a-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


# -- the per-customer ORM loop ----------------------------------------------------------------------------


@attrs.frozen
class Loaded:
    """What the loop loads for one customer."""

    customer: Customer
    trial_ends_on: dt.date | None
    memberships: list[Membership]
    visits: list[dt.datetime]
    came_from: str | None
    firings: list[TriggerFiring]


Rule = Callable[[Loaded], bool]


class OrmLoop:
    """The loop a developer writes without a trigger engine: load each customer with the ORM, decide in
    Python. Its rules restate the plugin's, SQL's NULL included where it decides (see ``_new_member``)."""

    def __init__(self, crm: CRM, as_of: dt.datetime) -> None:
        self.crm = crm
        self.as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
        self.today = self.as_of.date()
        self.config = fitness_config(crm)
        self.rules = self._rules(self.config)

    def counts(self, customer_ids: Sequence[int]) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.matches(customer_ids).items()}

    def matches(self, customer_ids: Sequence[int]) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {name: set() for name in self.rules}
        extension = self.crm.extension_tables["fitness"]
        with self.crm.session() as s:
            for cid in customer_ids:
                loaded = self._load(s, extension, cid)
                for name, (stages, cooldown, rule) in self.rules.items():
                    if self._eligible(loaded, name, stages, cooldown) and rule(loaded):
                        found[name].add(cid)
                s.expunge_all()  # one customer at a time: the session's identity map would hold the whole club
        return found

    def _load(self, s: Session, extension: Table, cid: int) -> Loaded:
        customer = s.get(Customer, cid)
        assert customer is not None
        trial_ends_on = s.scalar(select(extension.c.trial_ends_on).where(extension.c.customer_id == cid))
        memberships = s.scalars(select(Membership).where(Membership.customer_id == cid)).all()
        checkins = s.scalars(select(Activity).where(Activity.customer_id == cid, Activity.kind == "checkin")).all()
        history = s.scalars(select(StageHistory).where(StageHistory.customer_id == cid).order_by(StageHistory.id))
        last_move = history.all()[-1:]
        # naming the triggers lets the (trigger, customer, as_of) index find the rows: no full scan per customer
        firings = s.scalars(
            select(TriggerFiring).where(TriggerFiring.trigger.in_(list(self.rules)), TriggerFiring.customer_id == cid)
        ).all()
        return Loaded(
            customer=customer,
            trial_ends_on=trial_ends_on,
            memberships=list(memberships),
            visits=[a.occurred_at for a in checkins if a.status == "done"],
            came_from=last_move[0].from_stage if last_move else None,
            firings=list(firings),
        )

    def _eligible(self, loaded: Loaded, name: str, stages: tuple[str, ...], cooldown: int) -> bool:
        c = loaded.customer
        if stages and c.stage not in stages and c.lifecycle not in stages:
            return False
        window = cooldown * DAY
        return not any(
            f.trigger == name and self.as_of - window < f.as_of < self.as_of + window for f in loaded.firings
        )

    # -- the rules, in Python -----------------------------------------------------------------------------

    def _visits(self, loaded: Loaded, days: int, until_days: int = 0) -> int:
        start, end = self.as_of - days * DAY, self.as_of - until_days * DAY
        return sum(1 for at in loaded.visits if start < at <= end)

    def _in_force(self, m: Membership) -> bool:
        frozen_over = m.status == "frozen" and m.frozen_until is not None and m.frozen_until < self.today
        return m.status == "active" or frozen_over

    def _valid(self, loaded: Loaded) -> bool:
        return any(m.status != "cancelled" and m.starts_on <= self.today <= m.ends_on for m in loaded.memberships)

    def _member_since(self, loaded: Loaded, days: int) -> bool:
        since = self.today - days * DAY
        ms = loaded.memberships
        return any(self._in_force(m) and m.starts_on <= self.today <= m.ends_on for m in ms) and any(
            m.status != "cancelled" and m.starts_on <= since <= m.ends_on for m in ms
        )

    def _new_member(self, loaded: Loaded) -> bool | None:
        """True, False, or None where SQL's answer is NULL (at risk with no known previous stage): such a
        customer is neither a new member nor not one, and fires neither absence trigger."""
        stage = loaded.customer.stage
        if stage == "adaptation":
            return True
        if stage != "at_risk":
            return False
        return None if loaded.came_from is None else loaded.came_from == "adaptation"

    def _in_stage_since(self, loaded: Loaded, days: int) -> bool:
        return loaded.customer.stage_changed_at <= self.as_of - days * DAY

    def _sessions_left(self, loaded: Loaded) -> int | None:
        current = [
            m for m in loaded.memberships if self._in_force(m) and m.starts_on <= self.today and m.ends_on >= self.today
        ]
        return max(current, key=lambda m: m.ends_on).sessions_left if current else None

    def _rules(self, c: FitnessConfig) -> dict[str, tuple[tuple[str, ...], int, Rule]]:
        """Per trigger: its stages, its cooldown in days, its condition."""
        today = self.today
        share = Fraction(str(c.frequency_drop_share))
        birthdays = {(today + i * DAY).strftime("%m-%d") for i in range(c.birthday_days + 1)}
        expiring_until = today + c.expiring_days * DAY

        def at_risk(x: Loaded) -> bool:
            stage = x.customer.stage
            limit = {
                "adaptation": c.adaptation_absent_days,
                "active": c.active_absent_days,
                "loyal": c.active_absent_days,
            }.get(stage)
            return limit is not None and self._visits(x, limit) == 0 and self._in_stage_since(x, limit)

        def lapsed(x: Loaded) -> bool:
            over = not any(m.status != "cancelled" and m.ends_on >= today for m in x.memberships)
            settled = x.customer.stage == "at_risk" or self._in_stage_since(x, c.lapsed_days)
            return over and self._visits(x, c.lapsed_days) == 0 and settled

        def expiring(x: Loaded) -> bool:
            ms = x.memberships
            ends_soon = any(self._in_force(m) and today <= m.ends_on <= expiring_until for m in ms)
            return ends_soon and not any(m.status != "cancelled" and m.ends_on > expiring_until for m in ms)

        def sessions_low(x: Loaded) -> bool:
            left = self._sessions_left(x)
            bought_ahead = any(m.status != "cancelled" and m.starts_on > today for m in x.memberships)
            return left is not None and left <= c.low_balance_sessions and not bought_ahead

        def frequency_drop(x: Loaded) -> bool:
            recent = self._visits(x, c.frequency_recent_days)
            baseline = self._visits(x, c.frequency_recent_days + c.frequency_baseline_days, c.frequency_recent_days)
            drop = recent * c.frequency_baseline_days * share.denominator <= (
                baseline * c.frequency_recent_days * share.numerator
            )
            return baseline > 0 and drop and self._valid(x)

        def absent(days: int, *, new: bool) -> Rule:
            def rule(x: Loaded) -> bool:
                return self._new_member(x) is new and self._visits(x, days) == 0 and self._member_since(x, days)

            return rule

        def freeze_ending(x: Loaded) -> bool:
            until = today + c.freeze_ending_days * DAY
            ms = x.memberships
            return any(m.status == "frozen" and m.frozen_until and today <= m.frozen_until <= until for m in ms)

        def trial_ended(x: Loaded) -> bool:
            return x.trial_ends_on is not None and x.trial_ends_on < today and not x.memberships

        def birthday(x: Loaded) -> bool:
            return x.customer.birthday is not None and x.customer.birthday.strftime("%m-%d") in birthdays

        return {
            "fitness.stage_joined": (("lead", "trial"), 1, self._valid),
            "fitness.stage_adapted": (
                ("adaptation",),
                1,
                lambda x: (
                    self._in_stage_since(x, c.adaptation_days)
                    and self._visits(x, c.adaptation_days) >= c.adaptation_visits
                ),
            ),
            "fitness.stage_at_risk": (("adaptation", *MEMBERS), 1, at_risk),
            "fitness.stage_recovered": (("at_risk",), 1, lambda x: self._visits(x, 7) > 0),
            "fitness.stage_lapsed": (MEMBERS, 1, lapsed),
            "fitness.trial_no_purchase": (("lead",), 30, trial_ended),
            "fitness.membership_expiring": (MEMBERS, c.expiring_days, expiring),
            "fitness.sessions_low": (MEMBERS, 14, sessions_low),
            "fitness.adaptation_absent": (
                ("adaptation", "at_risk"),
                c.adaptation_absent_days,
                absent(c.adaptation_absent_days, new=True),
            ),
            "fitness.active_absent": (MEMBERS, c.active_absent_days, absent(c.active_absent_days, new=False)),
            "fitness.frequency_drop": (MEMBERS, 14, frequency_drop),
            "fitness.freeze_ending": ((), 7, freeze_ending),
            "fitness.birthday": ((*MEMBERS, "lead"), 300, birthday),
        }
