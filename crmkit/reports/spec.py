"""Report declarations: parameters, columns, charts, and the function that yields the rows.

Public and stable through :mod:`crmkit.reports` (see ``docs/plugin-api.md``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs
from sqlalchemy import ColumnElement, Engine, MetaData, RowMapping, Subquery, Table, func, select, true

from crmkit.access import APPLICATION, Actor
from crmkit.db.models import Customer
from crmkit.errors import NotFound
from crmkit.listing import customer_scope
from crmkit.specs import names_tuple
from crmkit.zones import TimeZones, local_time

if TYPE_CHECKING:
    from crmkit.audit import Audit
    from crmkit.plugins import Registry
    from crmkit.triggers.engine import Triggers

ParamType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
ColumnType = Literal["string", "integer", "number", "percent", "money", "date", "datetime", "hours", "phone"]
ChartKind = Literal["bar", "line", "heatmap"]

#: The dashboard's sections, in the order a manager reads them; a report names one in ``Report.group``.
GROUPS: dict[str, str] = {
    "members": "Members and growth",
    "sales": "Sales and revenue",
    "retention": "Retention and contacts",
    "visits": "Visits and classes",
    "staff": "Staff and service",
    "audit": "Data and audit",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def _report_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"report name must look like 'plugin.what' or 'what', got {value!r}")


@attrs.frozen
class Param:
    """A report parameter, validated with marshmallow before the data function sees it.

    A ``default`` may be a callable taking the CRM's "now" (aware UTC datetime), so "this month" works.
    """

    name: str
    type: ParamType = "string"
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    help: str = ""


@attrs.frozen
class Column:
    """A column of a report's rows: how to label and format it.

    ``personal=True`` marks a column that shows a customer's personal data (a name, a phone, an email, a
    birthday, a field declared ``personal``): its values are ``None`` in every format for a user without
    ``customers:read_personal``.

    ``labels`` says what the column's values name, so HTML and Markdown show their declared labels while
    CSV and JSON keep the identifiers: ``"stage"``, ``"trigger"``, ``"kind"`` (an activity kind),
    ``"report"``, ``"field:<name>"`` (a field's choices), ``"month"`` (a ``YYYY-MM`` key, read "Jan
    2026"), or ``"value"`` (an identifier with no declaration, such as a source: ``walk_in`` reads
    "Walk in").

    ``unit`` overrides the unit an axis title names (``"visits"``, ``"days"``); by default it follows the
    type: "%", the currency symbol, "hours", none for counts.
    """

    name: str
    label: str = ""
    type: ColumnType = "string"
    personal: bool = False
    labels: str = ""
    unit: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


ChartPeriod = Literal["day", "week", "month", "year"]
#: Column types whose values are numbers: right-aligned in a table, drawn on a chart's value axis.
CHART_VALUE_TYPES: frozenset[str] = frozenset({"integer", "number", "percent", "money", "hours"})


def _chart_kind(instance: Chart, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("bar", "line", "heatmap"):
        raise ValueError(f"chart kind must be 'bar', 'line' or 'heatmap', got {value!r}")


@attrs.frozen
class Chart:
    """A chart drawn from the rows: inline SVG for ``bar`` and ``line``, a table of coloured cells for
    ``heatmap``. No JavaScript, nothing fetched.

    * ``bar``/``line``: ``x`` is the category column, ``y`` the value columns, one series each. The y
      columns must share one type and unit (a report refuses a chart that puts metrics on different scales
      on one axis: declare a chart per metric). ``stacked=True`` stacks the bars of the series.
    * ``heatmap``: ``x`` gives the columns, ``y`` the rows (several ``y`` columns make a row per
      combination, "Anna · deals") and ``value`` the number in each cell. A cell without a row, or with
      ``None``, is drawn hatched and blank: not observed, which is not 0.
    * ``x_title``/``y_title``: the axis titles; by default the columns' labels. The unit is added to the
      value axis's title from the column (``Column.unit``, else "%", the currency symbol, "hours").
    * ``period``: the category values are periods ("YYYY", "YYYY-MM", or an ISO date starting a ``day``,
      ``week`` or ``month``): they read as "Jun 2026", and a period not over when the report was computed
      is marked as incomplete (its numbers will still change).
    * ``empty_text``: the sentence shown instead of a chart whose values are all 0 or missing; by default
      one saying there is nothing to show for these parameters.

    A value that is ``None`` is "no value" (not yet observable, or nothing to count) and is drawn
    differently from 0: a dashed stub for a bar, a gap in a line.
    """

    kind: ChartKind = attrs.field(validator=_chart_kind)
    x: str
    y: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    value: str | None = None
    title: str = ""
    x_title: str = ""
    y_title: str = ""
    period: ChartPeriod | None = None
    stacked: bool = False
    empty_text: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.y:
            raise ValueError(f"chart {self.title or self.kind!r}: name at least one y column")
        if self.kind == "heatmap" and not self.value:
            raise ValueError(f"heatmap {self.title!r}: name the column of its cells' values (value=...)")
        if self.kind != "heatmap" and self.value:
            raise ValueError(f"{self.kind} chart {self.title!r}: value= is for heatmaps; name the series in y")
        if self.stacked and self.kind != "bar":
            raise ValueError(f"chart {self.title!r}: only bars stack")
        if self.period not in (None, "day", "week", "month", "year"):
            raise ValueError(f"chart {self.title!r}: period must be day, week, month or year, got {self.period!r}")

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns whose numbers the chart draws: ``y`` of a bar or line chart, ``value`` of a heatmap."""
        return (self.value,) if self.kind == "heatmap" and self.value else self.y

    def check(self, columns: Mapping[str, Column], report: str = "") -> None:
        """Refuse a chart that uses columns ``columns`` lacks, draws a column that is not a number, or puts
        columns of different types or units on one axis. ``Report`` calls it when declared."""
        where = f"report {report!r}: chart {self.title or self.kind!r}"
        used = [self.x, *self.y, *([self.value] if self.value else [])]
        missing = [n for n in used if n not in columns]
        if missing:
            raise ValueError(f"{where} uses unknown columns {missing}")
        drawn = [columns[n] for n in self.value_columns]
        not_numbers = [c.name for c in drawn if c.type not in CHART_VALUE_TYPES]
        if not_numbers:
            raise ValueError(f"{where} draws columns that are not numbers: {not_numbers}")
        scales = {(c.type, c.unit) for c in drawn}
        if len(scales) > 1:
            described = ", ".join(f"{c.name} ({c.type}{', ' + c.unit if c.unit else ''})" for c in drawn)
            raise ValueError(
                f"{where} puts values on different scales on one axis: {described}; declare a chart per scale"
            )


