"""Members shaped so that every fitness trigger matches someone at the benchmark's date.

The generated club settles every stage move by the day before ``TODAY`` (the generator runs the club's
stage rules as it goes), so on its own it leaves the stage triggers with nobody to match, and a comparison
of crmkit with the hand-written SQL between two empty sets proves nothing. These members are what a real
club has on any given morning: a lead whose membership was entered at the desk without a stage move, a
newcomer who came often enough to be active, a member gone quiet, a card that ran out of sessions.

Each shape meets its trigger with a wide margin (weeks, not hours, from every window's edge), so it keeps
matching when a rule is refined, and it is written a few times (:func:`per_trigger`), so no trigger hangs
on one customer. The shaped members are part of the asked number of customers and are added after the
triggers' real run before ``AS_OF``, so no earlier firing or move hides them.

Customers, their stage history and memberships are written the way the fitness generator writes its own
(crmkit's public ``customers.create`` stamps a customer with the wall clock, and these members joined
months before the benchmark's fixed date); their check-ins and purchases go through ``crm.activities.ingest``.
The check-ins are written before the memberships, so whatever a check-in does to a membership's sessions,
each membership keeps the balance its shape gives it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import attrs
from crmkit_fitness.models import Membership, Plan
from sqlalchemy import Connection, Table, insert, select

from bench.common import AS_OF, TODAY
from crmkit import CRM
from crmkit.db.models import Customer, StageHistory

DAY = dt.timedelta(days=1)
#: The shaped members' e-mail domain (reserved: it can never be a real customer's), which finds them again.
DOMAIN = "bench.invalid"
UNLIMITED = "Quarterly unlimited"
SESSIONS = "Monthly 8"


@attrs.frozen
class Held:
    """A membership, its days counted from ``TODAY`` (negative: before it)."""

    plan: str
    starts: int
    sessions_left: int | None = None
    #: The first and last day of a freeze that is on today.
    frozen: tuple[int, int] | None = None


@attrs.frozen
class Shape:
    """A member's history: the stages they went through (from their creation on), their memberships, the
    days they came (at 18:00 UTC), their birthday and the end of their trial, in days from ``TODAY``."""

    moves: tuple[tuple[int, str], ...]
    memberships: tuple[Held, ...] = ()
    visits: tuple[int, ...] = ()
    birthday_in: int | None = None
    trial_ended: int | None = None


def _every(step: int, first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1, step))


#: A member who joined in December and settled in: lead, adaptation a month later, active a month after.
SETTLED = ((-200, "lead"), (-170, "adaptation"), (-140, "active"))
#: A settled member the club made loyal: a member like any active one for the retention triggers.
LOYAL = (*SETTLED, (-100, "loyal"))

#: One shape per trigger, with the configuration's defaults (a club that changes them keeps the margins:
#: every window below is at least twice as far from its edge as the default is wide).
SHAPES: dict[str, Shape] = {
    # a membership entered at the desk: a lead holding a valid membership starts adaptation
    "fitness.stage_joined": Shape(((-5, "lead"),), (Held(UNLIMITED, -3),), visits=(-2,)),
    # 40 days in adaptation, 10 visits in the last 30: an active member
    "fitness.stage_adapted": Shape(
        ((-120, "lead"), (-40, "adaptation")), (Held(UNLIMITED, -40),), visits=_every(3, -28, -1)
    ),
    # loyal for months, last visit 35 days ago (the limit is 21)
    "fitness.stage_at_risk": Shape(LOYAL, (Held(UNLIMITED, -50),), visits=(-60, -55, -45, -35)),
    # at risk for 20 days, back twice this week
    "fitness.stage_recovered": Shape((*SETTLED, (-20, "at_risk")), (Held(UNLIMITED, -60),), visits=(-50, -45, -3, -2)),
    # the membership ended two months ago, last visit 70 days ago (the limit is 45)
    "fitness.stage_lapsed": Shape(
        ((-300, "lead"), (-280, "adaptation"), (-250, "active")), (Held(UNLIMITED, -150),), visits=(-100, -90, -70)
    ),
    # a trial that ended 10 days ago, nothing bought
    "fitness.trial_no_purchase": Shape(((-20, "lead"),), trial_ended=-10, visits=(-18,)),
    # the only membership ends in 7 days (the window is 14), nothing bought after it
    "fitness.membership_expiring": Shape(LOYAL, (Held(UNLIMITED, -82),), visits=_every(4, -40, -1)),
    # a card of 8 sessions with 1 left, 19 days to run, nothing bought after it
    "fitness.sessions_low": Shape(SETTLED, (Held(SESSIONS, -10, sessions_left=1),), visits=_every(1, -9, -3)),
    # 20 days a newcomer, last visit 15 days ago (the limit is 10)
    "fitness.adaptation_absent": Shape(
        ((-60, "lead"), (-20, "adaptation")), (Held(UNLIMITED, -20),), visits=(-19, -17, -15)
    ),
    # a loyal member for 60 days on this membership, last visit 30 days ago (the limit is 21)
    "fitness.active_absent": Shape(LOYAL, (Held(UNLIMITED, -60),), visits=(-55, -45, -35, -30)),
    # 14 visits in the six weeks before the last two, then one
    "fitness.frequency_drop": Shape(LOYAL, (Held(UNLIMITED, -70),), visits=(*_every(3, -55, -16), -5)),
    # frozen for two weeks, back tomorrow (the window is 3 days)
    "fitness.freeze_ending": Shape(SETTLED, (Held(UNLIMITED, -60, frozen=(-12, 1)),), visits=(-40, -30, -20, -14)),
    # a birthday in 3 days (the window is 7)
    "fitness.birthday": Shape(SETTLED, (Held(UNLIMITED, -30),), visits=_every(4, -40, -2), birthday_in=3),
}


def per_trigger(customers: int) -> int:
    """How many members of each shape a club of ``customers`` gets: 3 in a small club, one in 2,000 in a
    large one, never more than a fortieth of the club."""
    return max(1, min(max(3, customers // 2000), customers // 40))


def shaped_count(customers: int) -> int:
    return per_trigger(customers) * len(SHAPES)


def add(crm: CRM, customers: int) -> int:
    """Write ``per_trigger(customers)`` members of every shape, round-robin over the shapes; return how many."""
    each = per_trigger(customers)
    shapes = [(name, shape) for _ in range(each) for name, shape in SHAPES.items()]
    with crm.session() as s:
        plans = {name: (pid, days, price) for pid, name, days, price in s.execute(_plans())}
        home = s.scalar(select(crm.extension_tables["fitness"].c.home_club).limit(1)) or "main"
    with crm.transaction() as tx:
        conn = tx.session.connection()
        ids = [_customer(crm, conn, n, name, shape, home) for n, (name, shape) in enumerate(shapes, 1)]
        report = crm.activities.ingest(_checkins(ids, shapes, home), tx=tx)
        if report.rejected:
            raise RuntimeError(f"shaped check-ins rejected: {report.rejected[:3]}")
        bought = [
            (cid, held, _membership(conn, cid, held, plans[held.plan]))
            for cid, (_, shape) in zip(ids, shapes, strict=True)
            for held in shape.memberships
        ]
        report = crm.activities.ingest(_purchases(bought, plans), tx=tx)
        if report.rejected:
            raise RuntimeError(f"shaped purchases rejected: {report.rejected[:3]}")
    return len(ids)


def ids(crm: CRM) -> list[int]:
    """The shaped members' ids."""
    with crm.session() as s:
        return list(s.scalars(select(Customer.id).where(Customer.email.like(f"%@{DOMAIN}")).order_by(Customer.id)))


