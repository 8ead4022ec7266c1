"""``crm.reports``: the registered reports, their parameters, and rendering to HTML, Markdown, CSV, JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
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

    def register(self, report: Report) -> None:
        if report.name in self._reports:
            raise PluginError(report.owner or "app", f"report {report.name!r} is already declared")
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

    def render_result(self, result: ReportResult, *, format: str = "html") -> str:
        if format == "json":
            return json.dumps(
                {
                    "report": result.report.name,
                    "title": result.report.title,
                    "params": {k: _json_value(v) for k, v in result.params.items()},
                    "generated_at": result.generated_at.isoformat(),
                    "columns": [{"name": c.name, "label": c.title, "type": c.type} for c in result.columns],
                    "rows": [{c.name: _json_value(row.get(c.name)) for c in result.columns} for row in result.rows],
                },
                indent=2,
            )
        if format == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([c.name for c in result.columns])
            for row in result.rows:
                writer.writerow([_csv_value(row.get(c.name), c) for c in result.columns])
            return out.getvalue()
        report = result.report
        candidates = [report.template] if report.template else []
        candidates += [f"reports/{report.name}.{format}", f"reports/default.{format}"]
        template = self.env.select_template([c for c in candidates if c and c.endswith(f".{format}")])
        labels = {c.name: c.title for c in report.columns}
        return template.render(
            report=report,
            result=result,
            rows=result.rows,
            columns=report.columns,
            params=result.params,
            labels=labels,
            generated_at=result.generated_at,
        )
