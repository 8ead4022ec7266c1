"""Lists that scale: search and count of customers, activities and tasks, checked against plain Python
over the generated data."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text

from crmkit import CRM, FieldSpec
from crmkit.errors import ValidationError
from crmkit.listing import Page

N = 41
PAGE = 6
TIERS = ("bronze", "silver", "gold")
NICKS = ("ace", "ace_1", "ace%", "bob", "Bea", None)


def _maybe(rng: random.Random, value: Any) -> Any:
    return None if rng.random() < 0.25 else value


@pytest.fixture
def club(pcrm: CRM) -> tuple[CRM, list[dict[str, Any]]]:
    """``N`` customers with plugin and run-time fields, some of each NULL; each is its input plus id and
    created_at."""
    crm = pcrm
    for spec in (
        FieldSpec("nickname", max_length=30),
        FieldSpec("kids", "integer"),
        FieldSpec("budget", "decimal"),
        FieldSpec("met_on", "date"),
        FieldSpec("met_at", "datetime"),
        FieldSpec("pet", "boolean"),
    ):
        crm.fields.define(spec)
    rng = random.Random(11)
    people = []
    for n in range(N):
        data = {
            "name": f"Customer {n:02d}",
            "email": f"Person{n}@Example.com" if n % 5 else None,
            "phone": f"+1 202 555 {n:04d}" if n % 3 else None,
            "branch": rng.choice(["north", "south", None]),
            "stage": rng.choice(["lead", "trial"]),
            "tier": rng.choice(TIERS),
            "score": _maybe(rng, rng.randint(0, 6)),
            "joined_on": _maybe(rng, dt.date(2025, 1, 1) + dt.timedelta(days=rng.randint(0, 400))),
            "vip": _maybe(rng, rng.random() < 0.5),
            "balance": _maybe(rng, Decimal(rng.randint(0, 2000)) / 4),
            "nickname": rng.choice(NICKS),
            "kids": _maybe(rng, rng.randint(0, 4)),
            "budget": _maybe(rng, Decimal(rng.randint(0, 400)) / 4),
            "met_on": _maybe(rng, dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 9))),
            "met_at": _maybe(rng, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
            "pet": _maybe(rng, rng.random() < 0.5),
        }
        data["tier"] = data["tier"] if n % 7 else None
        record = crm.customers.create(data, allow_duplicate=True)
        people.append({**data, "id": record["id"], "created_at": record["created_at"]})
    return crm, people


def _all_pages(search: Callable[..., Page], where: Any, order_by: str, limit: int = PAGE) -> list[Page]:
    pages = [search(where, order_by=order_by, limit=limit)]
    while pages[-1].next_cursor is not None:
        pages.append(search(where, order_by=order_by, after=pages[-1].next_cursor, limit=limit))
        assert len(pages) < 1000
    return pages


def _expected(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool], order_by: str) -> list[int]:
    """Ids in the documented order: NULLs after every value ascending, before every value descending."""
    name = order_by.removeprefix("-")
    chosen = [r for r in rows if keep(r)]
    chosen.sort(
        key=lambda r: (r[name] is None, r[name] if r[name] is not None else 0, r["id"]),
        reverse=order_by.startswith("-"),
    )
    return [r["id"] for r in chosen]


@pytest.mark.parametrize(
    "order_by",
    ["id", "-id", "score", "-score", "joined_on", "-joined_on", "-balance", "tier", "-tier", "name", "-created_at"],
)
def test_paging_by_a_plugin_field_returns_what_plain_python_selects(club: Any, order_by: str) -> None:
    crm, people = club
    want = _expected(people, lambda r: r["tier"] in ("gold", "silver"), order_by)
    assert want
    name = order_by.removeprefix("-")
    ends_in_nulls = False
    for limit in (3, PAGE, 1000):
        pages = _all_pages(crm.customers.search, {"tier__in": ["gold", "silver"]}, order_by, limit)
        got = [item["id"] for page in pages for item in page.items]
        assert got == want
        assert len(pages) == math.ceil(len(want) / limit)
        assert all(len(page.items) == limit for page in pages[:-1])
        ends_in_nulls |= any(page.items[-1][name] is None for page in pages[:-1])
    if name in ("score", "joined_on", "balance"):  # a page ended inside the NULLs, where paging is hardest
        assert ends_in_nulls


def test_rows_are_the_records_get_returns(club: Any) -> None:
    crm, people = club
    page = crm.customers.search({"vip": "true"}, limit=1000)
    assert page.items and page.next_cursor is None
    assert [c["id"] for c in page.items] == [r["id"] for r in people if r["vip"] is True]
    assert page.items == [crm.customers.get(item["id"]) for item in page.items]
    assert {"nickname", "kids", "score", "tier"} <= page.items[0].keys()
    assert page.to_dict() == {"items": page.items, "next_cursor": None}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


LOOKUPS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"score": 3}, lambda r: r["score"] == 3),
    ({"score": "3"}, lambda r: r["score"] == 3),
    ({"score": None}, lambda r: r["score"] is None),
    ({"score__in": [1, 2, 5]}, lambda r: r["score"] in (1, 2, 5)),
    ({"score__in": "1, 2,5"}, lambda r: r["score"] in (1, 2, 5)),
    ({"score__gt": 3}, lambda r: r["score"] is not None and r["score"] > 3),
    ({"score__gte": "3"}, lambda r: r["score"] is not None and r["score"] >= 3),
    ({"score__lt": 2}, lambda r: r["score"] is not None and r["score"] < 2),
    ({"score__lte": 2, "vip": False}, lambda r: r["score"] is not None and r["score"] <= 2 and r["vip"] is False),
    ({"score__isnull": "true"}, lambda r: r["score"] is None),
    ({"score__isnull": False}, lambda r: r["score"] is not None),
    ({"tier__prefix": "go"}, lambda r: (r["tier"] or "").startswith("go")),
    ({"joined_on__gte": "2025-06-01"}, lambda r: r["joined_on"] is not None and r["joined_on"] >= dt.date(2025, 6, 1)),
    ({"balance__lt": "100.50"}, lambda r: r["balance"] is not None and r["balance"] < Decimal("100.5")),
    ({"vip": "yes"}, lambda r: r["vip"] is True),
    ({"branch": "north"}, lambda r: r["branch"] == "north"),
    ({"branch__isnull": True}, lambda r: r["branch"] is None),
    ({"name__prefix": "Customer 1"}, lambda r: r["name"].startswith("Customer 1")),
    ({"name__gte": "Customer 30"}, lambda r: r["name"] >= "Customer 30"),
    ({"stage": "trial"}, lambda r: r["stage"] == "trial"),
    ({"stage__in": "trial,lead", "lifecycle": "lead"}, lambda r: True),
    ({"lifecycle__in": ["active", "lost"]}, lambda r: False),
    ({"email": " PERSON7@example.COM"}, lambda r: r["email"] == "Person7@Example.com"),
    ({"email__prefix": "person1"}, lambda r: (r["email"] or "").lower().startswith("person1")),
    ({"email__isnull": True}, lambda r: r["email"] is None),
    ({"phone": "(202) 555-0007"}, lambda r: r["phone"] == "+1 202 555 0007"),
    ({"phone__prefix": "+1202555001"}, lambda r: (r["phone"] or "").replace(" ", "").startswith("+1202555001")),
    ({"nickname": "ace"}, lambda r: r["nickname"] == "ace"),
    ({"nickname__prefix": "ace_"}, lambda r: (r["nickname"] or "").startswith("ace_")),
    ({"nickname__prefix": "ace%"}, lambda r: (r["nickname"] or "").startswith("ace%")),
    ({"nickname__prefix": "B"}, lambda r: (r["nickname"] or "").startswith("B")),
    ({"nickname__in": ["bob", "Bea"]}, lambda r: r["nickname"] in ("bob", "Bea")),
    ({"nickname__isnull": True}, lambda r: r["nickname"] is None),
    ({"kids__gte": "2"}, lambda r: r["kids"] is not None and r["kids"] >= 2),
    ({"kids": 0}, lambda r: r["kids"] == 0),
    ({"budget__lte": "50.25"}, lambda r: r["budget"] is not None and r["budget"] <= Decimal("50.25")),
    ({"met_on__lt": "2026-01-05"}, lambda r: r["met_on"] is not None and r["met_on"] < dt.date(2026, 1, 5)),
    ({"met_on": "2026-01-05"}, lambda r: r["met_on"] == dt.date(2026, 1, 5)),
    ({"pet": "false"}, lambda r: r["pet"] is False),
    ({"pet__isnull": False}, lambda r: r["pet"] is not None),
    ({"met_at__isnull": True}, lambda r: r["met_at"] is None),
]


@pytest.mark.parametrize(("where", "keep"), LOOKUPS, ids=[str(w) for w, _ in LOOKUPS])
def test_every_lookup_selects_what_plain_python_selects(club: Any, where: dict[str, Any], keep: Any) -> None:
    crm, people = club
    want = _expected(people, keep, "id")
    for order_by in ("id", "-id"):
        pages = _all_pages(crm.customers.search, where, order_by, limit=4)
        got = [item["id"] for page in pages for item in page.items]
        assert got == (want if order_by == "id" else want[::-1])
    assert crm.customers.count(where) == len(want)


def test_lookups_are_not_vacuous(club: Any) -> None:
    """Every lookup above but the deliberate empty one selects some customers and leaves some out."""
    _crm, people = club
    for where, keep in LOOKUPS:
        kept = [r for r in people if keep(r)]
        if "lifecycle__in" in where or "lifecycle" in where:
            continue
        assert 0 < len(kept) < len(people), where


def test_count_without_a_filter_counts_everyone(club: Any) -> None:
    crm, people = club
    assert crm.customers.count() == len(people) == N


BAD: list[tuple[Any, dict[str, Any], str]] = [
    ({"nope": 1}, {}, "nope"),
    ({"score__like": 1}, {}, "score__like"),
    ({"score__prefix": "1"}, {}, "score__prefix"),
    ({"vip__gt": True}, {}, "vip__gt"),
    ({"score": "many"}, {}, "score"),
    ({"score": 2**40}, {}, "score"),
    ({"joined_on__gte": "2026-13-01"}, {}, "joined_on__gte"),
    ({"tier": "platinum"}, {}, "tier"),
    ({"stage": "nowhere"}, {}, "stage"),
    ({"email": "not an email"}, {}, "email"),
    ({"phone": "12"}, {}, "phone"),
    ({"name__prefix": "a\x00"}, {}, "name__prefix"),
    ({"score__in": 5}, {}, "score__in"),
    ({"score__in": list(range(1001))}, {}, "score__in"),
    ({"score__isnull": "perhaps"}, {}, "score__isnull"),
    ({"met_at__gt": "2026-01-01T00:00:00Z"}, {}, "met_at__gt"),
    (["score"], {}, "where"),
    (None, {"order_by": "nickname"}, "order_by"),
    (None, {"order_by": "--id"}, "order_by"),
    (None, {"order_by": "shoe_size"}, "order_by"),
    (None, {"limit": 0}, "limit"),
    (None, {"limit": 1001}, "limit"),
    (None, {"limit": "5"}, "limit"),
    (None, {"after": "garbage!"}, "after"),
    (None, {"after": ""}, "after"),
    (None, {"after": 17}, "after"),
]


@pytest.mark.parametrize(("where", "options", "key"), BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_a_validation_error_naming_it(club: Any, where: Any, options: dict[str, Any], key: str) -> None:
    crm, _people = club
    with pytest.raises(ValidationError) as caught:
        crm.customers.search(where, **options)
    assert key in caught.value.errors
    if options == {}:
        with pytest.raises(ValidationError):
            crm.customers.count(where)


def test_unknown_fields_and_lookups_list_what_is_allowed(club: Any) -> None:
    crm, _people = club
    with pytest.raises(ValidationError) as caught:
        crm.customers.search({"nope": 1, "score__like": 2})
    assert {"score", "nickname", "stage", "email"} <= set(caught.value.errors["nope"][0].replace(",", " ").split())
    assert "score__gte" in caught.value.errors["score__like"][0]


def test_a_cursor_is_refused_when_edited_or_from_another_order(club: Any) -> None:
    crm, _people = club
    page = crm.customers.search(None, order_by="score", limit=3)
    cursor = page.next_cursor
    assert cursor
    assert crm.customers.search(None, order_by="score", after=cursor, limit=3).items
    edited = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad, order_by in ((edited, "score"), (cursor[:-4], "score"), (cursor, "-score"), (cursor, "id")):
        with pytest.raises(ValidationError) as caught:
            crm.customers.search(None, order_by=order_by, after=bad, limit=3)
        assert "after" in caught.value.errors


def _statements(crm: CRM) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(crm.engine, "before_cursor_execute", record)
    return seen


def test_a_page_is_one_statement_and_a_plugin_field_filter_uses_its_index(club: Any) -> None:
    crm, _people = club
    seen = _statements(crm)
    first = crm.customers.search({"score": 3}, limit=2)
    assert first.next_cursor
    crm.customers.search({"score": 3}, limit=2, after=first.next_cursor)
    pages = [s for s in seen if "LIMIT" in s[0].upper()]
    assert len(pages) == 2  # one statement a page, nothing else
    statement, parameters = pages[0]
    index = next(ix.name for ix in crm.extension_tables["probe"].indexes if "score" in ix.columns)
    assert index
    with crm.engine.connect() as conn:
        if crm.engine.dialect.name == "sqlite":
            plan = " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
        else:
            with conn.begin():
                # with a few rows the planner rightly prefers a scan; ask whether the index can serve
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    assert index in plan, plan


def test_reads_in_a_unit_of_work_see_its_own_writes(pcrm: CRM) -> None:
    crm = pcrm
    with crm.transaction() as tx:
        made = crm.customers.create({"name": "New", "score": 99}, tx=tx)
        crm.activities.log({"customer_id": made["id"], "kind": "note", "subject": "hello"}, tx=tx)
        crm.tasks.create({"title": "Call back", "customer_id": made["id"]}, tx=tx)
        assert [c["id"] for c in crm.customers.search({"score": 99}, tx=tx).items] == [made["id"]]
        assert crm.customers.count({"score": 99}, tx=tx) == 1
        assert crm.activities.count({"customer_id": made["id"]}, tx=tx) == 1
        assert crm.tasks.search({"customer_id": made["id"]}, tx=tx).items[0]["title"] == "Call back"
        assert crm.customers.count({"score": 99}) == 0  # not committed yet
    assert crm.customers.count({"score": 99}) == 1


def test_activities_page_and_count_like_plain_python(pcrm: CRM) -> None:
    crm = pcrm
    rng = random.Random(5)
    ids = [crm.customers.create({"name": f"C{n}"}, allow_duplicate=True)["id"] for n in range(4)]
    logged = []
    for n in range(30):
        data: dict[str, Any] = {
            "customer_id": rng.choice(ids),
            "kind": rng.choice(["note", "purchase"]),
            "occurred_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rng.randint(0, 50)),
            "source": "pos",
            "external_id": f"e{n}",
        }
        if data["kind"] == "purchase":
            data |= {"amount": Decimal(rng.randint(1, 90)), "currency": "USD"}
        record = crm.activities.log(data)
        logged.append({**data, "id": record["id"], "amount": data.get("amount")})
    where = {"kind": "purchase", "occurred_at__gte": "2026-01-01T10:00:00Z", "customer_id__in": ids[:3]}

    def keep(r: dict[str, Any]) -> bool:
        at = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
        return r["kind"] == "purchase" and r["occurred_at"] >= at and r["customer_id"] in ids[:3]

    for order_by in ("-occurred_at", "amount", "id"):
        got = [a["id"] for p in _all_pages(crm.activities.search, where, order_by, limit=4) for a in p.items]
        assert got == _expected(logged, keep, order_by) and got
    assert crm.activities.count(where) == len([r for r in logged if keep(r)])
    assert crm.activities.count() == len(logged) == 30
    first = crm.activities.search(where, limit=1).items[0]
    assert first == crm.activities.get(first["id"])
    with pytest.raises(ValidationError):
        crm.activities.search({"kind": "telepathy"})


def test_tasks_page_by_a_nullable_due_time_like_plain_python(pcrm: CRM) -> None:
    crm = pcrm
    rng = random.Random(9)
    made = []
    for n in range(25):
        due = _maybe(rng, dt.datetime(2026, 2, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rng.randint(0, 9)))
        data = {"title": f"T{n}", "priority": rng.randint(0, 3), "due_at": due}
        made.append({**data, "id": crm.tasks.create(data)["id"]})
    where = {"priority__gte": 1}
    for order_by in ("due_at", "-due_at", "-priority"):
        got = [t["id"] for p in _all_pages(crm.tasks.search, where, order_by, limit=4) for t in p.items]
        assert got == _expected(made, lambda r: r["priority"] >= 1, order_by) and got
    assert crm.tasks.count({"due_at__isnull": True}) == len([r for r in made if r["due_at"] is None]) > 0
    assert crm.tasks.count({"status": "open"}) == crm.tasks.count() == 25


def test_a_field_added_at_run_time_filters_at_once(pcrm: CRM) -> None:
    crm = pcrm
    first = crm.customers.create({"name": "Before"})
    assert crm.customers.count({"name": "Before"}) == 1
    crm.fields.define(FieldSpec("shoe_size", "integer"))
    crm.customers.update(first["id"], {"shoe_size": 44})
    crm.customers.create({"name": "After", "shoe_size": 38})
    page = crm.customers.search({"shoe_size__gt": 40})
    assert [c["name"] for c in page.items] == ["Before"] and page.items[0]["shoe_size"] == 44
