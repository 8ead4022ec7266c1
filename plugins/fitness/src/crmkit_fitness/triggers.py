"""The fitness retention triggers and the automatic stage moves, built from a club's configuration."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

from sqlalchemy import Table, and_, func, or_, select

from crmkit.db import StageHistory
from crmkit.triggers import Goal, TaskAction, Trigger, TriggerQuery
from crmkit_fitness.config import FitnessConfig
from crmkit_fitness.models import Membership

DAY = dt.timedelta(days=1)
RENEWAL = ("purchase",)
VISIT = ("checkin",)
#: A member: the core's ``active`` lifecycle (adaptation, active, at risk) and ``loyal``, its best members.
MEMBERS = ("active", "loyal")


def _memberships(q: TriggerQuery) -> Any:
    return q.table(Membership.__tablename__)


def in_force(q: TriggerQuery, m: Any) -> Any:
    """The membership row is in use: active, or frozen with a freeze that has already ended (nothing needs
    to flip the status back for the triggers to see the member again)."""
    return or_(m.c.status == "active", and_(m.c.status == "frozen", m.c.frozen_until < q.today()))


def valid_membership(q: TriggerQuery, *, on: Any = None) -> Any:
    """A membership that is not cancelled and covers ``on`` (the as_of date by default)."""
    m = _memberships(q)
    day = on if on is not None else q.today()
    return q.exists(
        m.c.customer_id == q.customer.c.id, m.c.status != "cancelled", m.c.starts_on <= day, m.c.ends_on >= day
    )


def last_visit(q: TriggerQuery) -> Any:
    return q.last(VISIT)


def new_member(q: TriggerQuery) -> Any:
    """In adaptation, or moved from adaptation to ``at_risk`` (by ``fitness.stage_at_risk``, which runs
    before the retention triggers): a new member either way, until they recover or lapse."""
    h = StageHistory.__table__
    c = q.customer.c
    # the history is append-only: its last row is the move into the current stage
    came_from = select(h.c.from_stage).where(h.c.customer_id == c.id).order_by(h.c.id.desc()).limit(1).scalar_subquery()
    return or_(c.stage == "adaptation", and_(c.stage == "at_risk", came_from == "adaptation"))


def sessions_left(q: TriggerQuery) -> Any:
    """Sessions left on the current membership (NULL for unlimited or none)."""
    m = _memberships(q)
    return (
        select(m.c.sessions_left)
        .where(
            m.c.customer_id == q.customer.c.id,
            in_force(q, m),
            m.c.starts_on <= q.today(),
            m.c.ends_on >= q.today(),
        )
        .order_by(m.c.ends_on.desc())
        .limit(1)
        .scalar_subquery()
    )


def frozen_until(q: TriggerQuery) -> Any:
    """The end of the member's freeze that is running or about to end (the earliest still ahead)."""
    from sqlalchemy import func, select

    m = _memberships(q)
    return (
        select(func.min(m.c.frozen_until))
        .where(m.c.customer_id == q.customer.c.id, m.c.status == "frozen", m.c.frozen_until >= q.today())
        .scalar_subquery()
    )


def member_for(q: TriggerQuery, days: int) -> Any:
    """A member for at least ``days``: a membership in force today, and one (the same or an earlier one, not
    cancelled) that covered the day ``days`` ago.

    Which membership it is does not matter, so a member who renews every month is a member for as long as
    they keep renewing. The day ``days`` ago is what makes a newcomer not "absent": someone who joined, or came
    back after a lapse, less than ``days`` ago held no membership then. A gap between two memberships that
    falls on that very day postpones the answer by the length of the gap; a gap elsewhere in the window does
    not matter."""
    m = _memberships(q)
    today = q.exists(
        m.c.customer_id == q.customer.c.id, in_force(q, m), m.c.starts_on <= q.today(), m.c.ends_on >= q.today()
    )
    return and_(today, valid_membership(q, on=q.today(-days * DAY)))


