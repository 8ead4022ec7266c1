"""Reports and KPIs: declarations, SQL data functions, jinja2 rendering to HTML, Markdown, CSV and JSON.

**Public and stable** (see ``docs/plugin-api.md``): a plugin declares a :class:`Report` whose data function
takes a :class:`ReportContext` and the validated parameters. :data:`PERIOD` is the standard pair of period
parameters (``since``, ``until``: the last twelve months by default), and :func:`effectiveness_rows` with
:data:`EFFECTIVENESS_COLUMNS` and :data:`EFFECTIVENESS_CHARTS` make a trigger-effectiveness report of a
plugin's own triggers.
"""

from crmkit.reports.core import (
    EFFECTIVENESS_CHARTS,
    EFFECTIVENESS_COLUMNS,
    EFFECTIVENESS_PARAMS,
    PERIOD,
    effectiveness_rows,
)
from crmkit.reports.engine import FORMATS, ReportResult, Reports
from crmkit.reports.spec import Chart, Column, Param, Report, ReportContext

__all__ = [
    "EFFECTIVENESS_CHARTS",
    "EFFECTIVENESS_COLUMNS",
    "EFFECTIVENESS_PARAMS",
    "FORMATS",
    "PERIOD",
    "Chart",
    "Column",
    "Param",
    "Report",
    "ReportContext",
    "ReportResult",
    "Reports",
    "effectiveness_rows",
]