# Typed converters (not a bare ``converter=tuple``) so that a checker accepts a list or tuple of these.
def _columns(value: Iterable[Column]) -> tuple[Column, ...]:
    return tuple(value)


def _params(value: Iterable[Param]) -> tuple[Param, ...]:
    return tuple(value)


def _charts(value: Iterable[Chart]) -> tuple[Chart, ...]:
    return tuple(value)


class HasEngine(Protocol):
    """Anything a KPI function can read from: a :class:`ReportContext`, or the CRM itself."""

    @property
    def engine(self) -> Engine: ...


@attrs.frozen
class ReportContext:
    """What a report's data function is given: the database and the few services a report reads.

    * ``engine``: run the report's statement with :meth:`fetch` (or ``engine.connect()``); a report only
      reads, and never opens a write transaction;
    * ``registry``: what the loaded plugins declared (stages, fields, activity kinds, triggers);
    * ``triggers``: the trigger service, for effectiveness figures (see :func:`effectiveness_rows`);
    * ``metadata``: this CRM's tables; :meth:`table` gives one by name, such as a plugin's extension table
      of customer fields, ``<plugin>_customer``, which exists only per CRM;
    * ``audit``: the audit log, for a report of who changed what (``crm.field_history``);
    * ``actor``: who the report runs as. A report counts only the customers the actor reaches: its
      statement joins ``crm_customers`` and adds :meth:`customer_scope` to its ``WHERE``, or keeps to the
      rows of reached customers with :meth:`reaches`.
    """

    engine: Engine
    registry: Registry
    triggers: Triggers
    metadata: MetaData
    actor: Actor = APPLICATION
    audit: Audit | None = None
    #: the CRM's and its branches' time zones: hours and weekdays are shown in the customer's local time
    zones: TimeZones = attrs.field(factory=TimeZones)
    #: the CRM's currency (ISO 4217): money a report sums without a currency parameter is in this one
    currency: str = "USD"

    def local_time(
        self,
        column: ColumnElement[dt.datetime],
        since: dt.date | dt.datetime,
        until: dt.date | dt.datetime,
        customer_id: ColumnElement[int] | None = None,
    ) -> ColumnElement[Any]:
        """The wall time, in the customer's zone, of a UTC timestamp ``column`` that lies in
        ``[since, until)``: group by ``hour_of_day(ctx.local_time(...))`` to show hours as the club lives
        them. ``customer_id`` names the customer of each row, needed only when branches have zones of their
        own (a chain across zones)."""
        start, end = (_moment(v) for v in (since, until))
        branch = None
        if customer_id is not None:
            branch = select(Customer.__table__.c.branch).where(Customer.__table__.c.id == customer_id).scalar_subquery()
        return local_time(column, self.zones, start, end, branch)

    def stages_at(self, moment: dt.datetime) -> Subquery:
        """Each customer's stage at ``moment``: a subquery of ``customer_id``, ``stage``, ``lifecycle`` from
        their latest move before it in the stage history (latest by time, then by id: an import may write
        a history with earlier dates). Customers created after ``moment`` have no row. Join it and keep to
        the reached customers with :meth:`reaches` or :meth:`customer_scope`."""
        h = self.table("crm_stage_history")
        rank = func.row_number().over(partition_by=h.c.customer_id, order_by=(h.c.at.desc(), h.c.id.desc()))
        moves = (
            select(
                h.c.customer_id, h.c.to_stage.label("stage"), h.c.to_lifecycle.label("lifecycle"), rank.label("rank")
            )
            .where(h.c.at < moment)
            .subquery("moves")
        )
        return (
            select(moves.c.customer_id, moves.c.stage, moves.c.lifecycle).where(moves.c.rank == 1).subquery("stages_at")
        )

    def customer_scope(self, customers: Any) -> ColumnElement[bool]:
        """The condition on ``customers`` (``crm_customers``, or an alias of it) that keeps a statement to
        the customers :attr:`actor` reaches; ``true()`` when it reaches them all, so it can always be
        added to a ``WHERE`` or a join's ``ON``."""
        condition = customer_scope(self.actor, customers)
        return true() if condition is None else condition

    def reaches(self, customer_id: ColumnElement[Any]) -> ColumnElement[bool]:
        """The condition that ``customer_id`` (a column of activities, memberships...) names a customer
        :attr:`actor` reaches, for a statement that does not join ``crm_customers``; ``true()`` when the
        actor reaches every customer."""
        if self.actor.unscoped:
            return true()
        customers = self.table("crm_customers")
        return customer_id.in_(select(customers.c.id).where(self.customer_scope(customers)))

    def table(self, name: str) -> Table:
        """This CRM's table ``name`` (core, plugin, or a plugin's ``<plugin>_customer``)."""
        try:
            return self.metadata.tables[name]
        except KeyError:
            raise NotFound("table", name) from None

    def fetch(self, query: Any) -> list[RowMapping]:
        """The rows of one statement, as mappings keyed by column label, on a connection of its own."""
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings())


