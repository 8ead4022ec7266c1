"""Reports and KPIs: declarations, SQL data functions, jinja2 rendering to HTML, Markdown, CSV and JSON."""

from crmkit.reports.engine import FORMATS, ReportResult, Reports
from crmkit.reports.spec import Chart, Column, Param, Report

__all__ = ["FORMATS", "Chart", "Column", "Param", "Report", "ReportResult", "Reports"]
