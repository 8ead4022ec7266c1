"""crmkit.limits: each storage limit is refused with a message, nothing else is raised, and what is accepted is
what gets stored."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError as FieldError

from crmkit.errors import NotFound, ValidationError
from crmkit.limits import (
    MAX_DATE,
    MAX_JSON_DEPTH,
    MAX_MOMENT,
    MIN_DATE,
    MIN_MOMENT,
    Day,
    Email,
    Int,
    JSONObject,
    Moment,
    Money,
    Text,
    check,
    json_ok,
    require_id,
)


def _error(field: Any, value: Any) -> list[str]:
    with pytest.raises(FieldError) as caught:
        field.deserialize(value)
    messages = caught.value.messages
    return messages if isinstance(messages, list) else [str(messages)]


# -- text -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "must not contain NUL characters"),
        ("\ud800", "is not valid Unicode text"),
        ("ok \udfff", "is not valid Unicode text"),
        ("x" * 6, "longer than 5 characters"),
        ("", "must not be empty"),
        (5, "Not a valid string."),
    ],
)
def test_text_refuses_what_a_database_cannot_store(value: Any, message: str) -> None:
    assert _error(Text(max_length=5, min_length=1), value) == [message]


def test_text_keeps_unicode_and_its_length_is_in_characters() -> None:
    field = Text(max_length=5)
    assert field.deserialize("Đặng😀") == "Đặng😀"
    assert field.deserialize("ศรีสม") == "ศรีสม"  # five code points, more bytes
    assert Text().deserialize("x" * 100_000) == "x" * 100_000  # no limit unless the column has one


@given(st.text(alphabet=st.characters(codec=None), max_size=30))
def test_text_accepts_exactly_what_encodes_without_nul(value: str) -> None:
    try:
        value.encode("utf-8")
        storable = "\x00" not in value
    except UnicodeEncodeError:
        storable = False
    try:
        assert Text().deserialize(value) == value
        assert storable
    except FieldError:
        assert not storable


def test_email_has_its_column_length() -> None:
    assert Email().deserialize("a@example.com") == "a@example.com"
    assert _error(Email(), "no-at-sign") == ["Not a valid email address."]
    assert _error(Email(), "a" * 310 + "@example.com") == ["longer than 320 characters"]
    assert _error(Email(), "a\x00@example.com") == ["must not contain NUL characters"]


# -- integers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (Int(), 2**31, "must be between -2147483648 and 2147483647"),
        (Int(), -(2**31) - 1, "must be between -2147483648 and 2147483647"),
        (Int(bits=64), 2**63, "must be between -9223372036854775808 and 9223372036854775807"),
        (Int(min=0, max=100), 101, "must be between 0 and 100"),
        (Int(), True, "Not a valid integer."),
        (Int(), 12.5, "Not a valid integer."),
        (Int(), Decimal("1.5"), "Not a valid integer."),
        (Int(), float("nan"), "Not a valid integer."),
        (Int(), "x", "Not a valid integer."),
    ],
)
def test_int_refuses_what_the_column_cannot_hold(field: Int, value: Any, message: str) -> None:
    assert _error(field, value) == [message]


def test_int_takes_whole_numbers_in_any_form() -> None:
    assert Int().deserialize(2**31 - 1) == 2**31 - 1
    assert Int().deserialize(-(2**31)) == -(2**31)
    assert Int(bits=64).deserialize(2**63 - 1) == 2**63 - 1
    assert Int().deserialize("42") == 42
    assert Int().deserialize(42.0) == 42


@given(st.one_of(st.integers(), st.floats(), st.decimals(), st.booleans(), st.text(max_size=5)))
def test_int_either_fits_32_bits_or_is_refused(value: Any) -> None:
    try:
        number = Int().deserialize(value)
    except FieldError:
        return
    assert type(number) is int and -(2**31) <= number <= 2**31 - 1
    assert number == (int(value) if isinstance(value, str) else value)


# -- money -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.005", "has more than 2 decimal places"),
        ("0.001", "has more than 2 decimal places"),
        (10**13, "must be less than 1,000,000,000,000 in magnitude"),
        ("9999999999999999.99", "must be less than 1,000,000,000,000 in magnitude"),
        ("-1000000000000", "must be less than 1,000,000,000,000 in magnitude"),
        ("1e99999999999", "must be less than 1,000,000,000,000 in magnitude"),
        ("1E-999999999999999999", "has more than 2 decimal places"),
        ("NaN", "Special numeric values (nan or infinity) are not permitted."),
        (float("inf"), "Special numeric values (nan or infinity) are not permitted."),
        (True, "Not a valid number."),
    ],
)
def test_money_refuses_what_numeric_14_2_would_change(value: Any, message: str) -> None:
    assert _error(Money(), value) == [message]


def test_money_keeps_every_cent_and_writes_two_places() -> None:
    assert Money().deserialize("999999999999.99") == Decimal("999999999999.99")
    assert str(Money().deserialize(5)) == "5.00"
    assert str(Money().deserialize("10.000")) == "10.00"  # the same amount, not a rounding
    assert str(Money().deserialize("-0.00")) == "0.00"
    assert str(Money(10, 2).deserialize("12345678.9")) == "12345678.90"
    assert _error(Money(10, 2), "100000000") == ["must be less than 100,000,000 in magnitude"]


@given(st.one_of(st.decimals(), st.floats(), st.integers(), st.text(max_size=8)))
def test_money_accepts_only_exact_amounts(value: Any) -> None:
    try:
        amount = Money().deserialize(value)
    except FieldError:
        return
    assert amount.as_tuple().exponent == -2
    assert abs(amount) < 10**12
    assert amount == Decimal(str(value).strip())  # never rounded


# -- dates and datetimes -----------------------------------------------------------------------------------


def test_day_range_and_birthdays() -> None:
    assert Day().deserialize("1900-01-01") == MIN_DATE
    assert Day().deserialize(MAX_DATE) == MAX_DATE
    assert _error(Day(), "1899-12-31") == ["must be between 1900-01-01 and 2199-12-31"]
    assert _error(Day(), "2200-01-01") == ["must be between 1900-01-01 and 2199-12-31"]
    assert _error(Day(not_after_today=True), "2999-01-01") == ["must be between 1900-01-01 and 2199-12-31"]
    assert _error(Day(not_after_today=True), "2150-01-01") == ["cannot be in the future"]
    assert Day(not_after_today=True).deserialize("1990-05-04") == dt.date(1990, 5, 4)
    assert _error(Day(), dt.datetime(2020, 1, 1, 12)) == ["Not a valid date."]  # its time would be lost


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+01:00",  # converting it to UTC overflows
        dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "1900-01-01T00:30:00+01:00",  # 1899 in UTC
        "2200-01-01T00:00:00Z",
    ],
)
def test_moment_refuses_out_of_range_without_overflow(value: Any) -> None:
    assert _error(Moment(), value) == ["must be from 1900-01-01 to before 2200-01-01 (UTC)"]


def test_moment_bounds_and_naive_input() -> None:
    assert Moment().deserialize("1900-01-01T00:00:00Z") == MIN_MOMENT
    assert Moment().deserialize("2199-12-31T23:59:59.999999") == MAX_MOMENT - dt.timedelta(microseconds=1)
    assert Moment().deserialize("2026-01-01T10:00").tzinfo is dt.UTC


@given(st.datetimes(timezones=st.one_of(st.none(), st.timezones())))
def test_moment_accepts_in_range_and_refuses_the_rest(value: dt.datetime) -> None:
    aware = value if value.utcoffset() is not None else value.replace(tzinfo=dt.UTC)
    in_range = MIN_MOMENT <= aware < MAX_MOMENT
    try:
        loaded = Moment().deserialize(value)
    except FieldError:
        assert not in_range
        return
    assert in_range and loaded == aware
    loaded.astimezone(dt.UTC) + dt.timedelta(days=1)  # adding a day to what is stored cannot overflow


# -- free JSON ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": "x\x00"}, "must not contain NUL characters"),
        ({"a\x00": 1}, "key 'a\\x00' must not contain NUL characters"),
        ({"a": ["\ud800"]}, "is not valid Unicode text"),
        ({"a": float("nan")}, "numbers must be finite (no NaN or infinity)"),
        ({"a": 2**63}, "integers must be between -9223372036854775808 and 9223372036854775807"),
        ({"a": 1.5e300}, "decimal numbers must be less than 1e+15 in magnitude"),
        (
            {"a": dt.datetime(2026, 1, 1)},
            "datetime is not a JSON value (text, a number, true, false, null, a list or an object)",
        ),
        ({"a": Decimal("1.5")}, "Decimal is not a JSON value (text, a number, true, false, null, a list or an object)"),
        ({1: "a"}, "keys must be text, got 1"),
        ("not a mapping", "Not a valid mapping type."),
    ],
)
def test_json_object_refuses_what_either_database_changes(value: Any, message: str) -> None:
    assert _error(JSONObject(), value) == [message]


def test_json_object_depth_is_bounded() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    assert JSONObject().deserialize({"a": deep[0]}) == {"a": deep[0]}
    assert _error(JSONObject(), {"a": deep}) == [f"nested deeper than {MAX_JSON_DEPTH} levels"]


def test_json_object_returns_plain_json() -> None:
    assert JSONObject().deserialize({"a": (1, 2), "b": {"c": None}}) == {"a": [1, 2], "b": {"c": None}}


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(alphabet=st.characters(codec=None), max_size=5),
        st.just(Decimal("1.5")),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(alphabet=st.characters(codec=None), max_size=3), inner, max_size=3),
        st.tuples(inner),
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_json_object_output_survives_a_json_round_trip(value: dict[str, Any]) -> None:
    try:
        loaded = JSONObject().deserialize(value)
    except FieldError:
        assert not json_ok(value)  # the quick check never accepts what the field refuses
        return
    text = json.dumps(loaded)
    assert json.loads(text) == loaded
    assert "\\u0000" not in text
    if json_ok(value):
        assert loaded == value


def test_json_ok_is_the_quick_form_of_the_field() -> None:
    assert json_ok({"a": [1, 2.5, "é", None, True, {"b": "c"}]})
    assert not json_ok({"a": (1,)})  # the field turns it into a list: not unchanged
    assert not json_ok({"a": math.inf})
    assert not json_ok({"a": "\x00"})


# -- ids ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x", "1", 1.0, None, True])
def test_require_id_refuses_a_non_integer_naming_the_id(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        require_id(value, "customer")
    assert list(caught.value.errors) == ["customer_id"]


@pytest.mark.parametrize("value", [0, -1, 2**31, 2**40])
def test_require_id_out_of_range_cannot_exist(value: int) -> None:
    with pytest.raises(NotFound) as caught:
        require_id(value, "customer")
    assert caught.value.key == value


def test_require_id_of_a_big_id_column() -> None:
    assert require_id(2**40, "activity", bits=64) == 2**40
    with pytest.raises(NotFound):
        require_id(2**63, "activity", bits=64)
    assert require_id(7, "customer") == 7


def test_check_names_the_argument() -> None:
    with pytest.raises(ValidationError) as caught:
        check(Text(max_length=200), "x" * 500, "cause", "invalid move")
    assert caught.value.errors == {"cause": ["longer than 200 characters"]}
    assert str(caught.value) == "invalid move: cause: longer than 200 characters"
    assert check(Moment(), "2026-01-01T00:00:00Z", "at") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