# -- writing -------------------------------------------------------------------------------------------


def _plans() -> Any:
    plan: Table = Plan.__table__
    return select(plan.c.id, plan.c.name, plan.c.duration_days, plan.c.price)


def _day(days: int) -> dt.date:
    return TODAY + days * DAY


def _at(days: int, hour: int) -> dt.datetime:
    return AS_OF + days * DAY + dt.timedelta(hours=hour)


def _customer(crm: CRM, conn: Connection, n: int, trigger: str, shape: Shape, home: str) -> int:
    customers: Table = Customer.__table__
    history: Table = StageHistory.__table__
    short = trigger.removeprefix("fitness.").replace("_", "-")
    email = f"{short}-{n:05d}@{DOMAIN}"
    created, stage = _at(shape.moves[0][0], 9), shape.moves[-1][1]
    birthday = None if shape.birthday_in is None else _day(shape.birthday_in).replace(year=1990)
    changed = _at(shape.moves[-1][0], 9)
    cid: int = conn.execute(
        insert(customers)
        .values(
            name=f"Shaped {short} {n}",
            email=email,
            email_normalized=email,
            birthday=birthday,
            source="walk_in",
            branch=home,
            stage=stage,
            lifecycle=crm.lifecycle.stage(stage).lifecycle,
            stage_changed_at=changed,
            created_at=created,
            updated_at=changed,
            extra={},
        )
        .returning(customers.c.id)
    ).scalar_one()
    trial = None if shape.trial_ended is None else _day(shape.trial_ended)
    conn.execute(insert(crm.extension_tables["fitness"]).values(customer_id=cid, home_club=home, trial_ends_on=trial))
    previous: str | None = None
    for days, to_stage in shape.moves:
        cause = "created" if previous is None else f"shaped: {previous} -> {to_stage}"
        conn.execute(
            insert(history).values(
                customer_id=cid,
                from_stage=previous,
                to_stage=to_stage,
                to_lifecycle=crm.lifecycle.stage(to_stage).lifecycle,
                at=_at(days, 9),
                cause=cause,
            )
        )
        previous = to_stage
    return cid


