"""``crm.reports``: the registered reports, their parameters, and rendering to HTML, Markdown, CSV, JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import jinja2
from marshmallow import RAISE, Schema, validate
from marshmallow import fields as mf

from crmkit.access import Access
from crmkit.cells import csv_text, phone_column
from crmkit.db.types import utcnow
from crmkit.errors import NotFound, PluginError, ValidationError
from crmkit.limits import MAX_DATE, MIN_DATE, Int, Text
from crmkit.listing import mask
from crmkit.reports.charts import render_chart
from crmkit.reports.formats import NUMERIC, Formats
from crmkit.reports.site import (
    PERIOD_KINDS,
    Dashboard,
    Figure,
    FileLinks,
    Links,
    Period,
    PeriodKind,
    group_title,
    grouped,
    siblings,
)
from crmkit.reports.spec import Column, Param, Report, ReportContext
from crmkit.schemas import load

if TYPE_CHECKING:
    from crmkit.plugins import Registry

FORMATS = ("html", "md", "csv", "json")
#: The dates a report parameter (and the command line's dates) may take: those every stored date keeps to
#: (``crmkit.limits``), so a report's calendar arithmetic (a year back, months ahead) stays in the calendar.
FIRST_DAY = MIN_DATE
LAST_DAY = MAX_DATE
CORE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@attrs.frozen
class ReportResult:
    """A report's rows for one set of validated parameters."""

    report: Report
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    generated_at: dt.datetime

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.report.columns

    @property
    def empty(self) -> bool:
        return not self.rows


def _param_field(param: Param) -> mf.Field[Any]:
    kwargs: dict[str, Any] = {"required": param.required, "allow_none": not param.required}
    if param.choices:
        kwargs["validate"] = validate.OneOf(param.choices)
    fields: dict[str, Callable[..., mf.Field[Any]]] = {
        "string": Text,  # no NUL or broken text: a parameter may end up in a query's WHERE
        "integer": Int,
        "number": mf.Float,
        "boolean": mf.Boolean,
        "date": mf.Date,
        "datetime": lambda **kw: mf.AwareDateTime(default_timezone=dt.UTC, **kw),
    }
    return fields[param.type](**kwargs)


