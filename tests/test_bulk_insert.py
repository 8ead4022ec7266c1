"""``BulkInsert.execute`` writes many rows in the database's fastest form (SQLite: multi-row ``VALUES`` in
pages under the parameter limit; PostgreSQL through psycopg: ``COPY``): the rows stored are the rows
``executemany`` stores, and a refused row raises what SQLAlchemy raises."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, select

from crmkit import CRM
from crmkit.db import bulk
from crmkit.db.bulk import BulkInsert
from crmkit.db.customer_batch import driver_columns
from crmkit.db.types import JSONData, UTCDateTime

_META = MetaData()
SAMPLE = Table(
    "bulk_sample",
    _META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(80)),
    Column("note", String(50)),  # empty in every row: left out of the statement, stored as NULL
    Column("at", UTCDateTime),
    Column("data", JSONData),
    Column("n", Integer, server_default="7"),
)
COLUMNS = ("id", "name", "note", "at", "data", "n")
#: Text a COPY stream or a long VALUES must carry as it is: quotes, escapes, tabs, line breaks, non-ASCII.
NAMES = ['Ann "A"', "O'Brien", "back\\slash", "tab\there", "two\nlines", "Zoë 🎉", "%s ? :x", "", None]
AT = dt.datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)


def _rows(statement: BulkInsert, first: int, count: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(count):
        name = NAMES[i % len(NAMES)]
        data = {"i": i, "name": name, "list": [1, "two", None]} if i % 3 else {}
        at = AT + dt.timedelta(hours=i) if i % 4 else None
        n = i if i % 5 else None
        values = {"id": first + i, "name": name, "note": None, "at": at, "data": data, "n": n}
        rows.append(statement.driver_values(values))
    return rows


def _stored(crm: CRM, low: int, high: int) -> list[tuple[Any, ...]]:
    with crm.engine.connect() as conn:
        query = select(SAMPLE).where(SAMPLE.c.id.between(low, high)).order_by(SAMPLE.c.id)
        return [tuple(row) for row in conn.execute(query)]


@pytest.fixture
def crm(crm_factory: Any) -> CRM:
    made: CRM = crm_factory()
    _META.create_all(made.engine)
    return made


def test_each_form_stores_what_executemany_stores(crm: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    dialect = crm.engine.dialect
    fast, plain = BulkInsert(SAMPLE, COLUMNS, dialect), BulkInsert(SAMPLE, COLUMNS, dialect)
    plain._form = "executemany"
    assert fast._form == {"sqlite": "values", "postgresql": "copy"}[dialect.name]
    # a small parameter limit: the VALUES form writes several statements, the last one shorter
    monkeypatch.setattr(bulk, "parameter_limit", lambda connection: 17)
    with crm.engine.begin() as conn:
        assert fast.execute(conn, _rows(fast, 1, 40)) == 40
        assert plain.execute(conn, _rows(plain, 1001, 40)) == 40
        # the same rows given a column at a time ("note" all NULL, left out of the statement)
        assert fast.execute_columns(conn, list(zip(*_rows(fast, 2001, 40), strict=True))) == 40
        assert fast.execute_columns(conn, [[]] * len(COLUMNS)) == 0
    ours, theirs, columns = _stored(crm, 1, 1000), _stored(crm, 1001, 2000), _stored(crm, 2001, 3000)
    assert len(ours) == len(theirs) == len(columns) == 40
    assert [row[1:] for row in ours] == [row[1:] for row in theirs] == [row[1:] for row in columns]
    assert {row[1] for row in ours} == set(NAMES)  # every awkward text made it, and NULL is NULL
    assert {row[2] for row in ours} == {None}
    assert {row[5] for row in ours if row[0] % 5 == 1} == {None}
    assert ours[1][3] == AT + dt.timedelta(hours=1)
    assert ours[1][4] == {"i": 1, "name": NAMES[1], "list": [1, "two", None]}


def test_a_refused_row_raises_what_sqlalchemy_raises_and_leaves_nothing(crm: CRM) -> None:
    statement = BulkInsert(SAMPLE, COLUMNS, crm.engine.dialect)
    with crm.engine.begin() as conn:
        statement.execute(conn, _rows(statement, 1, 3))
    with pytest.raises(exc.IntegrityError), crm.engine.begin() as conn:
        statement.execute(conn, _rows(statement, 3, 5))  # id 3 is taken
    assert [row[0] for row in _stored(crm, 1, 100)] == [1, 2, 3]


def test_one_row_goes_as_a_plain_insert(crm: CRM) -> None:
    statement = BulkInsert(SAMPLE, COLUMNS, crm.engine.dialect)
    with crm.engine.begin() as conn:
        assert statement.execute(conn, _rows(statement, 50, 1)) == 1
        assert statement.execute(conn, []) == 0
    assert [row[0] for row in _stored(crm, 1, 100)] == [50]


_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.sampled_from([AT, AT + dt.timedelta(days=1)]),  # a batch's shared times, and others
    st.datetimes(timezones=st.just(dt.UTC)),
)
_DATA: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(st.text(max_size=3), st.one_of(st.booleans(), st.integers(), st.text(max_size=3)), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(
    ats=st.lists(_VALUES, min_size=1, max_size=12),
    shared=st.booleans(),
    data=st.lists(_DATA, min_size=12, max_size=12),
)
def test_driver_columns_are_what_the_bind_processors_make_of_each_row(
    ats: list[Any], shared: bool, data: list[Any]
) -> None:
    # a column converted at once (equal values converted once) gives each row what SQLAlchemy's bind
    # processors give it: 1 and True, {"a": 1} and {"a": True} are equal but are not the same JSON
    from sqlalchemy.dialects import sqlite

    statement = BulkInsert(SAMPLE, COLUMNS, sqlite.dialect())
    if shared:
        ats = [ats[0]] * len(ats)
    count = len(ats)
    columns: dict[str, list[Any]] = {
        "id": list(range(count)), "name": ["x"] * count, "note": [None] * count, "at": ats,
        "data": data[:count], "n": [True if i % 2 else 1 for i in range(count)],
    }  # fmt: skip
    expected = [statement.driver_values({name: values[i] for name, values in columns.items()}) for i in range(count)]
    assert expected
    assert list(zip(*driver_columns(statement, [columns[name] for name in COLUMNS]), strict=True)) == expected