def _membership(conn: Connection, cid: int, held: Held, plan: tuple[int, int, Any]) -> int:
    plan_id, days, price = plan
    starts = _day(held.starts)
    ends = starts + (days - 1) * DAY
    frozen_from = frozen_until = None
    freeze_days = 0
    if held.frozen is not None:
        frozen_from, frozen_until = _day(held.frozen[0]), _day(held.frozen[1])
        freeze_days = (frozen_until - frozen_from).days + 1
        ends += freeze_days * DAY  # a freeze moves the end, as the club's freeze does
    status = "frozen" if held.frozen is not None else "expired" if ends < TODAY else "active"
    table: Table = Membership.__table__
    membership_id: int = conn.execute(
        insert(table)
        .values(
            customer_id=cid,
            plan_id=plan_id,
            starts_on=starts,
            ends_on=ends,
            status=status,
            sessions_left=held.sessions_left,
            freeze_days_used=freeze_days,
            frozen_from=frozen_from,
            frozen_until=frozen_until,
            price=price,
            created_at=_at(held.starts, 12),
        )
        .returning(table.c.id)
    ).scalar_one()
    return membership_id


def _checkins(ids: list[int], shapes: list[tuple[str, Shape]], home: str) -> Iterator[dict[str, Any]]:
    for cid, (_, shape) in zip(ids, shapes, strict=True):
        for days in shape.visits:
            at = _at(days, 18)
            yield {"customer_id": cid, "kind": "checkin", "occurred_at": at, "data": {"club": home, "door": "main"}}


def _purchases(bought: list[tuple[int, Held, int]], plans: dict[str, tuple[int, int, Any]]) -> Iterator[dict[str, Any]]:
    for cid, held, membership_id in bought:
        price = plans[held.plan][2]
        yield {
            "customer_id": cid,
            "kind": "purchase",
            "amount": price,
            "currency": "EUR",
            "subject": f"Membership: {held.plan}",
            "occurred_at": _at(held.starts, 12),
            "data": {"membership_id": membership_id, "plan": held.plan},
        }
