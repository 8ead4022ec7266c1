"""Values as people read them: the CRM's locale and currency, durations, phones with tel: links, times in
the branch's zone, identifiers as their declared labels. The expected texts are written out by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from crmkit import CRM, FieldSpec, StageSpec, hookimpl
from crmkit.reports import Column, Report
from crmkit.reports.formats import Formats, humanize
from crmkit.triggers import Trigger
from crmkit.zones import TimeZones

US = Formats.build("en_US", "USD")
DE = Formats.build("de_DE", "EUR", region="DE")


def test_money_numbers_and_percentages_in_the_locale() -> None:
    money = Column("m", type="money")
    assert US.cell(Decimal("1234.5"), money) == "$1,234.50"
    assert DE.cell(1234.5, money) == "1.234,50\xa0€"
    assert US.cell(1234567, Column("n", type="integer")) == "1,234,567"
    assert DE.cell(1234567, Column("n", type="integer")) == "1.234.567"
    assert US.cell(2.346, Column("n", type="number")) == "2.35"
    assert US.cell(78.0, Column("p", type="percent")) == "78%"
    assert US.cell(66.666, Column("p", type="percent")) == "67%"  # whole percents from 10 up
    assert US.cell(4.25, Column("p", type="percent")) == "4.2%"  # one decimal below 10 (half to even)
    assert DE.cell(78.0, Column("p", type="percent")) == "78\xa0%"
    assert US.cell(None, money) == "—" and US.cell(True, Column("b")) == "yes"


def test_durations_read_in_sensible_units() -> None:
    hours = Column("h", type="hours")
    assert US.cell(0.5, hours) == "30 min"
    assert US.cell(5.25, hours) == "5.2 hr"
    assert US.cell(420.79, hours) == "17.5 days"  # was "420.79 h"


def test_dates_and_times_in_the_locale_and_the_branch_zone() -> None:
    zones = TimeZones("America/New_York", {"berlin": "Europe/Berlin"})
    fmt = Formats.build("en_US", "USD", zones=zones)
    moment = dt.datetime(2026, 7, 1, 16, 30, tzinfo=dt.UTC)
    assert fmt.cell(dt.date(2026, 3, 1), Column("d", type="date")) == "Mar 1, 2026"
    assert fmt.cell(moment, Column("t", type="datetime")).startswith("Jul 1, 2026, 12:30:00")
    assert fmt.cell(moment, Column("t", type="datetime")).endswith("EDT")
    assert fmt.datetime(moment, "berlin").startswith("Jul 1, 2026, 6:30:00") and fmt.datetime(
        moment, "berlin"
    ).endswith("CEST")
    assert DE.cell(dt.date(2026, 3, 1), Column("d", type="date")) == "01.03.2026"
    assert US.cell("2026-03-01", Column("d", type="date")) == "Mar 1, 2026"  # a KPI's ISO text
    assert US.cell("not a date", Column("d", type="date")) == "not a date"


def test_phones_national_at_home_international_abroad_and_linked() -> None:
    phone = Column("phone", type="phone")
    assert US.cell("+14155550101", phone) == "(415) 555-0101"
    assert US.cell("+493012345678", phone) == "+49 30 12345678"
    assert DE.cell("+493012345678", phone) == "030 12345678"
    assert str(US.html("+14155550101", phone)) == '<a href="tel:+14155550101">(415) 555-0101</a>'
    assert str(US.html("<b>not a phone</b>", phone)) == "&lt;b&gt;not a phone&lt;/b&gt;"


def test_changes_against_the_previous_period() -> None:
    assert US.change(110, 100, "integer") == "+10%"
    assert US.change(90, 100, "money") == "\u221210%"
    assert US.change(45.5, 42.0, "percent") == "+3.5 pp"  # a rate changes by points, not by a percentage
    assert US.change(5, 0, "integer") is None and US.change(None, 3, "integer") is None


def test_axis_labels_are_short_and_units_are_named() -> None:
    assert US.axis(40, "percent") == "40%"
    assert US.axis(125_000, "money") == "$125K"
    assert US.axis(12_500, "integer") == "12.5K"
    assert (US.unit("percent"), US.unit("money"), DE.unit("money"), US.unit("integer")) == ("%", "$", "€", "")


def test_identifiers_read_as_their_labels() -> None:
    assert humanize("walk_in") == "Walk in"
    assert humanize("fitness.trial_no_purchase") == "Trial no purchase"
    assert humanize("(all)") == "All"
    assert (US.label("month", "2026-01"), DE.label("month", "2026-03")) == ("Jan 2026", "März 2026")
    assert US.label("month", "2026") == "2026"  # a year key stays as it is


class _Labelled:
    plugin_name = "labelled"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [FieldSpec("goal", choices=("weight_loss", "rehab"), choice_labels={"weight_loss": "Lose weight"})]

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [StageSpec("at_risk", "At risk", parent="active")]

    @hookimpl
    def crmkit_register_triggers(self) -> list[Trigger]:
        return [Trigger("labelled.quiet", condition=lambda q: q.field("goal") == "rehab", label="Gone quiet")]


def test_a_report_shows_the_labels_the_declarations_give(crm_factory: Any) -> None:
    crm: CRM = crm_factory([_Labelled()])
    crm.reports.register(
        Report(
            "app.labels",
            "Labels",
            data=lambda ctx, params: [
                {"stage": "at_risk", "trigger": "labelled.quiet", "goal": "weight_loss", "source": "walk_in"},
                {"stage": "lead", "trigger": "other.unknown", "goal": "rehab", "source": "(all)"},
            ],
            columns=[
                Column("stage", labels="stage"),
                Column("trigger", labels="trigger"),
                Column("goal", labels="field:goal"),
                Column("source", labels="value"),
            ],
        )
    )
    html = crm.reports.render("app.labels")
    for text in ("At risk", "Gone quiet", "Lose weight", "Walk in", "Lead", "Unknown", "Rehab", ">All<"):
        assert text in html, text
    assert "labelled.quiet" not in html and "walk_in" not in html
    # machine formats keep the identifiers
    assert "labelled.quiet" in crm.reports.render("app.labels", format="csv")
    assert '"walk_in"' in crm.reports.render("app.labels", format="json")


def test_choice_labels_must_name_choices() -> None:
    with pytest.raises(ValueError, match="choice_labels name values that are not choices"):
        FieldSpec("goal", choices=("a",), choice_labels={"b": "B"})


def test_a_crm_refuses_a_locale_or_currency_it_does_not_know(crm_factory: Any) -> None:
    with pytest.raises(ValueError, match="locale 'xx_YY' is not known"):
        crm_factory([], locale="xx_YY")
    with pytest.raises(ValueError, match="currency 'DOLLARS' is not an ISO 4217 code"):
        crm_factory([], currency="DOLLARS")
    crm: CRM = crm_factory([], locale="de_DE", currency="EUR")
    assert crm.formats.value(1234.5, "money") == "1.234,50\xa0€"
