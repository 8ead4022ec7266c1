"""``crmkit.sql`` helpers give the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from crmkit import CRM
from crmkit.db import Customer
from crmkit.sql import among


def test_among_selects_exactly_the_given_values_and_nothing_for_none(crm: CRM) -> None:
    ids = [crm.customers.create({"name": f"Customer {n}"})["id"] for n in range(5)]
    wanted = [ids[0], ids[3], 10**12]  # and an id nobody has
    with crm.session() as s:
        assert sorted(s.scalars(select(Customer.id).where(among(Customer.id, wanted)))) == [ids[0], ids[3]]
        assert list(s.scalars(select(Customer.id).where(among(Customer.id, [])))) == []
        many = [*ids, *range(10**9, 10**9 + 5_000)]  # thousands of values: one array on PostgreSQL
        assert sorted(s.scalars(select(Customer.id).where(among(Customer.id, many)))) == ids
