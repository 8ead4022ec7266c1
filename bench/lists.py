"""Paging through customers filtered by a plugin field: ``crm.customers.search`` page after page (validation,
the keyset statement, full records with run-time fields) against the keyset query written by hand, on the
same indexed column (the fitness ``home_club``).

The hand side is what a developer who knows the schema would write: one ``SELECT`` of the customer and its
fitness fields per page, ``WHERE home_club = ? AND f.customer_id > ?``, ``ORDER BY f.customer_id LIMIT ?``
(ordered by the filtered table's id, so the database walks the ``home_club`` index in order instead of
sorting every match for each page), rows as the driver returns them, made into JSON-safe dicts in plain
Python. Both sides return every record they saw, in order, and the number of pages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, text

from bench.common import Workload
from crmkit import CRM

PAGE = 100

_HAND = text(
    "SELECT c.*, f.card_number, f.goal, f.interests, f.trial_ends_on, f.home_club"
    " FROM crm_customers c JOIN fitness_customer f ON f.customer_id = c.id"
    " WHERE f.home_club = :club AND f.customer_id > :after ORDER BY f.customer_id LIMIT :limit"
)


def busiest_club(crm: CRM) -> str:
    """The home club with the most members: the longest list to page through."""
    table = crm.extension_tables["fitness"]
    query = (
        select(table.c.home_club)
        .where(table.c.home_club.is_not(None))
        .group_by(table.c.home_club)
        .order_by(func.count().desc(), table.c.home_club)
        .limit(1)
    )
    with crm.session() as s:
        club = s.scalar(query)
    if club is None:
        raise RuntimeError("the bench club has no home clubs")
    return str(club)


#: The columns a customer record shows as ISO text: datetimes (naive UTC in the database) and dates.
_MOMENTS = ("stage_changed_at", "created_at", "updated_at")
_DAYS = ("birthday", "trial_ends_on")


def _record(row: Any) -> dict[str, Any]:
    """A row as the JSON-safe record ``customers.get`` returns, converted by hand: datetimes and dates as
    ISO text (SQLite hands both back as text), the JSON ``extra`` dropped (the club has no run-time fields)."""
    record = dict(row._mapping)
    del record["extra"]
    for name in _MOMENTS:
        value = record[name]
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        record[name] = moment.replace(tzinfo=dt.UTC).isoformat()
    for name in _DAYS:
        value = record[name]
        record[name] = value.isoformat() if isinstance(value, dt.date) else value
    return record


Result = tuple[int, list[dict[str, Any]]]


def list_workload(crm: CRM, *, page: int = PAGE) -> Workload:
    """Both sides return the number of pages and every record, which must be equal."""
    club = busiest_club(crm)

    def crmkit() -> Result:
        records: list[dict[str, Any]] = []
        pages, after = 0, None
        while True:
            result = crm.customers.search({"home_club": club}, after=after, limit=page)
            pages += 1
            records.extend(result.items)
            after = result.next_cursor
            if after is None:
                return pages, records

    def baseline() -> Result:
        records: list[dict[str, Any]] = []
        pages, after = 0, 0
        with crm.engine.connect() as conn:
            while True:
                rows: list[Any] = conn.execute(_HAND, {"club": club, "after": after, "limit": page}).all()
                pages += 1
                records.extend(_record(row) for row in rows)
                if len(rows) < page:
                    return pages, records
                after = rows[-1].id

    def parts(result: Result) -> dict[str, int]:
        return {"rows": len(result[1])}

    def same(ours: Result, theirs: Result) -> bool:
        # the hand loop learns it is done from a short page, crmkit from the cursor: one page apart at most
        return ours[1] == theirs[1] and abs(ours[0] - theirs[0]) <= 1

    return Workload(
        f"list: page through home_club={club!r}, {page} a page",
        crmkit=crmkit,
        baseline=baseline,
        same=same,
        baseline_kind="hand-written keyset SQL, rows to JSON-safe dicts",
        parts=parts,
    )