def _day(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def format_cell(value: Any, column: Column, fmt: Formats | None = None) -> str:
    """How a value reads in HTML and Markdown (:meth:`Formats.cell`), in ``en_US`` and US dollars unless
    ``fmt`` says otherwise."""
    return (fmt or _DEFAULT_FORMATS).cell(value, column)


_DEFAULT_FORMATS = Formats()


@jinja2.pass_context
def _cell_filter(context: Any, value: Any, column: Column) -> str:
    return format_cell(value, column, context.get("fmt"))


@jinja2.pass_context
def _html_cell_filter(context: Any, value: Any, column: Column) -> Any:
    return (context.get("fmt") or _DEFAULT_FORMATS).html(value, column)


@jinja2.pass_context
def _chart_global(context: Any, chart: Any, rows: Any, labels: Any = None) -> Any:
    """``{{ chart(c, rows) }}`` in a template: the chart with the report's columns, formats and time."""
    report = context.get("report")
    columns = {c.name: c for c in report.columns} if report is not None else {}
    return render_chart(chart, rows, columns, context.get("fmt") or _DEFAULT_FORMATS, context.get("generated_at"))


def numeric(column: Column) -> bool:
    """Whether a column's values are numbers (right-aligned in a table)."""
    return column.type in NUMERIC


def _csv_value(value: Any, column: Column) -> Any:
    """A value in a CSV cell: text never runs as a formula in a spreadsheet, a phone number stays as it is
    (:mod:`crmkit.cells`)."""
    return csv_text(value, phone=phone_column(column.name)) if isinstance(value, str) else _json_value(value)


def _md(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


class Reports:
    """The reports of a CRM: the core's, the plugins', and any registered in code."""

    def __init__(
        self,
        *,
        registry: Registry,
        context: ReportContext,
        access: Access,
        template_dirs: Iterable[Path] = (),
        formats: Formats | None = None,
    ) -> None:
        #: How values read for people in HTML and Markdown: the CRM's locale, currency and time zones.
        self.formats = formats or _DEFAULT_FORMATS
        self._access = access
        self._registry = registry
        self._context = context
        self._template_dirs = tuple(template_dirs)
        self._reports: dict[str, Report] = {}
        self._schemas: dict[str, Schema] = {}
        self._env: jinja2.Environment | None = None
        for report in registry.reports.values():
            self._add(report)
        self.check_templates()

    def register(self, report: Report) -> None:
        if report.name in self._reports:
            raise PluginError(report.owner or "app", f"report {report.name!r} is already declared")
        self.check_templates([report])
        self._add(report)

    def _add(self, report: Report) -> None:
        if not isinstance(report, Report):
            raise PluginError(getattr(report, "owner", "") or "app", f"{report!r} is not a crmkit.reports.Report")
        self._reports[report.name] = report

    def all(self) -> list[Report]:
        return sorted(self._reports.values(), key=lambda r: r.name)

    def get(self, name: str) -> Report:
        try:
            return self._reports[name]
        except KeyError:
            raise NotFound("report", name) from None

    # -- data ------------------------------------------------------------------------------------------

    def params(
        self, name: str, raw: Mapping[str, Any] | None = None, *, now: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Validate parameters (strings from a command line are fine); fill defaults."""
        report = self.get(name)
        schema = self._schemas.get(name)
        if schema is None:
            schema = self._schemas[name] = Schema.from_dict(
                {p.name: _param_field(p) for p in report.params}, name=f"{name}Params"
            )(unknown=RAISE)
        values = load(schema, dict(raw or {}), message=f"invalid parameters for report {name!r}")
        now = now or utcnow()
        for param in report.params:
            if values.get(param.name) is None and param.default is not None:
                values[param.name] = param.default(now) if callable(param.default) else param.default
        out_of_range = {
            p.name: [f"must be between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"]
            for p in report.params
            if isinstance(values.get(p.name), dt.date) and not FIRST_DAY <= _day(values[p.name]) <= LAST_DAY
        }
        if out_of_range:
            raise ValidationError(out_of_range, f"invalid parameters for report {name!r}")
        return values

    def run(
        self, name: str, params: Mapping[str, Any] | None = None, *, now: dt.datetime | None = None
    ) -> ReportResult:
        """Validate the parameters and compute the rows (in SQL, by the report's data function), over the
        customers the acting user reaches; the personal columns are ``None`` for a user without
        ``customers:read_personal``."""
        actor = self._access.require("reports:run")
        report = self.get(name)
        for permission in report.permissions:
            self._access.require(permission)
        values = self.params(name, params, now=now)
        rows = [dict(row) for row in report.data(attrs.evolve(self._context, actor=actor), values)]
        hidden = [c.name for c in report.columns if c.personal] if not actor.sees_personal else []
        if hidden:  # here, not in a renderer: every format, and any custom template, gets the masked rows
            rows = [mask(row, hidden) for row in rows]
        return ReportResult(report, values, rows, now or utcnow())

    # -- rendering -------------------------------------------------------------------------------------

    @property
    def env(self) -> jinja2.Environment:
        """Templates from the user's folders, then the plugins', then the core's; autoescaped HTML."""
        if self._env is None:
            folders = [
                *self._template_dirs,
                *(path for _owner, path in self._registry.template_dirs),
                CORE_TEMPLATES,
            ]
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader([str(f) for f in folders]),
                autoescape=jinja2.select_autoescape(["html", "htm", "xml", "svg"]),
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters["cell"] = _cell_filter
            env.filters["html_cell"] = _html_cell_filter
            env.filters["md"] = _md
            env.filters["param_value"] = self._param_value
            env.filters["day_before"] = self._day_before
            env.globals["chart"] = _chart_global
            env.globals["numeric"] = numeric
            self._env = env
        return self._env

    def render(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        format: str = "html",
        now: dt.datetime | None = None,
    ) -> str:
        """The report as a self-contained document in ``format`` (html, md, csv or json)."""
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
        result = self.run(name, params, now=now)
        return self.render_result(result, format=format)

    def render_result(self, result: ReportResult, *, format: str = "html", links: Links | None = None) -> str:
        """The rows of ``result`` as a document: JSON built in, CSV from the report's ``.csv`` template when
        it has one (else built in), HTML and Markdown from templates. ``links`` say where an HTML page's
        navigation leads (files in a folder by default)."""
        report = result.report
        if format == "json":
            return json.dumps(
                {
                    "report": report.name,
                    "title": report.title,
                    "params": {k: _json_value(v) for k, v in result.params.items()},
                    "generated_at": result.generated_at.isoformat(),
                    "columns": [{"name": c.name, "label": c.title, "type": c.type} for c in result.columns],
                    "rows": [{c.name: _json_value(row.get(c.name)) for c in result.columns} for row in result.rows],
                },
                indent=2,
            )
        template = self._template(report, format)
        if template is None:  # CSV without a template of its own
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([c.name for c in result.columns])
            for row in result.rows:
                writer.writerow([_csv_value(row.get(c.name), c) for c in result.columns])
            return out.getvalue()
        page_links: Links = links or FileLinks()
        return template.render(
            self.page_context(report, page_links),
            result=result,
            rows=result.rows,
            columns=report.columns,
            params=result.params,
            labels={c.name: c.title for c in report.columns},
            generated_at=result.generated_at,
            form=form_fields(report, result.params) if page_links.live else (),
        )

    def page_context(self, report: Report, links: Links) -> dict[str, Any]:
        """What every page of ``report`` is rendered with besides its rows: the formats, where links lead,
        the other reports of its section and every report the user may run (the navigation)."""
        visible = self.visible()
        return {
            "report": report,
            "fmt": self.formats,
            "links": links,
            "siblings": siblings(report, visible),
            "sections": grouped(visible),
            "section": group_title(report.group),
        }

    def _template(self, report: Report, format: str) -> jinja2.Template | None:
        """The first of the report's own template (or its sibling with the extension of ``format``),
        ``reports/<name>.<format>``, then the core's default; ``None`` for CSV with none of its own."""
        names = []
        if report.template:
            stem, _, _ext = report.template.rpartition(".")
            names.append(f"{stem}.{format}")
        names.append(f"reports/{report.name}.{format}")
        if format != "csv":
            names.append(f"reports/default.{format}")
        try:
            return self.env.select_template(names)
        except jinja2.TemplatesNotFound:
            if format == "csv":
                return None
            raise

    def check_templates(self, reports: Iterable[Report] | None = None) -> None:
        """Refuse a report whose ``template`` names a template no folder holds, or whose ``definition``
        names a section no definitions file has, when the CRM is built rather than when the report is
        first rendered (a typo would otherwise fall back to the default, or link nowhere)."""
        from crmkit.reports.definitions import anchors

        known = anchors(tuple(path for _owner, path in self._registry.definitions))
        for report in self._reports.values() if reports is None else reports:
            if report.definition and report.definition not in known:
                raise PluginError(
                    report.owner or "app",
                    f"report {report.name!r}: definition {report.definition!r} is not an anchor"
                    " (<a id=...>) of the KPI definitions",
                )
            if report.template is None:
                continue
            try:
                self.env.get_template(report.template)
            except jinja2.TemplateNotFound:
                raise PluginError(
                    report.owner or "app",
                    f"report {report.name!r}: template {report.template!r} is not in any template folder",
                ) from None

    def xlsx(self, result: ReportResult) -> bytes:
        """The rows as an Excel workbook: one sheet, typed cells (numbers, dates, text), the labels as the
        header row."""
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        # a sheet's name is at most 31 characters, none of : \ / ? * [ ] ("Members at risk: who to call")
        sheet = book.create_sheet(re.sub(r"[:\\/?*\[\]]", " ", result.report.title)[:31].strip() or "report")
        sheet.append([c.title for c in result.columns])
        for row in result.rows:
            sheet.append([_xlsx_value(row.get(c.name)) for c in result.columns])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()

    # -- the dashboard and the site --------------------------------------------------------------------

    def visible(self) -> list[Report]:
        """The reports the acting user may run: those that need a permission the user lacks are left out
        of the navigation."""
        actor = self._access.actor()
        return [r for r in self.all() if all(actor.can(p) for p in r.permissions)]

    def dashboard(self, period: PeriodKind = "month", *, now: dt.datetime | None = None) -> Dashboard:
        """The headline numbers for the ``period`` so far (to ``now``; periods start at midnight in the CRM's
        time zone) with the same span of the previous period, and the reports by section."""
        actor = self._access.require("reports:run")
        now = now or utcnow()
        span = Period.to_now(period, now, self._context.zones.of(None))
        ctx = attrs.evolve(self._context, actor=actor)
        headlines = sorted(self._registry.headlines.values(), key=lambda h: (h.order, h.name))
        figures = tuple(
            Figure(h, h.value(ctx, span.since, span.until), h.value(ctx, span.previous_since, span.previous_until))
            for h in headlines
        )
        return Dashboard(span, figures, grouped(self.visible()), now)

    def _day_before(self, value: Any) -> str:
        """The last day of a period that ends before ``value`` (an ``until``, the first day after it)."""
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return self.formats.date(value - dt.timedelta(days=1))
        return self._param_value(value)

    def _param_value(self, value: Any) -> str:
        if isinstance(value, dt.datetime):
            return self.formats.datetime(value)
        if isinstance(value, dt.date):
            return self.formats.date(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "—" if value is None else str(value)

    def definitions_page(self, *, links: Links | None = None) -> str:
        """The KPI definitions (``docs/kpis.md``, shipped with the package) as an HTML page."""
        from crmkit.reports.definitions import definitions_html

        return self.env.get_template("reports/definitions.html").render(
            body=definitions_html(tuple(path for _owner, path in self._registry.definitions)),
            fmt=self.formats,
            links=links or FileLinks(),
            sections=grouped(self.visible()),
        )

    def render_dashboard(self, dashboard: Dashboard, *, links: Links | None = None) -> str:
        return self.env.get_template("reports/dashboard.html").render(
            dashboard=dashboard,
            fmt=self.formats,
            links=links or FileLinks(),
            sections=dashboard.groups,
            generated_at=dashboard.generated_at,
            periods=PERIOD_KINDS,
            day=dt.timedelta(days=1),
        )

    def write_site(
        self,
        folder: Path,
        *,
        now: dt.datetime | None = None,
        progress: Callable[[Report], None] | None = None,
    ) -> list[Path]:
        """Write the dashboard (``index.html``) and every report the user may run as HTML pages into
        ``folder``, linked to each other; return the paths written."""
        folder.mkdir(parents=True, exist_ok=True)
        index = folder / "index.html"
        index.write_text(self.render_dashboard(self.dashboard(now=now)), encoding="utf-8")
        definitions = folder / "kpis.html"
        definitions.write_text(self.definitions_page(), encoding="utf-8")
        written = [index, definitions]
        for report in self.visible():
            page = folder / f"{report.name}.html"
            page.write_text(self.render_result(self.run(report.name, now=now), format="html"), encoding="utf-8")
            written.append(page)
            if progress is not None:
                progress(report)
        return written


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None)  # Excel has no zones: UTC, as the CSV says
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        return csv_text(value)
    return value


@attrs.frozen
class FormField:
    """A parameter as an HTML form field."""

    name: str
    label: str
    input: str
    value: str
    choices: tuple[str, ...]
    help: str


def form_fields(report: Report, values: Mapping[str, Any]) -> tuple[FormField, ...]:
    """The parameters of ``report`` as form fields holding ``values`` (validated values, or the text a form
    sent back when it did not validate)."""
    kinds = {"date": "date", "datetime": "datetime-local", "integer": "number", "number": "number"}
    fields = []
    for param in report.params:
        value = values.get(param.name)
        text = "" if value is None else (value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value))
        if param.type == "boolean":
            text = "true" if value else ""
        label = param.name.replace("_", " ").capitalize()
        kind = "checkbox" if param.type == "boolean" else kinds.get(param.type, "text")
        fields.append(FormField(param.name, label, kind, text, param.choices, param.help))
    return tuple(fields)