def _moment(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(value, dt.time(), dt.UTC)


DataFunction = Callable[[ReportContext, Mapping[str, Any]], Iterable[Mapping[str, Any]]]


@attrs.frozen
class Report:
    """A report: ``data(ctx, params)`` (``ctx`` a :class:`ReportContext`) returns rows (mappings keyed by
    column name) computed in SQL."""

    name: str = attrs.field(validator=_report_name)
    title: str
    data: DataFunction
    columns: tuple[Column, ...] = attrs.field(converter=_columns)
    params: tuple[Param, ...] = attrs.field(default=(), converter=_params)
    charts: tuple[Chart, ...] = attrs.field(default=(), converter=_charts)
    description: str = ""
    template: str | None = None
    owner: str = ""
    #: the anchor of its definition in the KPI definitions (``docs/kpis.md``), linked from the page
    definition: str = ""
    #: the dashboard's section the report is listed under (see :data:`GROUPS`); "" lists it under "Other"
    group: str = ""
    #: what running it takes beyond ``reports:run`` (the field history's ``audit:read``)
    permissions: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)

    def __attrs_post_init__(self) -> None:
        columns = {c.name: c for c in self.columns}
        for chart in self.charts:
            chart.check(columns, self.name)


HeadlineFunction = Callable[[ReportContext, dt.datetime, dt.datetime], "float | int | None"]


@attrs.frozen
class Headline:
    """A headline number on the dashboard: ``value(ctx, since, until)`` over ``[since, until)`` (aware
    datetimes), computed in SQL like a report's rows. The dashboard shows it for the period so far and its
    change against the same span of the previous period.

    A count over the period (new customers, check-ins, revenue) counts what happened in it; a state (active
    members, members at risk) is read as of ``until``. ``better`` says which way is good news ("down" for
    members at risk); ``report`` names the report a manager opens to see behind the number.
    """

    name: str = attrs.field(validator=_report_name)
    label: str
    value: HeadlineFunction
    type: ColumnType = "integer"
    description: str = ""
    report: str | None = None
    better: Literal["up", "down"] = "up"
    #: headlines are shown in this order (then by name); the core's are 10, 20...
    order: int = 50
    owner: str = ""
