"""The bulk fast path accepts a row only when marshmallow would, with the same values, and ingest stores the
same driver values from it as from marshmallow's output."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from probe import Probe
from sqlalchemy import create_engine

from crmkit import CRM, ActivityKindSpec, FieldSpec, ValidationError, hookimpl
from crmkit.db.types import UTCDateTime
from crmkit.fastpath import activity_checker
from crmkit.schemas import load


class Salon:
    """A kind with every kind of data field: defaults, choices, text, integers, booleans, dates."""

    plugin_name = "salon"

    @hookimpl
    def crmkit_register_activity_kinds(self) -> list[ActivityKindSpec]:
        return [
            ActivityKindSpec(
                "colour",
                required=("grams",),
                data_fields=(
                    FieldSpec("shade", choices=("ash", "gold"), default="ash"),
                    FieldSpec("grams", "integer"),
                    FieldSpec("brand", default="Wella", max_length=5),
                    FieldSpec("notes", "text"),
                    FieldSpec("patch", "boolean"),
                    FieldSpec("on", "date"),
                ),
            )
        ]


CRM_ = CRM("sqlite://", plugins=[Probe(), Salon()], load_entry_points=False)  # declarations only; no database use
CHECK = activity_checker(CRM_.registry.activity_kinds)
SCHEMA = CRM_.schemas.activity_in
DIALECTS = {
    name: create_engine(url).dialect for name, url in (("sqlite", "sqlite://"), ("postgresql", "postgresql+psycopg://"))
}
CLOCK = dt.datetime(2026, 6, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)


class NoOffset(dt.tzinfo):
    """A tzinfo that makes a datetime naive: marshmallow gives it the default zone."""

    def utcoffset(self, when: dt.datetime | None) -> None:
        return None

    def dst(self, when: dt.datetime | None) -> None:
        return None

    def tzname(self, when: dt.datetime | None) -> None:
        return None


#: Text a database cannot store as given: NUL, lone surrogates (alone, and after non-ASCII text).
BAD_TEXT = ["a\x00", "\x00", "\ud800", "é\udfff", "Wel\x00"]
texts = st.one_of(
    st.none(),
    st.sampled_from(["", " x", "ok", "a" * 301, "A", "EUR", "eur", "phone", "done", "Wella!", "Đặng", *BAD_TEXT]),
)
datetimes = st.sampled_from(
    [
        dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, 10, 0, 0, 250, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
        dt.datetime(2026, 1, 1, 10),
        dt.datetime(2026, 1, 1, 10, tzinfo=NoOffset()),
        # out of crmkit.limits' range, some only once converted to UTC
        dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1900, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2199, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
        dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
    ]
)
#: Whole numbers at and around the 32- and 64-bit limits.
HUGE = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]
#: Free JSON values, some of which a database changes or refuses.
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([2**63, -(2**63), 1.5, 1e16, float("nan"), float("inf"), Decimal("1.5"), *BAD_TEXT, "ok"]),
    st.just(dt.datetime(2026, 1, 1)),
)
free_json = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["k", "ключ", "\x00", "\ud800"]), inner, max_size=2),
        st.tuples(inner),
    ),
    max_leaves=5,
)
values = st.one_of(
    texts,
    st.integers(min_value=-5, max_value=2000),
    st.sampled_from(HUGE),
    st.booleans(),
    st.just(Decimal("1.005")),
    datetimes,
    st.just("2026-01-01T10:00:00Z"),
    st.just(dt.date(2026, 1, 1)),
)
data_keys = st.sampled_from(["room", "weight", "club", "x", "shade", "grams", "brand", "notes", "patch", "on"])
data_values = st.one_of(values, st.sampled_from(["a", "z", "ash", "gold", "Wella", "Goldw"]))
kinds = st.sampled_from(["note", "call", "meeting", "session", "purchase", "visit", "colour", "telepathy", " note"])
rows = st.fixed_dictionaries(
    {"customer_id": st.one_of(st.integers(1, 9), st.just("3"), st.just(True), st.sampled_from(HUGE))},
    optional={
        "kind": kinds,
        "status": st.sampled_from(["done", "planned", "maybe", None]),
        "channel": st.sampled_from(["phone", "fax", None]),
        "direction": st.sampled_from(["inbound", "sideways", None]),
        "subject": texts,
        "result": texts,
        "occurred_at": values,
        "duration_min": values,
        "amount": st.sampled_from([None, Decimal("9.99"), "5"]),
        "currency": texts,
        "owner_id": values,
        "contact_id": values,
        "data": st.one_of(
            st.dictionaries(data_keys, data_values, max_size=4),
            st.dictionaries(data_keys, free_json, max_size=3),
            st.just("not a dict"),
            st.none(),
        ),
        "colour": st.just("red"),
        "source": st.one_of(texts, st.sampled_from(["turnstile", "s" * 100, "s" * 101, 7])),
        "external_id": st.one_of(texts, st.sampled_from(["ev-1", "e" * 200, "e" * 201, " ev-1", 7])),
    },
)


def _shuffled(data: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return data.flatmap(lambda d: st.permutations(list(d.items())).map(dict))


#: Data that is mostly right for each kind, so that many rows take the fast path.
KIND_DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "colour": st.fixed_dictionaries(
        {"grams": st.sampled_from([0, 40, 7, "40", None, 2**31, -(2**31) - 1, 2**31 - 1])},
        optional={
            "shade": st.sampled_from(["ash", "gold", "gold", "red", None]),
            "brand": st.sampled_from(["Wella", "Loral", "Goldwell", "W\x00", "\ud800", None]),
            "notes": st.sampled_from(["short", "short", " x", "no\x00te", "é\ud800", None]),
            "patch": st.sampled_from([True, False, 1]),
            "on": st.sampled_from(["2026-05-01"]),
        },
    ),
    "session": st.fixed_dictionaries({"room": st.sampled_from(["a", "b", "z"])}, optional={"weight": st.just(12.5)}),
    # kinds without declared data take free JSON
    "note": st.dictionaries(st.sampled_from(["a", "b", "ключ", "\x00"]), free_json, max_size=3),
    "call": st.dictionaries(st.sampled_from(["a", "b"]), free_json, max_size=2),
}


def _typed_row(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "customer_id": st.one_of(st.integers(1, 9), st.sampled_from(HUGE)),
        "kind": st.just(kind),
        "occurred_at": st.one_of(datetimes, st.none()),
    }
    return st.fixed_dictionaries(
        required,
        optional={
            "status": st.sampled_from(["done", "planned", "cancelled"]),
            "channel": st.sampled_from(["phone", "in_person", None]),
            "direction": st.sampled_from(["inbound", "outbound", None]),
            "subject": st.sampled_from(["Viewing", "", " pad", "Ngô Thị", "Vi\x00", "\ud800", "é\udc00", None]),
            "result": st.sampled_from(["ok", "\x00", "ok\ud800", None]),
            "duration_min": st.sampled_from([0, 30, 24 * 60, 24 * 60 + 1, None]),
            "currency": st.sampled_from(["EUR", None]),
            "owner_id": st.sampled_from([1, 2, None, 2**31, -(2**31) - 1]),
            "contact_id": st.sampled_from([3, None, 2**40]),
            "data": _shuffled(KIND_DATA.get(kind, st.just({}))),
            "source": st.sampled_from(["turnstile", "pbx", "s" * 101, "", None]),
            "external_id": st.sampled_from(["ev-1", "e" * 200, "e" * 201, "", " ev-1", None]),
        },
    )


typed_rows = st.sampled_from(["visit", "call", "meeting", "session", "colour", "note", "purchase"]).flatmap(_typed_row)
any_rows = st.one_of(rows, typed_rows, typed_rows)  # typed rows twice as often: more take the fast path


def _marshmallow(row: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return load(SCHEMA, row)
    except ValidationError:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_rows)
def test_fast_path_never_disagrees_with_marshmallow(row: dict[str, Any]) -> None:
    row.setdefault("kind", "note")
    fast = CHECK(row)
    if fast is None:
        return  # falls back to marshmallow: always safe
    slow = _marshmallow(row)
    assert slow is not None, f"fast path accepted a row marshmallow rejects: {row}"
    assert {k: v for k, v in fast.items() if v is not None} == {k: v for k, v in slow.items() if v is not None}
    assert list(fast["data"]) == list(slow["data"])  # the same key order: the same JSON text on SQLite


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=any_rows)
def test_ingest_stores_the_same_values_either_way(dialect: str, row: dict[str, Any]) -> None:
    row.setdefault("kind", "visit")
    writer = CRM_.activities._writer(DIALECTS[dialect])
    with mock.patch("crmkit.activities.utcnow", lambda: CLOCK):  # a row without a time gets the same one
        fast = _outcome(writer.typed, row, (writer.created(CLOCK), None))
        if fast is None:
            return
        try:
            slow = writer.validated(row, CLOCK, None)
        except ValidationError as exc:
            raise AssertionError(f"fast path accepted a row marshmallow rejects: {row}: {exc.errors}") from None
    assert fast == slow


def _outcome(convert: Any, row: dict[str, Any], created: Any) -> Any:
    """The driver values; free data JSON cannot hold (a Decimal in it) is refused by both ways, never raised
    from the JSON encoder."""
    return convert(row, created)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@given(
    moment=st.datetimes(
        min_value=dt.datetime(2, 1, 1),
        max_value=dt.datetime(9998, 12, 31),
        timezones=st.timezones(),
        allow_imaginary=False,
    )
)
def test_the_datetime_shortcut_is_the_bind_processor(dialect: str, moment: dt.datetime) -> None:
    kind = UTCDateTime()
    processor = kind.dialect_impl(DIALECTS[dialect]).bind_processor(DIALECTS[dialect])
    assert processor is not None
    assert kind.aware_binder(DIALECTS[dialect])(moment) == processor(moment)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_both_databases_get_the_datetime_shortcut(dialect: str) -> None:
    # the shortcuts live in crmkit.db.types; a fallback to SQLAlchemy's processor is correct but slow
    assert UTCDateTime().aware_binder(DIALECTS[dialect]).__module__ == "crmkit.db.types"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_both_databases_get_json_as_text(dialect: str) -> None:
    # PostgreSQL casts the placeholder to JSONB, so text goes in instead of psycopg's Jsonb wrapper
    writer = CRM_.activities._writer(DIALECTS[dialect])
    values = writer.typed({"customer_id": 1, "kind": "note", "data": {"b": 1, "a": "é"}}, (None, None))
    assert values is not None
    assert '{"b": 1, "a": "\\u00e9"}' in values


def test_typical_bulk_rows_take_the_fast_path() -> None:
    at = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert CHECK({"customer_id": 1, "kind": "visit", "occurred_at": at}) is not None
    assert CHECK({"customer_id": 1, "kind": "session", "owner_id": 2, "occurred_at": at, "data": {"room": "a"}})
    assert CHECK({"customer_id": 1, "kind": "call", "direction": "outbound", "status": "done"}) is not None
    assert CHECK({"customer_id": 1, "kind": "session", "owner_id": 2, "data": {"room": "z"}}) is None  # not a choice
    assert CHECK({"customer_id": "1", "kind": "visit"}) is None  # a string to convert: marshmallow's job
    assert CHECK({"customer_id": 1, "kind": "visit", "occurred_at": at.replace(tzinfo=NoOffset())}) is None


def test_rows_outside_the_storage_limits_go_to_marshmallow() -> None:
    at = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    row = {"customer_id": 1, "kind": "session", "owner_id": 2, "occurred_at": at, "data": {"room": "a"}}
    assert CHECK(row) is not None
    for change in (
        {"subject": "a\x00b"},
        {"result": "\ud800"},
        {"customer_id": 2**31},
        {"owner_id": -(2**31) - 1},
        {"occurred_at": dt.datetime(9999, 12, 31, tzinfo=dt.UTC)},
        {"occurred_at": dt.datetime(1, 1, 2, tzinfo=dt.UTC)},
        {"kind": "note", "data": {"x": float("nan")}},
        {"kind": "note", "data": {"x": Decimal("1.5")}},
        {"kind": "note", "data": {"x": ["\x00"]}},
    ):
        assert CHECK({**row, **change}) is None, change
        assert _marshmallow({**row, **change}) is None, change


def test_the_idempotency_key_takes_the_fast_path_only_when_marshmallow_would_accept_it() -> None:
    row = {"customer_id": 1, "kind": "visit", "source": "turnstile", "external_id": "gate-1:2026-01-01T10:00"}
    loaded = _marshmallow(row)
    assert loaded is not None
    assert CHECK(row) == loaded | {"data": {}}
    assert CHECK({**row, "source": None}) is None  # an external id needs its source
    assert _marshmallow({**row, "source": None}) is None
    assert CHECK({**row, "external_id": "e" * 201}) is None
    assert _marshmallow({**row, "external_id": "e" * 201}) is None
    assert CHECK({"customer_id": 1, "kind": "visit", "source": "pbx"}) is not None  # a source alone is a label


def test_data_gets_defaults_and_the_declared_key_order() -> None:
    checked = CHECK({"customer_id": 1, "kind": "colour", "data": {"notes": "short", "grams": 30}})
    assert checked is not None
    assert list(checked["data"].items()) == [("shade", "ash"), ("grams", 30), ("brand", "Wella"), ("notes", "short")]


def test_declared_data_takes_python_values_and_free_data_comes_back_as_json() -> None:
    # only free data is held to JSON types; a declared date field takes a date and stores its ISO text
    loaded = load(SCHEMA, {"customer_id": 1, "kind": "colour", "data": {"grams": 3, "on": dt.date(2026, 1, 2)}})
    assert loaded["data"]["on"] == "2026-01-02"
    assert load(SCHEMA, {"customer_id": 1, "kind": "note", "data": {"x": (1, 2)}})["data"] == {"x": [1, 2]}
