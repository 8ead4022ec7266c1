"""``crmkit.sql`` helpers give the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

import calendar
import datetime as dt

from sqlalchemy import Integer, literal, select

from crmkit import CRM
from crmkit.db import Activity, Customer
from crmkit.sql import add_days, add_months, among, calendar_day, calendar_window, days_between


def test_among_selects_exactly_the_given_values_and_nothing_for_none(crm: CRM) -> None:
    ids = [crm.customers.create({"name": f"Customer {n}"})["id"] for n in range(5)]
    wanted = [ids[0], ids[3], 10**12]  # and an id nobody has
    with crm.session() as s:
        assert sorted(s.scalars(select(Customer.id).where(among(Customer.id, wanted)))) == [ids[0], ids[3]]
        assert list(s.scalars(select(Customer.id).where(among(Customer.id, [])))) == []
        many = [*ids, *range(10**9, 10**9 + 5_000)]  # thousands of values: one array on PostgreSQL
        assert sorted(s.scalars(select(Customer.id).where(among(Customer.id, many)))) == ids


# -- calendar arithmetic ----------------------------------------------------------------------------------


def _months_later(day: dt.date, months: int) -> dt.date:
    """Plain Python: the same day ``months`` months on, the last day of the month when it has no such day."""
    year, month = day.year + (day.month - 1 + months) // 12, (day.month - 1 + months) % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


_DAYS = [
    dt.date(2024, 1, 31),  # into a leap February
    dt.date(2023, 1, 31),  # into a common February
    dt.date(2024, 2, 29),
    dt.date(2000, 3, 31),  # 2000 is a leap year, 1900 and 2100 are not
    dt.date(1900, 12, 31),
    dt.date(2099, 8, 31),
    dt.date(2025, 5, 30),
    dt.date(2025, 12, 15),
    dt.date(2026, 7, 1),
]
_MONTHS = [-49, -25, -13, -12, -11, -1, 0, 1, 2, 6, 11, 12, 13, 14, 49]


def test_add_months_clamps_month_ends_as_plain_python_does(crm: CRM) -> None:
    expected = {(d, n): _months_later(d, n) for d in _DAYS for n in _MONTHS}
    # the rule, spelled out on the cases SQLite's own '+1 month' gets wrong
    assert expected[(dt.date(2024, 1, 31), 1)] == dt.date(2024, 2, 29)
    assert expected[(dt.date(2023, 1, 31), 1)] == dt.date(2023, 2, 28)
    assert expected[(dt.date(2000, 3, 31), -1)] == dt.date(2000, 2, 29)
    assert expected[(dt.date(1900, 12, 31), 14)] == dt.date(1902, 2, 28)
    with crm.session() as s:
        got = {key: s.scalar(select(add_months(key[0], key[1]))) for key in expected}
        # a timestamp counts on its UTC date; the months may be an SQL expression
        late = dt.datetime(2024, 1, 31, 23, 59, 59, tzinfo=dt.UTC)
        assert s.scalar(select(add_months(late, 1))) == dt.date(2024, 2, 29)
        assert s.scalar(select(add_months(dt.date(2024, 1, 31), literal(3, Integer()) - 1))) == dt.date(2024, 3, 31)
    assert len(got) == len(_DAYS) * len(_MONTHS)
    assert got == expected


def test_add_months_over_a_column_in_one_statement(crm: CRM) -> None:
    born = {n: dt.date(2023, 12, 31) + dt.timedelta(days=n * 29) for n in range(30)}
    ids = {crm.customers.create({"name": f"C{n}", "birthday": d.isoformat()})["id"]: d for n, d in born.items()}
    birthday = Customer.__table__.c.birthday
    with crm.session() as s:
        rows = s.execute(select(Customer.id, add_months(birthday, 1), add_months(birthday, -13)))
        got = {r[0]: (r[1], r[2]) for r in rows}
    assert got == {i: (_months_later(d, 1), _months_later(d, -13)) for i, d in ids.items()}


def test_calendar_days_and_windows_count_utc_dates(crm: CRM) -> None:
    utc = dt.UTC
    with crm.session() as s:
        assert s.scalar(select(add_days(dt.date(2024, 2, 28), 1))) == dt.date(2024, 2, 29)
        assert s.scalar(select(add_days(dt.date(2024, 3, 1), -1))) == dt.date(2024, 2, 29)
        assert s.scalar(select(add_days(dt.date(2025, 12, 31), 1))) == dt.date(2026, 1, 1)
        assert s.scalar(select(calendar_day(dt.datetime(2026, 3, 1, 23, 59, tzinfo=utc)))) == dt.date(2026, 3, 1)
        late, early = dt.datetime(2026, 1, 1, 23, 59, tzinfo=utc), dt.datetime(2026, 1, 2, 0, 1, tzinfo=utc)
        assert s.scalar(select(days_between(late, early))) == 1
        assert s.scalar(select(days_between(early, late))) == -1
        assert s.scalar(select(days_between(dt.datetime(2026, 1, 2, 0, 1, tzinfo=utc), early))) == 0
        assert s.scalar(select(days_between(dt.date(2024, 1, 1), dt.date(2025, 1, 1)))) == 366

    # visits around the edges of a three-day window from 2026-03-30 (in the second, not at all in the last)
    customer = crm.customers.create({"name": "Anna"})["id"]
    moments = [
        dt.datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=utc),
        dt.datetime(2026, 3, 30, 0, 0, tzinfo=utc),
        dt.datetime(2026, 3, 31, 12, 0, 0, 1, tzinfo=utc),
        dt.datetime(2026, 4, 1, 23, 59, 59, 999999, tzinfo=utc),
        dt.datetime(2026, 4, 2, 0, 0, tzinfo=utc),
    ]
    for at in moments:
        crm.activities.log({"customer_id": customer, "kind": "visit", "occurred_at": at})
    inside = [at for at in moments if dt.date(2026, 3, 30) <= at.date() < dt.date(2026, 4, 2)]
    assert len(inside) == 3
    with crm.session() as s:
        window = calendar_window(Activity.__table__.c.occurred_at, dt.date(2026, 3, 30), 3)
        got = sorted(s.scalars(select(Activity.occurred_at).where(window)))
        # the start may be a timestamp (its date counts) or an SQL expression
        from_moment = calendar_window(Activity.__table__.c.occurred_at, dt.datetime(2026, 3, 30, 18, tzinfo=utc), 3)
        assert sorted(s.scalars(select(Activity.occurred_at).where(from_moment))) == inside
    assert got == inside
