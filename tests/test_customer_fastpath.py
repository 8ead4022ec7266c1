"""The customer fast path accepts input only when marshmallow's ``customer_in`` would load it, with the
same values, for a create and for an update."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import CRM, FieldSpec, ValidationError, hookimpl
from crmkit import schemas as sch
from crmkit.fastpath import customer_fast_check, customer_fast_check_many
from crmkit.fastrows import dumper
from crmkit.schemas import load


class Salon:
    """Fields of every type: required, defaults, choices, limits."""

    plugin_name = "salon"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("card", required=True, max_length=6),
            FieldSpec("hair", choices=("short", "long"), default="short"),
            FieldSpec("notes", "text"),
            FieldSpec("visits", "integer", default=0),
            FieldSpec("vip", "boolean"),
            FieldSpec("since", "date"),
            FieldSpec("spent", "decimal"),
        ]


CRM_ = CRM("sqlite://", plugins=[Salon()], load_entry_points=False)  # declarations only; no database use
FIELDS = list(CRM_.registry.fields.values())
STAGES = [s.name for s in CRM_.registry.stages.values() if s.initial]
SCHEMA = sch.customer_in(FIELDS, [], CRM_.normalize_phone, STAGES, CRM_.phone_region)()
CHECKS = {partial: customer_fast_check(FIELDS, STAGES, partial=partial) for partial in (False, True)}

BAD_TEXT = ["a\x00", "\ud800", "é\udfff"]
text = st.sampled_from(["", " x", "ok", "Đặng", "a" * 101, *BAD_TEXT])
rows = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["Anna", "", " Anna", "a" * 200, "a" * 201, None, 5, "An\x00na", "Đặng"]),
        "email": st.sampled_from(["anna@example.com", "Anna@Example.COM", "nope", "", " a@b.co", None, 3]),
        "phone": st.sampled_from(["(212) 200-0001", "+14155550100", "12", "+66 81 234 5678", "", "1" * 51, None]),
        "birthday": st.sampled_from([dt.date(1990, 1, 2), "1990-01-02", dt.datetime(1990, 1, 2), None]),
        "source": st.one_of(st.none(), text),
        "campaign": st.one_of(st.none(), text),
        "branch": st.one_of(st.none(), text),
        "owner_id": st.sampled_from([1, 0, -3, 2**31, True, 1.0, "7", None]),
        "country": st.sampled_from(["TH", "th", " TH", "XX", "", "THA", "1A", None, 5]),
        "stage": st.sampled_from(["lead", "active", "loyal", "nope", None, 1]),
        "card": st.sampled_from(["C1", "C123456", "C12345", "", " C1", None, 12]),
        "hair": st.sampled_from(["short", "long", "bald", " long", None]),
        "notes": st.one_of(st.none(), text),
        "visits": st.sampled_from([0, 3, -1, 2**31, 2**31 - 1, False, 2.0, "3", None]),
        "vip": st.sampled_from([True, False, "yes", 1, None]),
        "since": st.sampled_from([dt.date(2020, 1, 1), "2020-01-01", None]),
        "spent": st.sampled_from(["12.50", 3, None]),
        "unknown": st.just("x"),
    },
)

#: Mostly valid input, with the required keys: what an app sends, and what the fast path is for.
good_rows = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["Anna", "Đặng", " Anna"]),
        "card": st.sampled_from(["C1", "C123456", "C1234567"]),
    },
    optional={
        "email": st.sampled_from(["anna@example.com", "Anna@Example.COM", "nope", None]),
        "phone": st.sampled_from(["(212) 200-0001", "+14155550100", "081 234 5678", "12", None]),
        "source": st.sampled_from(["web", None, " web"]),
        "branch": st.sampled_from(["bangkok", None]),
        "owner_id": st.sampled_from([1, None, 2**31]),
        "country": st.sampled_from(["TH", "US", "th", None]),
        "stage": st.sampled_from(["lead", "active", "loyal"]),
        "hair": st.sampled_from(["short", "long", None]),
        "notes": st.sampled_from(["a" * 1000, "x\x00", None]),
        "visits": st.sampled_from([0, 3, None]),
        "vip": st.sampled_from([True, False, None]),
        "since": st.sampled_from([None, dt.date(2020, 1, 1)]),
        "spent": st.sampled_from([None, "1.50"]),
    },
)
#: Input the fast path should take, but for a phone that may not be valid in the customer's region.
valid_rows = st.fixed_dictionaries(
    {"name": st.sampled_from(["Anna", "Đặng"]), "card": st.sampled_from(["C1", "C123456"])},
    optional={
        "email": st.sampled_from(["anna@example.com", "Anna@Example.COM"]),
        "phone": st.sampled_from(["(212) 200-0001", "+14155550100", "081 234 5678", "12"]),
        "branch": st.sampled_from(["bangkok", None]),
        "owner_id": st.sampled_from([1, None]),
        "country": st.sampled_from(["TH", "US", None]),
        "stage": st.sampled_from(["lead", "active"]),
        "hair": st.sampled_from(["short", "long", None]),
        "visits": st.sampled_from([0, 3, None]),
        "vip": st.sampled_from([True, False, None]),
    },
)
any_rows = st.one_of(rows, good_rows, valid_rows)


def _marshmallow(row: dict[str, Any], partial: bool) -> dict[str, Any]:
    try:
        return {"values": load(SCHEMA, row, partial=partial)}
    except ValidationError as exc:
        return {"errors": exc.errors}


@pytest.mark.parametrize("partial", [False, True])
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=any_rows)
def test_fast_path_never_disagrees_with_marshmallow(partial: bool, row: dict[str, Any]) -> None:
    fast = CHECKS[partial](row)
    if fast is None:
        return  # falls back to marshmallow: always safe
    slow = _marshmallow(row, partial)
    if "errors" in slow:
        # the one check the fast path leaves to the service: the phone in its region, with this message
        assert not partial and list(slow["errors"]) == ["phone"], (row, slow)
        region = CRM_.phone_region(row.get("country"), row.get("branch"))
        with pytest.raises(ValueError) as refused:
            CRM_.normalize_phone(row["phone"], region)
        assert slow["errors"]["phone"] == [str(refused.value)]
        return
    assert fast == slow["values"]


MANY = {partial: customer_fast_check_many(FIELDS, STAGES, partial=partial) for partial in (False, True)}


@pytest.mark.parametrize("partial", [False, True])
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(many=st.one_of(st.lists(any_rows, max_size=6), st.lists(st.one_of(good_rows, valid_rows), max_size=6)))
def test_many_rows_checked_a_field_at_a_time_get_each_rows_answer(partial: bool, many: list[dict[str, Any]]) -> None:
    assert MANY[partial](many) == [CHECKS[partial](row) for row in many]


def test_a_batch_of_typical_rows_is_taken_and_a_bad_value_sends_only_its_row_back() -> None:
    good: dict[str, Any] = {"name": "Anna", "email": "anna@example.com", "phone": "(212) 200-0001", "card": "C1"}
    rows: list[dict[str, Any]] = [
        good,
        {**good, "name": "Ben", "card": "C1234567"},
        {**good, "hair": "long", "visits": 3},
    ]
    checked = MANY[False](rows)
    assert checked == [{**good, "hair": "short", "visits": 0}, None, {**good, "hair": "long", "visits": 3}]
    assert checked[0] is not good  # a copy, as the check of one row gives


def test_typical_input_takes_the_fast_path() -> None:
    row = {"name": "Anna", "email": "anna@example.com", "phone": "(212) 200-0001", "card": "C1", "country": "US"}
    created = CHECKS[False](row)
    assert created == {**row, "hair": "short", "visits": 0}
    assert CHECKS[True]({"phone": "+14155550100", "hair": "long"}) == {"phone": "+14155550100", "hair": "long"}
    assert CHECKS[False]({**row, "email": " anna@example.com"}) is None  # marshmallow trims it
    assert CHECKS[False]({"name": "Anna"}) is None  # a required plugin field missing: marshmallow says so


OUT = sch.customer_out(FIELDS, [FieldSpec("shoe", "decimal"), FieldSpec("seen", "datetime")])()
DUMP = dumper(OUT)
_ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=7))]
records = st.fixed_dictionaries(
    {
        name: st.one_of(st.none(), values)
        for name, values in {
            "id": st.integers(1, 2**31),
            "name": st.text(max_size=5),
            "email": st.text(max_size=5),
            "email_normalized": st.text(max_size=5),
            "phone": st.text(max_size=5),
            "phone_normalized": st.text(max_size=5),
            "birthday": st.dates(),
            "source": st.text(max_size=3),
            "campaign": st.text(max_size=3),
            "owner_id": st.one_of(st.integers(), st.just(True)),
            "branch": st.text(max_size=3),
            "country": st.sampled_from(["TH", "US"]),
            "stage": st.sampled_from(["lead", "active"]),
            "lifecycle": st.sampled_from(["lead", "active"]),
            "stage_changed_at": st.datetimes(timezones=st.sampled_from(_ZONES)),
            "created_at": st.datetimes(timezones=st.sampled_from(_ZONES)),
            "updated_at": st.datetimes(),
            "card": st.one_of(st.text(max_size=3), st.integers()),
            "hair": st.sampled_from(["short", "long"]),
            "notes": st.text(max_size=3),
            "visits": st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()),
            "vip": st.one_of(st.booleans(), st.integers(0, 1)),
            "since": st.dates(),
            "spent": st.decimals(places=2, allow_nan=False, allow_infinity=False),
            "shoe": st.decimals(places=2, allow_nan=False, allow_infinity=False),
            "seen": st.datetimes(timezones=st.sampled_from(_ZONES)),
        }.items()
    }
)


@settings(max_examples=500, deadline=None)
@given(record=records)
def test_the_fast_dumper_is_marshmallows_dump_of_a_customer_record(record: dict[str, Any]) -> None:
    assert len(OUT.dump_fields) == len(record) > 20
    assert DUMP(record) == OUT.dump(record)


def _marshmallow_email(value: str) -> bool:
    from marshmallow import ValidationError as FieldError
    from marshmallow import validate

    try:
        validate.Email()(value)
    except FieldError:
        return False
    return True


emails = st.one_of(
    st.from_regex(r"[a-zA-Z0-9.!#_\"\\ @-]{0,6}@[a-zA-Z0-9.ü-]{0,8}(\.[a-z]{1,7})?", fullmatch=True),
    st.emails().map(str),
    st.text(st.sampled_from('a.@"\\-_ü[]1 \x00'), max_size=12),
    st.sampled_from(["a@localhost", "a@[127.0.0.1]", "a@[300.1.1.1]", '"a b"@x.example', "a@b@c.example", "@x.example",
                     "a@", "a..b@x.example", "a@-x.example", "a@x.example.", "é@x.example", "a@xn--bcher-kva.example"]),
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(value=emails)
def test_the_email_check_accepts_what_marshmallows_email_validator_accepts(value: str) -> None:
    from crmkit.fastpath import _email, _plain_str

    assert _email(value) == (_plain_str(value, 320) and _marshmallow_email(value))
