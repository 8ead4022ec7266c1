"""Sessions used by visits: every path that records a check-in or a personal-training session ends here.

A check-in on a day uses **one session of one membership**: of the customer's memberships in force that day
(not cancelled, the day within its start and end, not inside its freeze), the one that **ends first and has
sessions left**. An unlimited membership (no session count) always has sessions left, so when it is the one
that ends first, the visit costs nothing. A visit with no such membership uses nothing, and nothing goes
below zero. The day is the UTC date of the check-in, like every date in the plugin.

A personal-training session uses one session of the package it names (``data.package_id``), or else of the
customer's package valid that day (bought by then, not expired) that has sessions left and expires first.

Both are set-based: one locking read of the candidate rows per batch, then one ``executemany`` of an
``UPDATE`` that picks the row in SQL, in the caller's transaction. The locking read makes a concurrent writer
wait until this one commits, so each ``UPDATE`` then sees the other's use and never takes a session twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Date, Integer, Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from crmkit.errors import ValidationError
from crmkit.sql import among
from crmkit_fitness.models import GymClass, Membership, Plan, PTPackage

_memberships: Table = Membership.__table__
_packages: Table = PTPackage.__table__
#: Customers per ``IN (...)``, well under SQLite's limit of bound parameters.
_IN_CHUNK = 10_000

#: (customer id, UTC day of the check-in)
Visit = tuple[int, dt.date]
#: (customer id, UTC day of the session, the package named on it or None)
PTUse = tuple[int, dt.date, "int | None"]


def in_force_on(m: Table, day: Any) -> Any:
    """The membership row ``m`` can be used on ``day`` (a column, a bound parameter or a literal)."""
    return and_(
        m.c.status != "cancelled",
        m.c.starts_on <= day,
        m.c.ends_on >= day,
        or_(m.c.frozen_from.is_(None), m.c.frozen_from > day, m.c.frozen_until < day),
    )


def use_sessions(session: Session, visits: Iterable[Visit]) -> None:
    """Each visit uses one session of the membership in force that day that ends first and has sessions left."""
    m = _memberships
    ordered = sorted(visits)
    if not ordered:
        return
    low, high = min(day for _, day in ordered), max(day for _, day in ordered)
    counting = _lock(
        session,
        m,
        {cid for cid, _ in ordered},
        m.c.sessions_left > 0,
        m.c.status != "cancelled",
        m.c.starts_on <= high,
        m.c.ends_on >= low,
    )
    params = [{"cid": cid, "day": day} for cid, day in ordered if cid in counting]
    if not params:
        return  # nobody in the batch holds a membership that counts sessions: nothing to use
    day = bindparam("day", type_=Date())
    first = (
        select(m.c.id)
        .where(
            m.c.customer_id == bindparam("cid", type_=Integer()),
            in_force_on(m, day),
            or_(m.c.sessions_left.is_(None), m.c.sessions_left > 0),
        )
        .order_by(m.c.ends_on, m.c.id)
        .limit(1)
        .scalar_subquery()
    )
    statement = update(m).where(m.c.id == first, m.c.sessions_left > 0).values(sessions_left=m.c.sessions_left - 1)
    session.connection().execute(statement, params)
    _forget(session, Membership)


def use_pt_sessions(session: Session, uses: Iterable[PTUse]) -> None:
    """Each personal-training session uses one session of its package (named, or the one expiring first)."""
    p = _packages
    ordered = sorted(uses, key=lambda u: (u[0], u[1], u[2] or 0))
    if not ordered:
        return
    counting = _lock(session, p, {cid for cid, _, _ in ordered}, p.c.sessions_left > 0)
    named = [{"cid": c, "pkg": k} for c, _, k in ordered if c in counting and k is not None]
    unnamed = [{"cid": c, "day": d} for c, d, k in ordered if c in counting and k is None]
    conn = session.connection()
    used = p.c.sessions_left - 1
    if named:
        statement = update(p).where(
            p.c.id == bindparam("pkg", type_=Integer()),
            p.c.customer_id == bindparam("cid", type_=Integer()),
            p.c.sessions_left > 0,
        )
        conn.execute(statement.values(sessions_left=used), named)
    if unnamed:
        day = bindparam("day", type_=Date())
        first = (
            select(p.c.id)
            .where(
                p.c.customer_id == bindparam("cid", type_=Integer()),
                p.c.sessions_left > 0,
                p.c.purchased_on <= day,
                or_(p.c.expires_on.is_(None), p.c.expires_on >= day),
            )
            .order_by(p.c.expires_on.is_(None), p.c.expires_on, p.c.id)
            .limit(1)
            .scalar_subquery()
        )
        conn.execute(update(p).where(p.c.id == first, p.c.sessions_left > 0).values(sessions_left=used), unnamed)
    _forget(session, PTPackage)


def give_back_sessions(session: Session, visits: Iterable[Visit]) -> None:
    """Each visit taken back (an import reverted) returns one session to the membership in force that day
    that ends **last** among those with sessions used. Visits use the membership that ends first until it
    is empty, then the next; so the last sessions used are the latest-ending membership's, and taking the
    newest visits back (a revert of the last import) restores every balance exactly. Nothing goes above
    the plan's session count."""
    m, plans = _memberships, Plan.__table__
    ordered = sorted(visits)
    if not ordered:
        return
    day = bindparam("day", type_=Date())
    plan_sessions = select(plans.c.sessions).where(plans.c.id == m.c.plan_id).scalar_subquery()
    last = (
        select(m.c.id)
        .where(
            m.c.customer_id == bindparam("cid", type_=Integer()),
            in_force_on(m, day),
            m.c.sessions_left.is_not(None),
            m.c.sessions_left < plan_sessions,
        )
        .order_by(m.c.ends_on.desc(), m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    _lock(session, m, {cid for cid, _ in ordered}, m.c.sessions_left.is_not(None))
    statement = update(m).where(m.c.id == last).values(sessions_left=m.c.sessions_left + 1)
    session.connection().execute(statement, [{"cid": cid, "day": day_} for cid, day_ in ordered])
    _forget(session, Membership)


def _lock(session: Session, table: Table, customers: set[int], *conditions: Any) -> set[int]:
    """The customers among ``customers`` with a row of ``table`` matching ``conditions``; those rows are locked
    (in id order, so two writers cannot deadlock on them) until the transaction ends."""
    found: set[int] = set()
    values: Sequence[int] = sorted(customers)
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start : start + _IN_CHUNK]
        query = (
            select(table.c.customer_id)
            .where(among(table.c.customer_id, chunk), *conditions)
            .order_by(table.c.id)
            .with_for_update()
        )
        found.update(session.scalars(query))
    return found


def _forget(session: Session, model: type) -> None:
    """The balances changed behind the ORM's back: objects already loaded in this session read them again."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, model):
            session.expire(obj, ["sessions_left"])


# -- the hooks: a visit recorded through the activity API --------------------------------------------------

#: Only a visit that took place uses a session: a planned, cancelled or missed one does not.
_USES = "done"


def _day(moment: Any) -> dt.date:
    if isinstance(moment, str):
        if moment.endswith("+00:00"):  # the read model's UTC text: the day is its first ten characters
            return dt.date.fromisoformat(moment[:10])
        moment = dt.datetime.fromisoformat(moment)
    return moment.astimezone(dt.UTC).date()


def activity_logged(session: Session, activity: Mapping[str, Any]) -> None:
    """``crm.activities.log`` of one check-in or PT session: check what it refers to, then use its session.

    Logging is interactive, so a reference that cannot be right is refused (``ValidationError``, nothing is
    written): a class that does not exist, a package of another customer, without sessions left or not valid
    on the day."""
    kind = activity["kind"]
    if kind not in ("checkin", "pt_session") or activity.get("status", _USES) != _USES:
        return
    cid, day, data = activity["customer_id"], _day(activity["occurred_at"]), activity.get("data") or {}
    if kind == "checkin":
        class_id = data.get("class_id")
        if class_id is not None and (not _fits(class_id) or session.get(GymClass, class_id) is None):
            raise ValidationError({"data": {"class_id": [f"no class with id {class_id}"]}}, "invalid activity")
        use_sessions(session, [(cid, day)])
        return
    package_id = data.get("package_id")
    if package_id is not None:
        package = session.get(PTPackage, package_id) if _fits(package_id) else None
        problem = _package_problem(package, package_id, cid, day)
        if problem:
            raise ValidationError({"data": {"package_id": [problem]}}, "invalid activity")
    use_pt_sessions(session, [(cid, day, package_id)])


def _fits(key: Any) -> bool:
    """An id the integer primary key can hold (a bigger one would be a driver error, not a miss)."""
    return isinstance(key, int) and 0 < key < 2**31


def _package_problem(package: PTPackage | None, package_id: int, cid: int, day: dt.date) -> str | None:
    if package is None or package.customer_id != cid:  # another's package is as good as none
        return f"customer {cid} has no package with id {package_id}"
    if package.sessions_left <= 0:
        return f"package {package_id} has no sessions left"
    if day < package.purchased_on or (package.expires_on is not None and day > package.expires_on):
        return f"package {package_id} is not valid on {day}"
    return None


def activities_ingested(session: Session, activities: Iterable[Mapping[str, Any]]) -> None:
    """A batch of ``crm.activities.ingest``: the rows it stored (skipped duplicates are not among them) use
    their sessions, two statements for the whole batch. Ingestion records what already happened, so nothing
    is refused here: a visit with nothing to use uses nothing."""
    checkins: list[Mapping[str, Any]] = []
    pt: list[PTUse] = []
    for a in activities:
        kind = a["kind"]
        if kind not in ("checkin", "pt_session") or a.get("status", _USES) != _USES:
            continue
        if kind == "checkin":
            checkins.append(a)
        else:
            package = (a.get("data") or {}).get("package_id")
            pt.append((a["customer_id"], _day(a["occurred_at"]), package if _fits(package) else None))
    if checkins:
        # most members' memberships do not count sessions: only their holders' check-ins need a day
        m = _memberships
        holders = _lock(
            session, m, {a["customer_id"] for a in checkins}, m.c.sessions_left > 0, m.c.status != "cancelled"
        )
        use_sessions(
            session, [(a["customer_id"], _day(a["occurred_at"])) for a in checkins if a["customer_id"] in holders]
        )
    use_pt_sessions(session, pt)


def activities_removed(session: Session, activities: Iterable[Mapping[str, Any]]) -> None:
    """Check-ins deleted by a revert give their sessions back (see :func:`give_back_sessions`)."""
    visits = [
        (a["customer_id"], _day(a["occurred_at"]))
        for a in activities
        if a["kind"] == "checkin" and a.get("status", _USES) == _USES
    ]
    give_back_sessions(session, visits)
