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
from crmkit.reports.formats import Formats
from crmkit.reports.site import Dashboard, FileLinks, Links, PathLinks, Period
from crmkit.reports.spec import GROUPS, Chart, Column, Headline, Param, Report, ReportContext

__all__ = [
    "EFFECTIVENESS_CHARTS",
    "EFFECTIVENESS_COLUMNS",
    "EFFECTIVENESS_PARAMS",
    "FORMATS",
    "GROUPS",
    "PERIOD",
    "Chart",
    "Column",
    "Dashboard",
    "FileLinks",
    "Formats",
    "Headline",
    "Links",
    "Param",
    "PathLinks",
    "Period",
    "Report",
    "ReportContext",
    "ReportResult",
    "Reports",
    "effectiveness_rows",
]
