"""The bulk fast path accepts a row only when marshmallow would, with the same values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from probe import Probe

from crmkit import CRM, ValidationError
from crmkit.fastpath import activity_checker
from crmkit.schemas import load

CRM_ = CRM("sqlite://", plugins=[Probe()], load_entry_points=False)  # declarations only; no database use
CHECK = activity_checker(CRM_.registry.activity_kinds)
SCHEMA = CRM_.schemas.activity_in

texts = st.one_of(st.none(), st.sampled_from(["", " x", "ok", "a" * 301, "A", "EUR", "eur", "phone", "done"]))
values = st.one_of(
    texts,
    st.integers(min_value=-5, max_value=2000),
    st.booleans(),
    st.just(Decimal("1.005")),
    st.just(dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)),
    st.just(dt.datetime(2026, 1, 1, 10)),
    st.just("2026-01-01T10:00:00Z"),
)
data_values = st.dictionaries(st.sampled_from(["room", "weight", "club", "x"]), values, max_size=3)
rows = st.fixed_dictionaries(
    {"customer_id": st.one_of(st.integers(1, 9), st.just("3"), st.just(True))},
    optional={
        "kind": st.sampled_from(["note", "call", "meeting", "session", "purchase", "visit", "telepathy", " note"]),
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
        "data": st.one_of(data_values, st.just("not a dict")),
        "colour": st.just("red"),
    },
)


def _marshmallow(row: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return load(SCHEMA, row)
    except ValidationError:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_fast_path_never_disagrees_with_marshmallow(row: dict[str, Any]) -> None:
    row.setdefault("kind", "note")
    fast = CHECK(row)
    if fast is None:
        return  # falls back to marshmallow: always safe
    slow = _marshmallow(row)
    assert slow is not None, f"fast path accepted a row marshmallow rejects: {row}"
    assert {k: v for k, v in fast.items() if v is not None} == {k: v for k, v in slow.items() if v is not None}


def test_typical_bulk_rows_take_the_fast_path() -> None:
    at = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert CHECK({"customer_id": 1, "kind": "visit", "occurred_at": at}) is not None
    assert CHECK({"customer_id": 1, "kind": "session", "owner_id": 2, "occurred_at": at, "data": {"room": "a"}})
    assert CHECK({"customer_id": 1, "kind": "call", "direction": "outbound", "status": "done"}) is not None
    assert CHECK({"customer_id": 1, "kind": "session", "owner_id": 2, "data": {"room": "z"}}) is None  # not a choice
    assert CHECK({"customer_id": "1", "kind": "visit"}) is None  # a string to convert: marshmallow's job