def current_end(q: TriggerQuery) -> Any:
    m = _memberships(q)
    return (
        select(func.max(m.c.ends_on))
        .where(m.c.customer_id == q.customer.c.id, m.c.status != "cancelled", m.c.starts_on <= q.today())
        .scalar_subquery()
    )


def retention_triggers(config: FitnessConfig) -> list[Trigger]:
    c = config
    goal_renewal = Goal(RENEWAL, window=c.goal_window_days * DAY)
    goal_visit = Goal(VISIT, window=c.goal_window_days * DAY)
    evidence = {"last_visit": last_visit}

    def low_balance(q: TriggerQuery) -> Any:
        m = _memberships(q)
        # the next membership is already bought: nothing to renew
        bought_ahead = q.exists(
            m.c.customer_id == q.customer.c.id, m.c.status != "cancelled", m.c.starts_on > q.today()
        )
        # few members run low: one pass over the memberships finds those who might, so the current membership
        # is only looked up for them (the current one being low implies one of them is)
        low_somewhere = q.among(
            select(m.c.customer_id).where(
                m.c.sessions_left <= c.low_balance_sessions,
                in_force(q, m),
                m.c.starts_on <= q.today(),
                m.c.ends_on >= q.today(),
            )
        )
        return and_(low_somewhere, sessions_left(q) <= c.low_balance_sessions, ~bought_ahead)

    def expiring(q: TriggerQuery) -> Any:
        m = _memberships(q)
        # few memberships end within the days: found in one pass, not looked for customer by customer
        ends_soon = q.among(
            select(m.c.customer_id).where(
                in_force(q, m), m.c.ends_on >= q.today(), m.c.ends_on <= q.today(c.expiring_days * DAY)
            )
        )
        renewed = q.exists(
            m.c.customer_id == q.customer.c.id,
            m.c.status != "cancelled",
            m.c.ends_on > q.today(c.expiring_days * DAY),
        )
        return and_(ends_soon, ~renewed)

    def frequency_drop(q: TriggerQuery) -> Any:
        split = q.ago(c.frequency_recent_days * DAY)
        share = Fraction(str(c.frequency_drop_share))

        def dropped(a: Table) -> Any:
            # both windows counted in one pass over the visits: recent after the split, the baseline before it
            recent = func.count().filter(a.c.occurred_at > split)
            baseline = func.count().filter(a.c.occurred_at <= split)
            # recent <= share * baseline * recent_days / baseline_days, in integers so the boundary is exact
            return and_(
                baseline > 0,
                recent * (c.frequency_baseline_days * share.denominator)
                <= baseline * (c.frequency_recent_days * share.numerator),
            )

        window = (c.frequency_recent_days + c.frequency_baseline_days) * DAY
        return and_(q.aggregate(VISIT, window, dropped), valid_membership(q))

    def absent(days: int, *, new: bool) -> Any:
        def condition(q: TriggerQuery) -> Any:
            # a member for at least `days` (so a new joiner is not "absent") who has not come in `days`
            return and_(
                ~q.has(VISIT, within=days * DAY),
                member_for(q, days),
                new_member(q) if new else ~new_member(q),
            )

        return condition

    def freeze_ending(q: TriggerQuery) -> Any:
        m = _memberships(q)
        # a handful of freezes end in the days: found in one pass, not looked for customer by customer
        return q.among(
            select(m.c.customer_id).where(
                m.c.status == "frozen",
                m.c.frozen_until >= q.today(),
                m.c.frozen_until <= q.today(c.freeze_ending_days * DAY),
            )
        )

    def trial_ended(q: TriggerQuery) -> Any:
        m = _memberships(q)
        bought = q.exists(m.c.customer_id == q.customer.c.id)
        return and_(q.field("trial_ends_on") < q.today(), ~bought)

    def task(title: str, reason: str, hours: int = 24) -> TaskAction:
        return TaskAction(title, reason, due_in=dt.timedelta(hours=hours))

    days_ago = (
        "{% if last_visit %}{% set days = days_since(last_visit) %}last visit "
        "{% if days == 0 %}today{% elif days == 1 %}yesterday{% else %}{{ days }} days ago{% endif %}"
        "{% else %}no visit yet{% endif %}"
    )
    return [
        Trigger(
            "fitness.sessions_low",
            label="Few sessions left on the card",
            description=f"{c.low_balance_sessions} or fewer sessions left on the membership",
            stages=MEMBERS,
            condition=low_balance,
            evidence={**evidence, "sessions_left": sessions_left},
            priority=80,
            cooldown=14 * DAY,
            task=task(
                "Renewal call: {{ customer.name }}",
                "{{ customer.name }}: {{ sessions_left }} session{{ '' if sessions_left == 1 else 's' }} left, "
                + days_ago,
            ),
            holdout=c.holdout,
            goal=goal_renewal,
        ),
        Trigger(
            "fitness.membership_expiring",
            label="Membership about to end",
            description=f"Membership ends within {c.expiring_days} days and no renewal is bought",
            stages=MEMBERS,
            condition=expiring,
            evidence={**evidence, "ends_on": current_end},
            priority=85,
            cooldown=c.expiring_days * DAY,
            task=task(
                "Offer renewal: {{ customer.name }}",
                "{{ customer.name }}: membership ends {{ ends_on }}, no renewal yet, " + days_ago,
            ),
            holdout=c.holdout,
            goal=goal_renewal,
        ),
        Trigger(
            "fitness.frequency_drop",
            label="Coming less often",
            description="Visits in the last 2 weeks at or below half the previous 6 weeks' average",
            stages=MEMBERS,
            condition=frequency_drop,
            evidence={**evidence, "recent": lambda q: q.count(VISIT, within=c.frequency_recent_days * DAY)},
            priority=60,
            cooldown=14 * DAY,
            task=task(
                "Check in with {{ customer.name }}",
                "{{ customer.name }}: {{ recent }} visit{{ '' if recent == 1 else 's' }} in the last "
                f"{c.frequency_recent_days} days, down from usual; " + days_ago,
            ),
            holdout=c.holdout,
            goal=goal_visit,
        ),
        Trigger(
            "fitness.adaptation_absent",
            label="Newcomer stopped coming",
            description=f"No visit for {c.adaptation_absent_days} days during the adaptation period",
            stages=("adaptation", "at_risk"),
            condition=absent(c.adaptation_absent_days, new=True),
            evidence=evidence,
            priority=75,
            cooldown=c.adaptation_absent_days * DAY,
            task=task("New member missing: {{ customer.name }}", "{{ customer.name }}: new member, " + days_ago, 8),
            holdout=c.holdout,
            goal=goal_visit,
        ),
        Trigger(
            "fitness.active_absent",
            label="Member stopped coming",
            description=f"No visit for {c.active_absent_days} days",
            stages=MEMBERS,
            condition=absent(c.active_absent_days, new=False),
            evidence=evidence,
            priority=70,
            cooldown=c.active_absent_days * DAY,
            task=task("We miss {{ customer.name }}", "{{ customer.name }}: " + days_ago),
            holdout=c.holdout,
            goal=goal_visit,
        ),
        Trigger(
            "fitness.freeze_ending",
            label="Freeze ends soon",
            description=f"A freeze ends within {c.freeze_ending_days} days",
            condition=freeze_ending,
            evidence={**evidence, "frozen_until": frozen_until},
            priority=50,
            cooldown=7 * DAY,
            task=task(
                "Welcome back soon: {{ customer.name }}",
                "{{ customer.name }}: freeze ends {{ (frozen_until | as_date).strftime('%a %d %b') }};"
                " plan the first session back",
            ),
            holdout=c.holdout,
            goal=goal_visit,
        ),
        Trigger(
            "fitness.birthday",
            label="Birthday",
            description=f"Birthday within {c.birthday_days} days",
            stages=(*MEMBERS, "lead"),
            condition=lambda q: q.birthday_within(c.birthday_days),
            priority=30,
            cooldown=300 * DAY,
            task=task(
                "Congratulate {{ customer.name }}",
                "{% set b = customer.birthday | as_date %}{% set today = as_of | as_date %}{{ customer.name }}:"
                " birthday on {{ b.strftime('%d %B') }}, turns"
                " {{ today.year - b.year + (1 if (b.month, b.day) < (today.month, today.day) else 0) }}",
            ),
            holdout=c.holdout,
            goal=goal_visit,
        ),
        Trigger(
            "fitness.trial_no_purchase",
            label="Trial without a purchase",
            description="The trial ended without a membership purchase",
            stages=("lead",),
            condition=trial_ended,
            evidence=evidence,
            priority=90,
            cooldown=30 * DAY,
            task=task(
                "Trial follow-up: {{ customer.name }}",
                "{{ customer.name }}: trial ended {{ customer.trial_ends_on }} without a purchase, " + days_ago,
            ),
            holdout=c.holdout,
            goal=goal_renewal,
        ),
    ]


