"""crmkit.imports.values: a cell is read the way the user says the file writes it, into the type the customer
schema takes, and a value that cannot be read is refused with one line that quotes it and says what was
expected."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.fields import FIELD_TYPES
from crmkit.imports.values import DATE_FORMATS, KINDS, ParseOptions, parse_value

DEFAULT = ParseOptions()
COMMA = ParseOptions(decimal_comma=True)
GOALS = ("weight_loss", "muscle", "endurance")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")

# what each named format writes, as plain Python writes it
WRITERS = {
    "yyyy-mm-dd": lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
    "dd/mm/yyyy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year:04d}",
    "mm/dd/yyyy": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year:04d}",
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year:04d}",
    "dd-mm-yyyy": lambda d: f"{d.day:02d}-{d.month:02d}-{d.year:04d}",
    "yyyy/mm/dd": lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}",
}
DATES = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2199, 12, 31))


def test_the_kinds_are_the_field_types() -> None:
    assert set(KINDS) == set(FIELD_TYPES)
    assert set(WRITERS) == set(DATE_FORMATS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("empty", [None, "", "   ", " \t "])
def test_an_empty_cell_is_none(kind: str, empty: Any) -> None:
    assert parse_value(kind, empty, DEFAULT) is None  # an import's update then leaves the field as it is


def test_an_empty_boolean_cell_is_false_when_the_empty_word_is_a_false_value() -> None:
    options = ParseOptions(false_values=("no", "false", ""))  # a checkbox column: x or nothing
    assert parse_value("boolean", "", options) is False
    assert parse_value("boolean", None, options) is False
    assert parse_value("boolean", " NO ", options) is False


def test_strings_are_stripped_and_typed_cells_become_their_text() -> None:
    assert parse_value("string", "  Anna Petrova \t", DEFAULT) == "Anna Petrova"
    assert parse_value("text", " line one\nline two ", DEFAULT) == "line one\nline two"
    # a phone number an XLSX file keeps as a number loses neither digits nor gains a ".0"
    assert parse_value("string", 79161234567.0, DEFAULT) == "79161234567"
    assert parse_value("string", 42, DEFAULT) == "42"
    assert parse_value("string", 2.5, DEFAULT) == "2.5"
    assert parse_value("string", dt.datetime(2024, 3, 1), DEFAULT) == "2024-03-01"


@pytest.mark.parametrize("name", DATE_FORMATS)
@given(day=DATES)
def test_every_date_written_in_each_named_format_reads_back_as_itself(name: str, day: dt.date) -> None:
    assert parse_value("date", WRITERS[name](day), ParseOptions(date_format=name)) == day


@given(day=DATES)
def test_day_and_month_may_have_one_digit(day: dt.date) -> None:
    written = f"{day.day}/{day.month}/{day.year}"
    assert parse_value("date", written, ParseOptions(date_format="dd/mm/yyyy")) == day
    assert parse_value("date", f" {day.month}/{day.day}/{day.year} ", ParseOptions(date_format="mm/dd/yyyy")) == day


def test_other_date_formats_named_or_strptime() -> None:
    assert parse_value("date", "01/03/2024", ParseOptions(date_format="DD/MM/YYYY")) == dt.date(2024, 3, 1)
    upper = ParseOptions(date_format="DD.MM.YYYY", timezone="Europe/Berlin")
    assert parse_value("datetime", "01.03.2024 10:00", upper) == dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert parse_value("date", "01.03.24", ParseOptions(date_format="dd.mm.yy")) == dt.date(2024, 3, 1)
    assert parse_value("date", "01.03.85", ParseOptions(date_format="dd.mm.yy")) == dt.date(1985, 3, 1)
    assert parse_value("date", "1 March 2024", ParseOptions(date_format="%d %B %Y")) == dt.date(2024, 3, 1)
    assert parse_value("date", "20240301", ParseOptions(date_format="%Y%m%d")) == dt.date(2024, 3, 1)


def test_an_excel_date_cell_is_a_date() -> None:
    assert parse_value("date", dt.datetime(2024, 3, 1), DEFAULT) == dt.date(2024, 3, 1)
    assert parse_value("date", dt.date(2024, 3, 1), ParseOptions(date_format="dd/mm/yyyy")) == dt.date(2024, 3, 1)


@given(number=st.integers(min_value=-(10**15), max_value=10**15))
def test_integers_written_with_or_without_thousands_separators(number: int) -> None:
    assert parse_value("integer", str(number), DEFAULT) == number
    assert parse_value("integer", f"{number:,}", DEFAULT) == number
    assert parse_value("integer", f"{number:,}".replace(",", "."), COMMA) == number
    assert parse_value("integer", f"{number:,}".replace(",", "\u00a0"), COMMA) == number


def test_typed_integer_cells() -> None:
    assert parse_value("integer", 12, DEFAULT) == 12
    assert parse_value("integer", 12.0, DEFAULT) == 12  # an XLSX number is a float
    assert parse_value("integer", "+7", DEFAULT) == 7
    assert parse_value("integer", "12.0", DEFAULT) == 12
    assert type(parse_value("integer", 12.0, DEFAULT)) is int


MONEY = st.decimals(min_value=-(10**11), max_value=10**11, places=2, allow_nan=False, allow_infinity=False)


@given(amount=MONEY)
def test_decimals_written_with_point_or_comma_read_back_exactly(amount: Decimal) -> None:
    point = f"{amount:,}"  # 1,234.50
    comma = point.replace(",", " ").replace(".", ",")  # 1 234,50
    dotted = point.replace(",", "_").replace(".", ",").replace("_", ".")  # 1.234,50
    for written, options in [(point, DEFAULT), (f"{amount}", DEFAULT), (comma, COMMA), (dotted, COMMA)]:
        parsed = parse_value("decimal", written, options)
        assert isinstance(parsed, Decimal)
        assert parsed == amount and str(parsed) == str(amount), written  # the places written are kept


def test_decimals_from_the_examples_and_typed_cells() -> None:
    assert parse_value("decimal", "1.234,56", COMMA) == Decimal("1234.56")
    assert parse_value("decimal", "1,234.56", DEFAULT) == Decimal("1234.56")
    assert parse_value("decimal", "1 234 567,5", COMMA) == Decimal("1234567.5")
    assert parse_value("decimal", "-,5", COMMA) == Decimal("-0.5")
    assert parse_value("decimal", 0.1, DEFAULT) == Decimal("0.1")  # the float as written, not 0.1000000000000000055
    assert parse_value("decimal", 12, DEFAULT) == Decimal(12)


@given(word=st.sampled_from(["true", "yes", "y", "1", "x"]), upper=st.booleans(), pad=st.sampled_from(["", " ", "\t"]))
def test_true_words_in_any_case(word: str, upper: bool, pad: str) -> None:
    assert parse_value("boolean", pad + (word.upper() if upper else word) + pad, DEFAULT) is True


def test_booleans() -> None:
    for word in ("false", "No", " N ", "0"):
        assert parse_value("boolean", word, DEFAULT) is False
    assert parse_value("boolean", True, DEFAULT) is True
    assert parse_value("boolean", 1, DEFAULT) is True
    assert parse_value("boolean", 0.0, DEFAULT) is False
    german = ParseOptions(true_values=("Ja",), false_values=("Nein",))
    assert parse_value("boolean", "JA", german) is True
    assert parse_value("boolean", "nein", german) is False


def test_naive_datetimes_are_local_to_the_timezone_and_returned_in_utc() -> None:
    berlin = ParseOptions(timezone="Europe/Berlin", date_format="dd.mm.yyyy")
    winter = dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)  # 10:30 in Berlin is 09:30 UTC (CET, +1)
    assert parse_value("datetime", "15.01.2024 10:30", berlin) == winter
    assert parse_value("datetime", "2024-01-15T10:30:00", berlin) == winter
    assert parse_value("datetime", "15.01.2024 10:30:00", berlin) == winter
    assert parse_value("datetime", dt.datetime(2024, 1, 15, 10, 30), berlin) == winter  # an XLSX cell
    # a date alone is midnight there; an offset written in the text wins over the zone
    assert parse_value("datetime", "15.01.2024", berlin) == dt.datetime(2024, 1, 14, 23, 0, tzinfo=dt.UTC)
    assert parse_value("datetime", "2024-01-15T10:30+03:00", berlin) == dt.datetime(2024, 1, 15, 7, 30, tzinfo=dt.UTC)
    assert parse_value("datetime", "2024-01-15T10:30Z", berlin) == dt.datetime(2024, 1, 15, 10, 30, tzinfo=dt.UTC)
    moment = parse_value("datetime", "2024-01-15 10:30", DEFAULT)
    assert moment == dt.datetime(2024, 1, 15, 10, 30, tzinfo=dt.UTC) and moment.utcoffset() == dt.timedelta(0)


def test_a_given_datetime_format() -> None:
    options = ParseOptions(datetime_format="mm/dd/yyyy HH:MM", timezone="America/New_York")
    assert parse_value("datetime", "07/04/2024 18:05", options) == dt.datetime(2024, 7, 4, 22, 5, tzinfo=dt.UTC)
    stamp = ParseOptions(datetime_format="%d %b %Y %H:%M:%S %z")
    assert parse_value("datetime", "04 Jul 2024 18:05:00 +0200", stamp) == dt.datetime(2024, 7, 4, 16, 5, tzinfo=dt.UTC)


def test_a_local_time_that_does_not_exist_is_refused_and_one_that_happens_twice_is_the_first() -> None:
    berlin = ParseOptions(timezone="Europe/Berlin")
    with pytest.raises(ValueError, match=r"^'2024-03-31 02:30' does not exist in Europe/Berlin") as caught:
        parse_value("datetime", "2024-03-31 02:30", berlin)
    assert "\n" not in str(caught.value)
    # 02:30 on 27 Oct 2024 happens at 00:30 UTC (still CEST, +2) and again at 01:30 UTC: the first is taken
    assert parse_value("datetime", "2024-10-27 02:30", berlin) == dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.UTC)


@given(moment=st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2199, 1, 1)))
def test_a_berlin_wall_clock_time_reads_back_as_its_instant(moment: dt.datetime) -> None:
    moment = moment.replace(microsecond=0)
    instant = moment.replace(tzinfo=dt.UTC)
    local = instant.astimezone(BERLIN)
    written = f"{local.day:02d}/{local.month:02d}/{local.year} {local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    parsed = parse_value("datetime", written, ParseOptions(date_format="dd/mm/yyyy", timezone="Europe/Berlin"))
    if local.fold:  # the second of a repeated hour: read as the first, one hour earlier
        assert parsed == instant - dt.timedelta(hours=1)
    else:
        assert parsed == instant
    assert parse_value("datetime", instant.isoformat(), DEFAULT) == instant


def test_choices_by_label_value_and_loose_spelling() -> None:
    options = ParseOptions(choices={"goal": {"Abnehmen": "weight_loss", "Kraft": "muscle"}})
    assert parse_value("string", " Abnehmen ", options, field="goal", choices=GOALS) == "weight_loss"
    assert parse_value("string", "kraft", options, field="goal", choices=GOALS) == "muscle"
    assert parse_value("string", "endurance", options, field="goal", choices=GOALS) == "endurance"
    assert parse_value("string", "Weight loss", DEFAULT, field="goal", choices=GOALS) == "weight_loss"
    assert parse_value("string", "WEIGHT-LOSS", DEFAULT, field="goal", choices=GOALS) == "weight_loss"
    # labels work for a field without declared choices too
    source = ParseOptions(choices={"source": {"Walk-in": "walk_in"}})
    assert parse_value("string", "Walk-in", source, field="source") == "walk_in"
    assert parse_value("string", "Instagram", source, field="source") == "Instagram"


BAD: list[tuple[str, Any, ParseOptions, str]] = [
    ("date", "31/02/2024", ParseOptions(date_format="dd/mm/yyyy"), "not a date in the format dd/mm/yyyy: '31/02/2024'"),
    ("date", "2024-03-01", ParseOptions(date_format="dd/mm/yyyy"), "not a date in the format dd/mm/yyyy: '2024-03-01'"),
    ("date", "13/25/2024", ParseOptions(date_format="mm/dd/yyyy"), "not a date in the format mm/dd/yyyy: '13/25/2024'"),
    ("date", "yesterday", DEFAULT, "not a date in the format yyyy-mm-dd: 'yesterday'"),
    ("date", 45352, DEFAULT, "not a date in the format yyyy-mm-dd: 45352"),
    (
        "date",
        dt.datetime(2024, 3, 1, 14, 0),
        DEFAULT,
        "not a date in the format yyyy-mm-dd: '2024-03-01 14:00:00' has a time of day",
    ),
    (
        "datetime",
        "01/03/2024 25:00",
        ParseOptions(date_format="dd/mm/yyyy"),
        "not a date and time in ISO 8601 or as dd/mm/yyyy HH:MM[:SS]: '01/03/2024 25:00'",
    ),
    (
        "datetime",
        "2024-03-01",
        ParseOptions(datetime_format="dd.mm.yyyy HH:MM"),
        "not a date and time in the format dd.mm.yyyy HH:MM: '2024-03-01'",
    ),
    ("integer", "12.5", DEFAULT, "not a whole number: '12.5'"),
    ("integer", 12.5, DEFAULT, "not a whole number: 12.5"),
    ("integer", "twelve", DEFAULT, "not a whole number: 'twelve'"),
    ("integer", "1e3", DEFAULT, "not a whole number: '1e3'"),
    ("integer", True, DEFAULT, "not a whole number: True"),
    ("decimal", "1,2,3", DEFAULT, "not a number: '1,2,3'"),
    ("decimal", "1,2,3", COMMA, "not a number: '1,2,3'"),
    ("decimal", "1.2.3", COMMA, "not a number: '1.2.3'"),
    ("decimal", "1,23", DEFAULT, "not a number: '1,23' (is ',' the decimal mark in this file? then set decimal_comma)"),
    (
        "decimal",
        "12.50",
        COMMA,
        "not a number: '12.50' ('.' is read as a thousands separator: is decimal_comma set by mistake?)",
    ),
    ("decimal", "1,234 567", DEFAULT, "not a number: '1,234 567'"),
    ("decimal", "$12", DEFAULT, "not a number: '$12'"),
    ("decimal", "NaN", DEFAULT, "not a number: 'NaN'"),
    ("decimal", float("inf"), DEFAULT, "not a number: inf"),
    ("decimal", "1" * 200, DEFAULT, f"not a number: '{'1' * 76}..."),
    (
        "boolean",
        "maybe",
        DEFAULT,
        "not a yes/no value: 'maybe' (expected true, yes, y, 1, x for yes; false, no, n, 0 for no)",
    ),
    ("string", "Yoga", DEFAULT, "unknown choice 'Yoga' for goal: expected one of weight_loss, muscle, endurance"),
    ("string", ["a"], DEFAULT, "not text: ['a']"),
    (
        "string",
        "Pilates",
        ParseOptions(choices={"goal": {"Pilates": "pilates"}}),
        "the label 'Pilates' for goal stands for 'pilates', which is not one of weight_loss, muscle, endurance",
    ),
    ("money", "12", DEFAULT, "unknown field type 'money': expected one of string, text, integer, decimal, boolean"),
]


@pytest.mark.parametrize(("kind", "value", "options", "message"), BAD, ids=lambda v: repr(v)[:30])
def test_a_bad_value_is_refused_with_one_line_quoting_it(kind: str, value: Any, options: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_value(kind, value, options, field="goal", choices=GOALS if kind == "string" else ())
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"date_format": "dd/mm"}, "date_format 'dd/mm' is not a format"),
        ({"date_format": "dd/mm/yyyy HH:MM"}, "date_format 'dd/mm/yyyy HH:MM' is not a format"),
        ({"date_format": "%Q"}, "date_format '%Q' is not a usable strptime pattern"),
        ({"datetime_format": "dd/mm/yyyy"}, "datetime_format 'dd/mm/yyyy' is not a format"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"true_values": ("yes", "x"), "false_values": ("no", "x")}, "x cannot be both a true and a false value"),
    ],
)
def test_options_that_cannot_work_are_refused_when_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        ParseOptions(**options)
