"""Whatever a caller sends, every public write either stores exactly what it returns or raises crmkit's own error
(``ValidationError``, or ``NotFound``/``TransitionError``/``DuplicateCustomerError`` where that is the answer),
on SQLite and on PostgreSQL alike: never a driver error, an ``OverflowError`` or a ``TypeError``, and never a
value the database silently changed (truncated text, rounded money, a shifted date).

Random text (NUL, lone surrogates, very long, any script), numbers (huge, tiny, many decimals, NaN, infinity)
and dates (years 1 to 9999, every zone) go through every write; explicit examples pin the cases of issue 10.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from crmkit_fitness import FitnessConfig, FitnessPlugin
from crmkit_fitness.models import Membership, Plan
from crmkit_fitness.service import fitness
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from crmkit import CRM, FieldSpec, hookimpl
from crmkit.db.models import Activity, Contact, Customer, StageHistory, Task, TriggerRun, User
from crmkit.errors import DuplicateCustomerError, NotFound, TransitionError, ValidationError

#: What a write may raise on bad input: crmkit's own errors, nothing else.
EXPECTED = (ValidationError, NotFound, TransitionError, DuplicateCustomerError)
SETTINGS = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Ledger:
    """A plugin with a typed column of every field type, so each field type's limits meet a real column."""

    plugin_name = "ledger"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("visits", "integer"),
            FieldSpec("balance", "decimal"),
            FieldSpec("last_seen", "datetime"),
            FieldSpec("memo", "text"),
            FieldSpec("vip", "boolean"),
            FieldSpec("tier", choices=("gold", "silver")),
            FieldSpec("locker", max_length=8),
        ]


@pytest.fixture
def club(crm_factory: Callable[..., CRM]) -> CRM:
    """The fitness edition with the ledger plugin, run-time fields of each JSON-kept type, a user and a customer."""
    crm = crm_factory([FitnessPlugin(FitnessConfig(holdout=0.0)), Ledger()])
    crm.fields.define(FieldSpec("nickname", max_length=30))
    crm.fields.define(FieldSpec("budget", "decimal"))
    crm.fields.define(FieldSpec("met_at", "datetime"))
    crm.fields.define(FieldSpec("kids", "integer"))
    crm.users.create({"name": "Owner", "email": "owner@example.com"})
    crm.customers.create({"name": "Base", "email": "base@example.com"})
    return crm


# -- what goes in ------------------------------------------------------------------------------------------

SPECIAL = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "é\ud800",
    "Đặng Thị Ngọc",
    "สมชาย ใจดี",
    "王小明",
    "<b>Bob</b>",
    "'; DROP TABLE crm_customers; --",
    "  padded  ",
    "",
    "😀",
]
LENGTHS = [1, 2, 8, 9, 30, 31, 40, 41, 50, 51, 100, 101, 200, 201, 255, 256, 300, 301, 320, 321, 500]
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(SPECIAL),
    st.builds(lambda a, b: a + b, st.text(max_size=4), st.sampled_from(SPECIAL)),
    st.sampled_from(LENGTHS).map(lambda n: "ž" * n),
)
EDGE_NUMBERS = [
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63,
    10**13,
    10**12,
    10**8,
    "10.005",
    "0.001",
    "9999999999999999.99",
    "999999999999.99",
    "1e13",
    "NaN",
    "-Infinity",
    "-0.00",
    "12",
    "12.50",
    Decimal("1E-30"),
    1e-7,
    float("nan"),
    float("inf"),
]
numbers = st.one_of(
    st.integers(),
    st.integers(-5, 500),
    st.floats(),
    st.decimals(),
    st.decimals(places=2, min_value=-(10**13), max_value=10**13),
    st.sampled_from(EDGE_NUMBERS),
)
dates = st.one_of(st.dates(), st.dates().map(dt.date.isoformat), st.sampled_from(["2999-01-01", "0001-01-01", "x"]))
datetimes = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.datetimes(timezones=st.timezones()).map(dt.datetime.isoformat),
    st.sampled_from(["9999-12-31T23:59:59", "0001-01-01T00:00:00+01:00", "2026-05-04T10:00:00Z"]),
)
anything = st.one_of(texts, texts, numbers, dates, datetimes, st.booleans(), st.none())
#: Values a field of each kind takes, so that most calls get through and what is stored gets compared.
words = st.one_of(
    st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=12),
    st.sampled_from(["Đặng Thị Ngọc", "สมชาย ใจดี", "王小明", "<b>Bob</b>", "O'Brien; --", "😀"]),
)
counts = st.integers(-1000, 1000)
cents = st.one_of(st.integers(0, 10**6), st.decimals(places=2, min_value=0, max_value=10**9).map(str))
days = st.one_of(st.dates(dt.date(1900, 1, 1), dt.date(2025, 12, 31)), st.just("1990-05-04"))
moments = st.one_of(
    st.datetimes(dt.datetime(1900, 1, 2), dt.datetime(2199, 12, 30), timezones=st.timezones()),
    st.datetimes(dt.datetime(1900, 1, 2), dt.datetime(2199, 12, 30)).map(dt.datetime.isoformat),
)