def stage_triggers(config: FitnessConfig) -> list[Trigger]:
    """Evidence moves members through the fitness stages; these triggers only move, they create no task."""
    c = config

    def lapsed(q: TriggerQuery) -> Any:
        m = _memberships(q)
        # valid today or already bought for later: the membership is not over
        not_over = q.exists(m.c.customer_id == q.customer.c.id, m.c.status != "cancelled", m.c.ends_on >= q.today())
        # at risk means the absence already counts; in another stage, a member who just arrived there (a sale
        # starting later, a manual move) has had no chance to come yet
        settled = or_(q.customer.c.stage == "at_risk", q.in_stage_since(c.lapsed_days * DAY))
        return and_(~not_over, ~q.has(VISIT, within=c.lapsed_days * DAY), settled)

    return [
        Trigger(
            "fitness.stage_joined",
            label="New member: adaptation starts",
            description="A lead or trial with a valid membership starts the adaptation period",
            stages=("lead", "trial"),
            condition=valid_membership,
            move_to="adaptation",
            priority=99,
            cooldown=DAY,
        ),
        Trigger(
            "fitness.stage_adapted",
            label="Adapted: now an active member",
            description=f"{c.adaptation_days} days in adaptation with {c.adaptation_visits}+ visits: an active member",
            stages=("adaptation",),
            condition=lambda q: and_(
                q.in_stage_since(c.adaptation_days * DAY),
                q.count(VISIT, within=c.adaptation_days * DAY) >= c.adaptation_visits,
            ),
            move_to="active",
            priority=98,
            cooldown=DAY,
        ),
        Trigger(
            "fitness.stage_at_risk",
            label="Member at risk",
            description="No visit for the absence limit of the stage (a loyal member: the active one): at risk",
            stages=("adaptation", "active", "loyal"),
            condition=lambda q: or_(
                and_(
                    q.customer.c.stage == "adaptation",
                    ~q.has(VISIT, within=c.adaptation_absent_days * DAY),
                    q.in_stage_since(c.adaptation_absent_days * DAY),
                ),
                and_(
                    q.customer.c.stage.in_(("active", "loyal")),
                    ~q.has(VISIT, within=c.active_absent_days * DAY),
                    q.in_stage_since(c.active_absent_days * DAY),
                ),
            ),
            move_to="at_risk",
            priority=97,
            cooldown=DAY,
        ),
        Trigger(
            "fitness.stage_recovered",
            label="At-risk member came back",
            description="An at-risk member visited again in the last 7 days",
            stages=("at_risk",),
            condition=lambda q: q.has(VISIT, within=7 * DAY),
            move_to="active",
            priority=96,
            cooldown=DAY,
        ),
        Trigger(
            "fitness.stage_lapsed",
            label="Membership lapsed",
            description=f"No valid membership and no visit for {c.lapsed_days} days: lapsed",
            stages=MEMBERS,
            condition=lapsed,
            move_to="lapsed",
            priority=95,
            cooldown=DAY,
        ),
    ]
