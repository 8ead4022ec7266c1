"""How a report's values read for a person: numbers, money, percentages, dates, durations and phones in the
CRM's locale and currency (Babel), times in the customer's branch zone, identifiers as their labels.

CSV and JSON keep the raw values (a spreadsheet or a program reads them); HTML and Markdown go through
:class:`Formats`. One object per CRM (``crm.formats``), built from ``CRM(locale=, currency=)``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import phonenumbers
from babel import Locale, UnknownLocaleError
from babel import dates as bdates
from babel import numbers as bnumbers
from babel import units as bunits
from markupsafe import Markup, escape

from crmkit.reports.spec import CHART_VALUE_TYPES, Column, ColumnType
from crmkit.zones import TimeZones

MINUS = "\u2212"  # the typographic minus sign reads better than a hyphen before a number

#: Column types whose values are numbers drawn right-aligned and charted on a value axis.
NUMERIC = CHART_VALUE_TYPES


def locale_of(name: str) -> Locale:
    """The Babel locale ``name`` (``en_US``, ``de-DE``); a clear ``ValueError`` for one Babel lacks."""
    try:
        return Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise ValueError(f"locale {name!r} is not known (use a name such as 'en_US' or 'de_DE')") from exc


def currency_of(code: str, locale: Locale) -> str:
    code = (code or "").upper()
    if code not in locale.currencies:
        raise ValueError(f"currency {code!r} is not an ISO 4217 code (use a code such as 'USD' or 'EUR')")
    return code


#: the KPIs' markers for a total row and for rows without a value
_SPECIAL = {"(all)": "All", "(none)": "Not given"}


def humanize(name: str) -> str:
    """An identifier as a person reads it when its declaration gives no label: ``walk_in`` → "Walk in",
    ``fitness.trial_no_purchase`` → "Trial no purchase"."""
    if name in _SPECIAL:
        return _SPECIAL[name]
    text = name.rsplit(".", 1)[-1].replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name


def _iso(text: str) -> Any:
    try:
        return dt.datetime.fromisoformat(text) if "T" in text or " " in text else dt.date.fromisoformat(text)
    except ValueError:
        return text


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


@attrs.frozen
class Formats:
    """Formats values for people. ``labels(kind, value)`` gives the declared label of a stage, trigger,
    activity kind or status, report or a field's choice (``kind`` is ``"stage"``, ``"trigger"``,
    ``"kind"``, ``"status"``, ``"report"`` or ``"field:<name>"``)."""

    locale: Locale = attrs.field(factory=lambda: locale_of("en_US"))
    currency: str = "USD"
    zones: TimeZones = attrs.field(factory=TimeZones)
    #: the region whose numbers are shown in national form; others are shown international
    region: str = "US"
    labels: Callable[[str, str], str | None] = attrs.field(default=lambda kind, value: None)

    @classmethod
    def build(
        cls,
        locale: str = "en_US",
        currency: str = "USD",
        *,
        zones: TimeZones | None = None,
        region: str = "US",
        labels: Callable[[str, str], str | None] | None = None,
    ) -> Formats:
        loc = locale_of(locale)
        return cls(
            loc,
            currency_of(currency, loc),
            zones or TimeZones(),
            region.upper(),
            labels or (lambda kind, value: None),
        )

    # -- numbers -----------------------------------------------------------------------------------------

    def integer(self, value: float) -> str:
        return bnumbers.format_decimal(round(value), format="#,##0", locale=self.locale)

    def number(self, value: float, digits: int = 2) -> str:
        """A number with at most ``digits`` decimals, no trailing zeros: 2.5, 1,234, 0.33."""
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return bnumbers.format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, value: float) -> str:
        """A value on the 0-100 scale as a percentage: whole numbers from 10 up, one decimal below."""
        pattern = bnumbers.parse_pattern(self.locale.percent_formats[None].pattern)  # the locale's spacing
        pattern.frac_prec = (0, 0) if abs(value) >= 10 or value == int(value) else (0, 1)
        return pattern.apply(value / 100, self.locale)

    def money(self, value: float, *, compact: bool = False) -> str:
        if compact and abs(value) >= 10_000:
            return bnumbers.format_compact_currency(value, self.currency, locale=self.locale, fraction_digits=1)
        return bnumbers.format_currency(value, self.currency, locale=self.locale)

    def currency_symbol(self) -> str:
        return bnumbers.get_currency_symbol(self.currency, locale=self.locale)

    def duration(self, hours: float) -> str:
        """Hours in the unit a person would say: "45 min", "5.5 h", "17.5 days"."""
        if abs(hours) < 1:
            value, unit = round(hours * 60), "duration-minute"
        elif abs(hours) < 48:
            value, unit = round(hours, 1), "duration-hour"  # type: ignore[assignment]
        else:
            value, unit = round(hours / 24, 1), "duration-day"  # type: ignore[assignment]
        return bunits.format_unit(value, unit, length="short", locale=self.locale, format="#,##0.#")

    # -- dates and times ---------------------------------------------------------------------------------

    def date(self, value: dt.date) -> str:
        return bdates.format_date(value, format="medium", locale=self.locale)

    def datetime(self, value: dt.datetime, branch: str | None = None) -> str:
        """A moment in the branch's zone (the CRM's zone without a branch), with the zone's name."""
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        local = self.zones.local(moment, branch)
        text = bdates.format_datetime(local, format="medium", locale=self.locale)
        return f"{text} {local.tzname() or ''}".rstrip()

    # -- phones ------------------------------------------------------------------------------------------

    def phone(self, value: str) -> str:
        """An E.164 number in national form when it belongs to the CRM's region, else international."""
        try:
            number = phonenumbers.parse(value, None if value.startswith("+") else self.region)
        except phonenumbers.NumberParseException:
            return value
        own = phonenumbers.region_code_for_number(number) == self.region
        style = phonenumbers.PhoneNumberFormat.NATIONAL if own else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        return phonenumbers.format_number(number, style)

    def phone_link(self, value: str) -> Markup:
        try:
            number = phonenumbers.parse(value, None if value.startswith("+") else self.region)
            target = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            return Markup(escape(value))
        return Markup('<a href="tel:{}">{}</a>').format(target, self.phone(value))

    # -- labels ------------------------------------------------------------------------------------------

    def label(self, kind: str, value: str) -> str:
        """The declared label of ``value`` (a stage, trigger, report, kind or choice), else a readable
        form of the identifier; for ``kind="month"`` a ``YYYY-MM`` key as the locale writes a month
        ("Jan 2026")."""
        if kind == "month":
            return self.month(value)
        return self.labels(kind, value) or humanize(value)

    def month(self, key: str) -> str:
        """A month key ``YYYY-MM`` as "Jan 2026" (a year key ``YYYY``, or anything else, as it is)."""
        try:
            first = dt.date.fromisoformat(f"{key}-01")
        except (TypeError, ValueError):
            return key
        return bdates.format_skeleton("yMMM", first, locale=self.locale)

    # -- cells -------------------------------------------------------------------------------------------

    def cell(self, value: Any, column: Column, *, branch: str | None = None) -> str:
        """How a value reads in a table cell (HTML escapes it; Markdown escapes it too)."""
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        kind = column.type
        number = _number(value)
        if number is not None and kind in NUMERIC:
            return self.value(number, kind)
        if isinstance(value, str) and kind in ("date", "datetime"):
            value = _iso(value)  # a KPI gives its dates as ISO text, the JSON they are in the API
        if isinstance(value, dt.datetime):
            return self.datetime(value, branch)
        if isinstance(value, dt.date):
            return self.date(value)
        if column.labels and isinstance(value, str):
            return self.label(column.labels, value)
        if kind == "phone" and isinstance(value, str):
            return self.phone(value)
        if number is not None:
            return self.number(number)
        return str(value)

    def html(self, value: Any, column: Column, *, branch: str | None = None) -> Markup:
        """A table cell for HTML: escaped text; a phone as a ``tel:`` link."""
        if column.type == "phone" and isinstance(value, str) and value:
            return self.phone_link(value)
        return Markup(escape(self.cell(value, column, branch=branch)))

    def value(self, number: float, kind: ColumnType | str) -> str:
        """A number of a column type: "1,234", "$12.50", "78%", "5.5 h"."""
        if kind == "percent":
            return self.percent(number)
        if kind == "money":
            return self.money(number)
        if kind == "hours":
            return self.duration(number)
        if kind == "integer":
            return self.integer(number)
        return self.number(number)

    def axis(self, number: float, kind: ColumnType | str) -> str:
        """A short tick label on a value axis: "40%", "$12K", "1.2K"; durations as plain numbers (the
        axis title names the unit, see :meth:`unit`)."""
        if kind == "percent":
            return self.percent(number)
        if kind == "money":
            return self.money(number, compact=True) if abs(number) >= 10_000 else self.money(number)
        if abs(number) >= 10_000:
            return bnumbers.format_compact_decimal(number, locale=self.locale, fraction_digits=1)
        return self.number(number, 1)

    def unit(self, kind: ColumnType | str) -> str:
        """The unit an axis title names: "%", the currency symbol, "hours"; "" for counts."""
        if kind == "percent":
            return "%"
        if kind == "money":
            return self.currency_symbol()
        if kind == "hours":
            return "hours"
        return ""

    def change(self, current: float | None, previous: float | None, kind: ColumnType | str) -> str | None:
        """The change from ``previous`` to ``current`` as a person reads it: "+12%" for counts and money,
        "+3.5 pp" for percentages; ``None`` when there is nothing to compare with."""
        if current is None or previous is None:
            return None
        if kind == "percent":
            delta = current - previous
            sign = "+" if delta > 0 else (MINUS if delta < 0 else "±")
            return f"{sign}{self.number(abs(delta), 1)} pp"
        if previous == 0:
            return None
        ratio = (current - previous) / abs(previous) * 100
        sign = "+" if ratio > 0 else (MINUS if ratio < 0 else "±")
        return f"{sign}{self.percent(abs(ratio))}"


def label_lookup(
    registry: Any, reports: Callable[[], Mapping[str, Any]] | None = None
) -> Callable[[str, str], str | None]:
    """The labels the declarations give, looked up by kind: stages, triggers, activity kinds, field
    choices, reports (``reports`` gives the registered reports by name)."""

    def lookup(kind: str, value: str) -> str | None:
        if kind == "stage":
            spec = registry.stages.get(value)
            return spec.label if spec is not None and spec.label else None
        if kind == "trigger":
            spec = registry.triggers.get(value)
            return getattr(spec, "label", "") or None if spec is not None else None
        if kind == "kind":
            spec = registry.activity_kinds.get(value)
            return spec.label if spec is not None and spec.label else None
        if kind == "status":
            status = registry.activity_statuses.get(value)
            return status.label if status is not None and status.label else None
        if kind == "report" and reports is not None:
            report = reports().get(value)
            return report.title if report is not None else None
        if kind.startswith("field:"):
            field = _field(registry, kind[6:])
            if field is not None:
                return dict(getattr(field, "choice_labels", {}) or {}).get(value)
        return None

    return lookup


def _field(registry: Any, name: str) -> Any:
    return registry.fields.get(name)