def mostly(good: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` seven times in eight, ``other`` the rest (``one_of`` cannot be weighted)."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda fits: good if fits else other)


def usually(strategy: st.SearchStrategy[Any], edges: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """The field's own kind of value most of the time; else one at or past its limits, or any value at all."""
    if edges is None:
        return mostly(strategy, anything)
    return mostly(strategy, st.one_of(st.sampled_from(edges), st.sampled_from(edges), anything))


TEXT_EDGES = [*SPECIAL, *("ž" * n for n in LENGTHS)]
INT_EDGES = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, 10**30, 12.5, 12.0, "12", True, "x", float("nan")]
MONEY_EDGES = [
    10**13,
    "9999999999999999.99",
    "999999999999.99",
    "99999999.99",
    10**8,
    "10.005",
    "0.001",
    "NaN",
    "-Infinity",
    "-0.00",
    "12.50",
    1e-7,
    0.1,
    Decimal("1E-30"),
    "1e13",
]
DAY_EDGES = [dt.date(9999, 12, 31), dt.date(1, 1, 1), dt.date(2199, 12, 31), dt.date(1900, 1, 1)]
DATE_EDGES = ["2999-01-01", "0001-01-01", "2199-12-31", "1900-01-01", *DAY_EDGES]
MOMENT_EDGES = [
    "9999-12-31T23:59:59",
    "0001-01-01T00:00:00+01:00",
    dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC),
    dt.datetime(1, 1, 1),
    "1900-01-01T00:30:00+01:00",
    "2199-12-31T23:59:59-05:00",
    "2199-12-31T23:59:59.999999Z",
    "1900-01-01T00:00:00Z",
]


ids = st.one_of(st.sampled_from([1, None, 0, -1, 2**31, 2**40, "1", "x", True]), st.integers())
emails = st.one_of(
    st.emails(),
    st.sampled_from(LENGTHS).map(lambda n: "a" * n + "@example.com"),
    st.builds(lambda t: f"a{t}@example.com", st.sampled_from(SPECIAL)),
)
CUSTOMER_FIELDS = {
    "email": usually(emails),
    "phone": usually(st.sampled_from(["+49 30 1234567", "+1 415 555 0100", "030 1234567", "0000000000"])),
    "birthday": usually(days, DATE_EDGES),
    "source": usually(words, TEXT_EDGES),
    "campaign": usually(words, TEXT_EDGES),
    "branch": usually(words, TEXT_EDGES),
    "owner_id": ids,
    "card_number": usually(words, TEXT_EDGES),
    "goal": usually(st.sampled_from(["weight_loss", "muscle", "strength", "x\x00"])),
    "interests": usually(words, TEXT_EDGES),
    "trial_ends_on": usually(days, DATE_EDGES),
    "home_club": usually(words, TEXT_EDGES),
    "visits": usually(counts, INT_EDGES),
    "balance": usually(cents, MONEY_EDGES),
    "last_seen": usually(moments, MOMENT_EDGES),
    "memo": usually(words, TEXT_EDGES),
    "vip": usually(st.booleans()),
    "tier": usually(st.sampled_from(["gold", "silver", "bronze"])),
    "locker": usually(words, TEXT_EDGES),
    "nickname": usually(words, TEXT_EDGES),
    "budget": usually(cents, MONEY_EDGES),
    "met_at": usually(moments, MOMENT_EDGES),
    "kids": usually(counts, INT_EDGES),
}
customer_data = st.fixed_dictionaries({"name": usually(words, TEXT_EDGES)}, optional=CUSTOMER_FIELDS)
customer_changes = st.fixed_dictionaries({}, optional={"name": usually(words, TEXT_EDGES), **CUSTOMER_FIELDS})
#: How each field is kept: what "stored exactly as given" means for it.
KEPT = {
    **dict.fromkeys(
        ["name", "email", "phone", "source", "campaign", "branch", "card_number", "goal", "interests"], "text"
    ),
    **dict.fromkeys(["home_club", "memo", "tier", "locker", "nickname", "subject", "result", "title"], "text"),
    **dict.fromkeys(["reason", "role", "currency", "cause"], "text"),
    **dict.fromkeys(["birthday", "trial_ends_on"], "date"),
    **dict.fromkeys(["owner_id", "visits", "kids", "duration_min", "priority", "customer_id", "assignee_id"], "int"),
    **dict.fromkeys(["balance", "budget", "amount"], "money"),
    **dict.fromkeys(["last_seen", "met_at", "occurred_at", "due_at", "remind_at", "at"], "moment"),
}


# -- what comes out ----------------------------------------------------------------------------------------


def attempt(call: Callable[[], Any]) -> Any:
    """The call's result, or ``None`` when it raised one of crmkit's errors; anything else fails the test."""
    try:
        result = call()
    except EXPECTED as exc:
        event(f"refused: {type(exc).__name__}")  # see --hypothesis-show-statistics
        return None
    event("stored")
    return result


def _moment(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    # in UTC: a time in a zone's repeated hour never equals one in another zone (PEP 495)
    return moment.astimezone(dt.UTC) if moment.utcoffset() is not None else moment.replace(tzinfo=dt.UTC)


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def as_kept(kind: str, value: Any) -> Any:
    """An accepted input value in a comparable form: what the database must hand back for it."""
    if value is None:
        return None
    if kind == "text":
        return value.strip() if isinstance(value, str) else value
    if kind == "date":
        return _date(value)
    if kind == "moment":
        return _moment(value)
    if kind == "int":
        return int(value)
    if kind == "money":
        return Decimal(str(value).strip())
    return value


def assert_kept(given: dict[str, Any], stored: dict[str, Any]) -> None:
    """Every given value of a known kind is what is stored: no truncation, rounding or shift."""
    for key, value in given.items():
        kind = KEPT.get(key)
        if kind is None or (key == "occurred_at" and value is None):  # no time given: now
            continue
        assert as_kept(kind, stored[key]) == as_kept(kind, value), (key, value, stored[key])


def assert_same_record(returned: dict[str, Any], stored: dict[str, Any]) -> None:
    """The record a call returned is the row read back (datetimes compared as instants)."""
    assert returned.keys() == stored.keys()
    for key, value in returned.items():
        if KEPT.get(key) == "moment" or key.endswith("_at") or key == "last_seen":
            value, other = (None if v is None else _moment(v) for v in (value, stored[key]))
        else:
            other = stored[key]
        assert value == other, (key, value, other)


def count(crm: CRM, model: Any) -> int:
    with crm.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


# -- core writes -------------------------------------------------------------------------------------------


@SETTINGS
@given(data=customer_data)
@example(data={"name": "x" * 201})
@example(data={"name": "Ann", "birthday": "2999-01-01", "balance": "10.005", "visits": 2**31})
@example(data={"name": "Ann\x00", "budget": "0.001", "met_at": "9999-12-31T23:59:59", "kids": 2**63})
def test_customers_create_stores_what_it_returns(club: CRM, data: dict[str, Any]) -> None:
    before = count(club, Customer)
    record = attempt(lambda: club.customers.create(data, allow_duplicate=True))
    if record is None:
        assert count(club, Customer) == before
        return
    stored = club.customers.get(record["id"])
    assert_same_record(record, stored)
    assert_kept(data, stored)


@SETTINGS
@given(data=customer_changes)
@example(data={"source": "\ud800", "last_seen": "0001-01-01T00:00:00+01:00", "balance": 10**13})
def test_customers_update_stores_what_it_returns(club: CRM, data: dict[str, Any]) -> None:
    before = club.customers.get(1)
    record = attempt(lambda: club.customers.update(1, data, allow_duplicate=True))
    stored = club.customers.get(1)
    if record is None:
        assert stored == before  # nothing written
        return
    assert_same_record(record, stored)
    assert_kept(data, stored)


free_data = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        texts,
        st.sampled_from([Decimal("1.5"), dt.datetime(2026, 1, 1), 2**63]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
activity_fields = {
    "subject": usually(words, TEXT_EDGES),
    "result": usually(words, TEXT_EDGES),
    "occurred_at": usually(moments, MOMENT_EDGES),
    "duration_min": usually(counts, INT_EDGES),
    "amount": usually(cents, MONEY_EDGES),
    "currency": mostly(st.sampled_from(["EUR", "THB"]), st.sampled_from(["eur", "E\x00R", "EURO"])),
    "owner_id": mostly(st.just(1), ids),
}


def activity_rows(customer: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    note = st.fixed_dictionaries(
        {"customer_id": customer, "kind": st.just("note")},
        optional={**activity_fields, "data": st.dictionaries(texts, free_data, max_size=3)},
    )
    purchase = st.fixed_dictionaries(
        {
            "customer_id": customer,
            "kind": st.just("purchase"),
            "amount": usually(cents, MONEY_EDGES),
            "currency": st.just("EUR"),
        },
        optional={"occurred_at": usually(moments, MOMENT_EDGES), "subject": usually(words, TEXT_EDGES)},
    )
    checkin = st.fixed_dictionaries(
        {"customer_id": customer, "kind": st.just("checkin"), "occurred_at": usually(moments, MOMENT_EDGES)},
        optional={
            "data": st.fixed_dictionaries(
                {"club": usually(words, TEXT_EDGES)},
                optional={"door": usually(words, TEXT_EDGES), "class_id": usually(counts, INT_EDGES)},
            )
        },
    )
    return st.one_of(note, purchase, checkin)


def assert_activity_kept(row: dict[str, Any], stored: dict[str, Any]) -> None:
    assert_kept({k: v for k, v in row.items() if k != "data"}, stored)
    if row["kind"] == "note" and "data" in row:
        assert stored["data"] == row["data"]  # free JSON comes back as it went in
    if row["kind"] == "checkin" and "data" in row:
        for key, value in row["data"].items():
            kind = {"class_id": "int"}.get(key, "text")
            assert as_kept(kind, stored["data"].get(key)) == as_kept(kind, value)


@SETTINGS
@given(row=activity_rows(mostly(st.just(1), ids)))
@example(row={"customer_id": 1, "kind": "purchase", "amount": "9999999999999999.99", "currency": "EUR"})
@example(row={"customer_id": 1, "kind": "note", "occurred_at": "9999-12-31T23:59:59", "data": {"x": float("nan")}})
@example(row={"customer_id": "x", "kind": "note", "subject": "a\x00"})
def test_activities_log_stores_what_it_returns(club: CRM, row: dict[str, Any]) -> None:
    before = count(club, Activity)
    record = attempt(lambda: club.activities.log(row, allow_conflict=True))
    if record is None:
        assert count(club, Activity) == before
        return
    stored = club.activities.get(record["id"])
    assert_same_record(record, stored)
    assert_activity_kept(row, stored)


@SETTINGS
@given(rows=st.lists(activity_rows(st.just(0)), min_size=1, max_size=5), bad_id=st.sampled_from([None, 2**31, "x"]))
def test_activities_ingest_stores_the_rows_it_accepts(club: CRM, rows: list[dict[str, Any]], bad_id: Any) -> None:
    customer = club.customers.create({"name": "Ingest"}, allow_duplicate=True)["id"]
    for row in rows:
        row["customer_id"] = customer
    if bad_id is not None:
        rows[0]["customer_id"] = bad_id
    before = count(club, Activity)
    report = attempt(lambda: club.activities.ingest(rows))
    assert report is not None  # bad rows are reported, not raised
    rejected = {r.index for r in report.rejected}
    accepted = [row for i, row in enumerate(rows) if i not in rejected]
    assert report.inserted == len(accepted)
    assert count(club, Activity) == before + len(accepted)
    with club.session() as s:
        stored_ids = list(s.scalars(select(Activity.id).where(Activity.customer_id == customer).order_by(Activity.id)))
    assert len(stored_ids) == len(accepted)
    for row, activity_id in zip(accepted, stored_ids, strict=True):
        assert_activity_kept(row, club.activities.get(activity_id))


@SETTINGS
@given(
    target=st.sampled_from(["trial", "adaptation", "lost", "active", "nowhere", "trial\x00"]),
    cause=mostly(words, st.one_of(texts, st.none(), st.integers())),
    at=st.one_of(st.none(), usually(moments, MOMENT_EDGES)),
)
@example(target="trial", cause="x" * 500, at=None)
@example(target="trial", cause="ok", at=dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC))
def test_lifecycle_move_stores_what_it_returns(club: CRM, target: str, cause: Any, at: Any) -> None:
    customer = club.customers.create({"name": "Mover", "stage": "lead"}, allow_duplicate=True)["id"]
    change = attempt(lambda: club.lifecycle.move(customer, target, cause=cause, at=at))
    history = club.lifecycle.history(customer)
    if change is None:
        assert [h["to_stage"] for h in history] == ["lead"]
        assert club.customers.get(customer)["stage"] == "lead"
        return
    last = history[-1]
    assert (last["to_stage"], last["cause"], last["at"]) == (target, change["cause"], change["at"])
    assert last["cause"] == cause
    if at is not None:
        assert last["at"] == _moment(at).isoformat()
    assert club.customers.get(customer)["stage"] == target


@SETTINGS
@given(
    data=st.fixed_dictionaries(
        {"title": usually(words, TEXT_EDGES)},
        optional={
            "reason": usually(words, TEXT_EDGES),
            "customer_id": mostly(st.just(1), ids),
            "assignee_id": mostly(st.just(1), ids),
            "due_at": usually(moments, MOMENT_EDGES),
            "remind_at": usually(moments, MOMENT_EDGES),
            "priority": usually(counts, INT_EDGES),
            "source": usually(words, TEXT_EDGES),
            "source_id": usually(words, TEXT_EDGES),
        },
    )
)
def test_tasks_create_stores_what_it_returns(club: CRM, data: dict[str, Any]) -> None:
    before = count(club, Task)
    record = attempt(lambda: club.tasks.create(data))
    if record is None:
        assert count(club, Task) == before
        return
    stored = club.tasks.get(record["id"])
    assert_same_record(record, stored)
    assert_kept(data, stored)


@SETTINGS
@given(
    data=st.fixed_dictionaries(
        {"name": usually(words, TEXT_EDGES)},
        optional={
            "email": usually(emails),
            "role": usually(st.sampled_from(["admin", "operator", "boss"])),
            "branch": usually(words, TEXT_EDGES),
        },
    )
)
def test_users_create_stores_what_it_returns(club: CRM, data: dict[str, Any]) -> None:
    before = count(club, User)
    record = attempt(lambda: club.users.create(data))
    if record is None:
        assert count(club, User) == before
        return
    try:
        stored = club.users.get(record["id"])
        assert_same_record(record, stored)
        assert_kept(data, stored)
    finally:  # its email is unique: gone again, so a replayed example meets the same database
        with club.transaction() as t:
            t.session.execute(delete(User).where(User.id == record["id"]))


@SETTINGS
@given(
    customer=mostly(st.just(1), ids),
    data=st.fixed_dictionaries(
        {"name": usually(words, TEXT_EDGES)},
        optional={"role": usually(words, TEXT_EDGES), "email": usually(emails), "phone": usually(words, TEXT_EDGES)},
    ),
)
def test_customers_add_contact_stores_what_it_returns(club: CRM, customer: Any, data: dict[str, Any]) -> None:
    before = count(club, Contact)
    record = attempt(lambda: club.customers.add_contact(customer, data))
    if record is None:
        assert count(club, Contact) == before
        return
    with club.session() as s:
        stored = club.schemas.contact_out.dump(s.get(Contact, record["id"]))
    assert_same_record(record, stored)
    assert_kept(data, stored)


# -- the fitness plugin's services (their schemas belong to the plugin) ------------------------------------


@pytest.fixture
def gym(club: CRM) -> Iterator[Any]:
    service = fitness(club)
    service.create_plan({"name": "Month", "duration_days": 30, "price": "49.00", "freeze_days": 60})
    yield service


@SETTINGS
@given(
    data=st.fixed_dictionaries(
        {
            "name": usually(words, TEXT_EDGES),
            "duration_days": usually(st.integers(1, 400), INT_EDGES),
            "price": usually(cents, MONEY_EDGES),
        },
        optional={
            "currency": usually(st.sampled_from(["EUR", "usd", "E\x00R"])),
            "sessions": usually(counts, INT_EDGES),
            "freeze_days": usually(counts, INT_EDGES),
        },
    )
)
@example(data={"name": "Gold", "duration_days": 30, "price": "10.005"})
@example(data={"name": "Silver", "duration_days": 30, "price": "100000000"})
@example(data={"name": "Bronze", "duration_days": 30, "price": "5", "sessions": 2**31})
@example(data={"name": "Iron\x00", "duration_days": 30, "price": "5"})
def test_fitness_services_create_plan_stores_what_it_is_given(club: CRM, gym: Any, data: dict[str, Any]) -> None:
    before = count(club, Plan)
    plan_id = attempt(lambda: gym.create_plan(data))
    if plan_id is None:
        assert count(club, Plan) == before
        return
    try:
        with club.session() as s:
            plan = s.get(Plan, plan_id)
            assert plan is not None
            assert plan.name in (data["name"], data["name"].strip())
            assert plan.duration_days == int(data["duration_days"])
            assert plan.price == Decimal(str(data["price"]).strip())
            for key in ("sessions", "freeze_days"):
                if data.get(key) is not None:
                    assert getattr(plan, key) == int(data[key])
    finally:  # its name is unique: gone again, so a replayed example meets the same database
        with club.transaction() as t:
            t.session.execute(delete(Plan).where(Plan.id == plan_id))


@SETTINGS
@given(
    starts_on=usually(days, DATE_EDGES), owner_id=st.one_of(st.none(), st.just(1), ids), plan_id=mostly(st.just(1), ids)
)
@example(starts_on="9999-12-31", owner_id=None, plan_id=1)
@example(starts_on="2026-01-01", owner_id=None, plan_id=2**63)
def test_fitness_services_sell_stores_what_it_is_given(
    club: CRM, gym: Any, starts_on: Any, owner_id: Any, plan_id: Any
) -> None:
    customer = club.customers.create({"name": "Buyer", "stage": "lead"}, allow_duplicate=True)["id"]
    before = (count(club, Membership), count(club, Activity), count(club, StageHistory))
    data = {"customer_id": customer, "plan_id": plan_id, "starts_on": starts_on, "owner_id": owner_id}
    membership_id = attempt(lambda: gym.sell(data))
    if membership_id is None:
        assert (count(club, Membership), count(club, Activity), count(club, StageHistory)) == before
        return
    [membership] = gym.memberships(customer)
    assert membership["id"] == membership_id
    assert membership["starts_on"] == _date(starts_on)
    assert membership["ends_on"] == _date(starts_on) + dt.timedelta(days=29)
    [purchase] = club.activities.for_customer(customer, kinds=["purchase"])
    assert Decimal(purchase["amount"]) == Decimal("49.00")


@SETTINGS
@given(
    # typed arguments of a Python call: dates and ints, of any size
    start=mostly(st.dates(dt.date(2026, 1, 1), dt.date(2026, 3, 1)), st.one_of(st.dates(), st.sampled_from(DAY_EDGES))),
    days=mostly(
        st.integers(1, 60), st.one_of(st.integers(), st.sampled_from([i for i in INT_EDGES if type(i) is int]))
    ),
)
@example(start=dt.date(9999, 12, 31), days=2)
@example(start=dt.date(2026, 1, 10), days=2**63)
def test_fitness_services_freeze_stores_what_it_is_given(club: CRM, gym: Any, start: dt.date, days: Any) -> None:
    customer = club.customers.create({"name": "Freezer", "stage": "lead"}, allow_duplicate=True)["id"]
    membership_id = gym.sell({"customer_id": customer, "plan_id": 1, "starts_on": "2026-01-01"})
    [before] = gym.memberships(customer)
    result = attempt(lambda: gym.freeze(membership_id, start=start, days=days))
    [after] = gym.memberships(customer)
    if result is None and after == before:
        return  # refused, nothing written
    assert after["frozen_until"] == start + dt.timedelta(days=int(days) - 1)
    assert after["ends_on"] == before["ends_on"] + dt.timedelta(days=int(days))
    with club.session() as s:
        assert s.get(Membership, membership_id).frozen_from == start  # type: ignore[union-attr]


# -- the cases of issue 10, one by one ---------------------------------------------------------------------


def _refused(call: Callable[[], Any], errors: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.errors == errors


def test_a_500_character_cause_is_refused(club: CRM) -> None:
    customer = club.customers.create({"name": "C", "stage": "lead"})["id"]
    _refused(lambda: club.lifecycle.move(customer, "trial", cause="x" * 500), {"cause": ["longer than 200 characters"]})
    _refused(
        lambda: club.lifecycle.move(customer, "trial", cause="a\x00b"), {"cause": ["must not contain NUL characters"]}
    )
    assert [h["to_stage"] for h in club.lifecycle.history(customer)] == ["lead"]
    assert club.lifecycle.move(customer, "trial", cause="x" * 200)["cause"] == "x" * 200


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (10**13, "must be less than 1,000,000,000,000 in magnitude"),
        ("9999999999999999.99", "must be less than 1,000,000,000,000 in magnitude"),
        ("10.005", "has more than 2 decimal places"),
        ("0.001", "has more than 2 decimal places"),
        ("NaN", "Special numeric values (nan or infinity) are not permitted."),
    ],
)
def test_amounts_the_column_would_change_are_refused(club: CRM, amount: Any, message: str) -> None:
    row = {"customer_id": 1, "kind": "payment", "amount": amount, "currency": "EUR"}
    with pytest.raises(ValidationError) as caught:
        club.activities.log(row)
    assert list(caught.value.errors) == ["amount"]
    assert caught.value.errors["amount"][0] == message  # then "required for a payment": it has no valid amount
    report = club.activities.ingest([row, {**row, "amount": "999999999999.99"}])
    assert [(r.index, r.errors) for r in report.rejected] == [(0, caught.value.errors)]
    [stored] = club.activities.for_customer(1)
    assert stored["amount"] == "999999999999.99"  # the largest amount the column keeps, every cent of it


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda crm: crm.customers.create({"name": "Ann\x00"}), "name"),
        (lambda crm: crm.customers.update(1, {"branch": "\x00"}), "branch"),
        (lambda crm: crm.customers.create({"name": "Ann", "memo": "a\x00"}), "memo"),
        (lambda crm: crm.customers.create({"name": "Ann", "nickname": "a\x00"}), "nickname"),
        (lambda crm: crm.activities.log({"customer_id": 1, "kind": "note", "subject": "a\x00"}), "subject"),
        (lambda crm: crm.activities.log({"customer_id": 1, "kind": "note", "result": "\ud800"}), "result"),
        (lambda crm: crm.tasks.create({"title": "Call\x00"}), "title"),
        (lambda crm: crm.users.create({"name": "Staff\x00"}), "name"),
        (lambda crm: crm.customers.add_contact(1, {"name": "Bo\x00"}), "name"),
    ],
)
def test_nul_and_lone_surrogates_are_refused_naming_the_field(club: CRM, call: Any, field: str) -> None:
    before = club.customers.get(1)
    counts = [count(club, m) for m in (Customer, Activity, Task, User, Contact)]
    with pytest.raises(ValidationError) as caught:
        call(club)
    assert list(caught.value.errors) == [field]
    assert caught.value.errors[field][0] in ("must not contain NUL characters", "is not valid Unicode text")
    assert [count(club, m) for m in (Customer, Activity, Task, User, Contact)] == counts
    assert club.customers.get(1) == before


def test_nul_in_free_activity_data_is_refused(club: CRM) -> None:
    row = {"customer_id": 1, "kind": "note", "data": {"k": ["ok", "a\x00"]}}
    _refused(lambda: club.activities.log(row), {"data": ["must not contain NUL characters"]})
    report = club.activities.ingest([row])
    assert [(r.index, r.errors) for r in report.rejected] == [(0, {"data": ["must not contain NUL characters"]})]
    assert count(club, Activity) == 0


def test_a_birthday_in_the_future_is_refused(club: CRM) -> None:
    _refused(
        lambda: club.customers.create({"name": "Ann", "birthday": "2999-01-01"}),
        {"birthday": ["must be between 1900-01-01 and 2199-12-31"]},
    )
    _refused(
        lambda: club.customers.create({"name": "Ann", "birthday": "2150-01-01"}),
        {"birthday": ["cannot be in the future"]},
    )
    assert count(club, Customer) == 1


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59", "0001-01-01T00:00:00", dt.datetime(1, 1, 1, tzinfo=dt.UTC)])
def test_occurred_at_out_of_range_is_refused(club: CRM, when: Any) -> None:
    message = {"occurred_at": ["must be from 1900-01-01 to before 2200-01-01 (UTC)"]}
    _refused(lambda: club.activities.log({"customer_id": 1, "kind": "visit", "occurred_at": when}), message)
    report = club.activities.ingest([{"customer_id": 1, "kind": "visit", "occurred_at": when}])
    assert [(r.index, r.errors) for r in report.rejected] == [(0, message)]
    _refused(lambda: club.tasks.create({"title": "T", "due_at": when}), {"due_at": message["occurred_at"]})
    assert count(club, Activity) == count(club, Task) == 0


def test_ids_that_are_not_integers_or_cannot_exist(club: CRM) -> None:
    for read, kind in (
        (club.customers.get, "customer"),
        (club.users.get, "user"),
        (club.tasks.get, "task"),
        (club.activities.get, "activity"),
    ):
        _refused(lambda read=read: read("x"), {f"{kind}_id": ["must be an integer id, got 'x'"]})
        for missing in (2**40 if kind == "customer" or kind == "user" else 2**63, 0, 999):
            with pytest.raises(NotFound):
                read(missing)
    with pytest.raises(NotFound):
        club.lifecycle.move(2**40, "trial", cause="x")
    with pytest.raises(NotFound):
        club.customers.add_contact(2**40, {"name": "Bo"})
    _refused(lambda: club.customers.update("x", {"name": "Bo"}), {"customer_id": ["must be an integer id, got 'x'"]})
    with pytest.raises(NotFound):
        club.customers.update(2**40, {"name": "Bo"})
    with pytest.raises(NotFound):
        club.customers.merge(1, 2**40)


@pytest.mark.parametrize("owner", [2**31, 2**63, -(2**31) - 1])
def test_integers_beyond_the_column_are_refused(club: CRM, owner: int) -> None:
    message = {"owner_id": ["must be between -2147483648 and 2147483647"]}
    _refused(lambda: club.customers.update(1, {"owner_id": owner}), message)
    _refused(lambda: club.activities.log({"customer_id": 1, "kind": "note", "owner_id": owner}), message)
    _refused(lambda: club.customers.create({"name": "Ann", "visits": owner}), {"visits": message["owner_id"]})
    assert club.customers.get(1)["owner_id"] is None
    assert count(club, Activity) == 0


def test_json_kept_decimals_keep_their_cents(club: CRM) -> None:
    record = club.customers.create({"name": "Ann", "budget": "1234567890.10", "balance": "0.10"})
    assert (record["budget"], record["balance"]) == ("1234567890.10", "0.10")
    assert club.customers.get(record["id"]) == record
    _refused(
        lambda: club.customers.create({"name": "Ann", "budget": "0.001"}),
        {"budget": ["has more than 2 decimal places"]},
    )


def test_exceptions_other_than_crmkits_fail_the_property_tests() -> None:
    # the harness itself: a driver error or an overflow is not swallowed
    with pytest.raises(OverflowError):
        attempt(lambda: dt.date(9999, 12, 31) + dt.timedelta(days=1))
    with pytest.raises(InvalidOperation):
        attempt(lambda: Decimal("x"))


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"user_id": 2**40}, {"user_id": ["must be between -2147483648 and 2147483647"]}),
        ({"planned": 2**31}, {"planned": ["must be between 0 and 2147483647"]}),
        ({"period_start": "0001-01-01"}, {"period_start": ["must be between 1900-01-01 and 2199-12-31"]}),
        ({"metric": "deals\x00"}, {"metric": ["must not contain NUL characters"]}),
    ],
)
def test_targets_are_checked_against_their_columns(club: CRM, data: dict[str, Any], errors: dict[str, Any]) -> None:
    plan = {"user_id": 1, "metric": "deals", "period_start": "2026-01-01", "period_end": "2026-01-31", "planned": 5}
    _refused(lambda: club.targets.set({**plan, **data}), errors)
    assert club.targets.list() == []
    assert club.targets.set(plan)["planned"] == 5


@pytest.mark.parametrize(
    ("spec", "errors"),
    [
        (FieldSpec("shoe", label="Shoe\x00"), {"label": ["must not contain NUL characters"]}),
        (FieldSpec("shoe", choices=("a", "\ud800")), {"choices": ["'\\ud800' is not storable text"]}),
        (FieldSpec("shoe", max_length=0), {"max_length": ["must be an integer from 1 to 10000"]}),
        (FieldSpec("shoe", "integer", default=2**40), {"default": ["must be between -2147483648 and 2147483647"]}),
        (FieldSpec("shoe", "decimal", default="0.005"), {"default": ["has more than 2 decimal places"]}),
        (
            FieldSpec("shoe", "date", default=dt.date(2020, 1, 1)),
            {"default": ["must be text, a number or a boolean (a date as ISO text)"]},
        ),
    ],
)
def test_run_time_field_declarations_are_storable(club: CRM, spec: FieldSpec, errors: dict[str, Any]) -> None:
    before = [f.name for f in club.fields.runtime()]
    with pytest.raises(ValidationError) as caught:
        club.fields.define(spec)
    assert caught.value.errors == errors
    assert [f.name for f in club.fields.runtime()] == before


def test_list_filters_by_id_or_text_give_crmkit_errors_or_nothing(club: CRM) -> None:
    club.activities.log({"customer_id": 1, "kind": "note"})
    club.tasks.create({"title": "Call back", "customer_id": 1, "assignee_id": 1})
    assert len(club.activities.for_customer(1)) == len(club.tasks.open(customer_id=1)) == 1
    for read in (club.activities.for_customer, club.lifecycle.history):
        _refused(lambda read=read: read("x"), {"customer_id": ["must be an integer id, got 'x'"]})
        assert read(2**40) == []  # no customer can have it
    _refused(lambda: club.tasks.open(assignee_id="1"), {"assignee_id": ["must be an integer id, got '1'"]})
    assert club.tasks.open(customer_id=2**40) == club.tasks.open(assignee_id=-1) == []
    _refused(lambda: club.users.list(branch="a\x00"), {"branch": ["must not contain NUL characters"]})
    assert club.users.list(branch="nowhere") == []


@pytest.mark.parametrize("when", [dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC), dt.datetime(1, 1, 1, 0, 30), "x"])
def test_times_given_to_reads_are_checked(club: CRM, when: Any) -> None:
    club.tasks.create({"title": "Call back", "assignee_id": 1, "remind_at": "2026-01-01T09:00:00Z"})
    with pytest.raises(ValidationError) as caught:
        club.tasks.next_actions(as_of=when)
    assert list(caught.value.errors) == ["as_of"]
    with pytest.raises(ValidationError) as caught:
        club.tasks.reminders_due(when)
    assert list(caught.value.errors) == ["as_of"]
    with pytest.raises(ValidationError) as caught:
        club.activities.conflicts(1, when, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert list(caught.value.errors) == ["start"]
    with pytest.raises(ValidationError) as caught:
        club.lifecycle.move(1, "trial", cause="ok", at=when)
    assert list(caught.value.errors) == ["at"]
    [task] = club.tasks.open()
    with pytest.raises(ValidationError) as caught:
        club.tasks.complete(task["id"], at=when)
    assert list(caught.value.errors) == ["at"]
    assert club.tasks.open() == [task]  # nothing written
    assert len(club.tasks.reminders_due(dt.datetime(2026, 1, 2, tzinfo=dt.UTC))) == 1
    assert club.tasks.next_actions(as_of=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), assignee_id=2**40) == {}


def test_filters_and_evaluation_times_are_checked_like_stored_values(club: CRM) -> None:
    nul = ["must not contain NUL characters"]
    _refused(lambda: club.customers.list(stage="a\x00"), {"stage": nul})
    _refused(lambda: club.customers.find_duplicates(email="a\x00@example.com"), {"email": nul})
    _refused(lambda: club.activities.for_customer(1, kinds=["checkin\x00"]), {"kinds": nul})
    out_of_range = ["must be from 1900-01-01 to before 2200-01-01 (UTC)"]
    for moment in (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), dt.datetime(1, 1, 1, tzinfo=dt.UTC)):
        _refused(lambda moment=moment: club.triggers.run(moment, dry_run=True), {"as_of": out_of_range})
        _refused(lambda moment=moment: club.triggers.run(moment), {"as_of": out_of_range})
        _refused(lambda moment=moment: club.triggers.effectiveness(since=moment), {"since": out_of_range})
    with club.session() as s:
        assert s.scalar(select(func.count()).select_from(TriggerRun)) == 0  # a refused run records nothing


def test_report_parameters_are_checked_like_stored_values(club: CRM) -> None:
    with pytest.raises(ValidationError) as caught:
        club.reports.run("fitness.attendance", {"club": "main\x00"})
    assert caught.value.errors == {"club": ["must not contain NUL characters"]}
    with pytest.raises(ValidationError) as caught:
        club.reports.run("fitness.members_at_risk", {"owner_id": str(2**31)})
    assert caught.value.errors == {"owner_id": ["must be between -2147483648 and 2147483647"]}
