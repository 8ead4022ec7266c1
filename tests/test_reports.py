"""The report engine: parameters, template search order, formats, escaping, empty data."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from probe import Probe

from crmkit import CRM, NotFound, PluginError, ValidationError
from crmkit.cli import main
from crmkit.reports import Chart, Column, Param, Report, ReportContext

NOW = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def crm(crm_factory: Any, probe: Probe) -> CRM:
    return crm_factory([probe])


def names_report(crm: CRM) -> Report:
    def data(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows = crm.customers.list()
        return [{"name": c["name"], "score": c["score"]} for c in rows if (c["score"] or 0) >= params["min_score"]]

    return Report(
        "app.names",
        "Customers & scores",
        data=data,
        columns=[Column("name"), Column("score", type="integer")],
        params=[Param("min_score", "integer", default=0), Param("since", "date", default=lambda now: now.date())],
        charts=[Chart("bar", x="name", y=("score",), title="Score per customer")],
    )


def test_parameters_are_validated_and_defaults_filled(crm: CRM) -> None:
    assert crm.reports.params("probe.summary") == {"min_score": 0}
    assert crm.reports.params("probe.summary", {"min_score": "5"}) == {"min_score": 5}
    crm.reports.register(names_report(crm))
    assert crm.reports.params("app.names", now=NOW)["since"] == dt.date(2026, 6, 15)
    with pytest.raises(ValidationError) as err:
        crm.reports.params("probe.summary", {"min_score": "lots", "colour": "red"})
    assert set(err.value.errors) == {"min_score", "colour"}
    with pytest.raises(NotFound):
        crm.reports.run("nope")


def test_plugin_report_rows_come_from_sql(crm: CRM) -> None:
    for tier, score in (("gold", 5), ("gold", 1), ("silver", 7)):
        crm.customers.create({"name": f"{tier}{score}", "tier": tier, "score": score})
    result = crm.reports.run("probe.summary", {"min_score": 2}, now=NOW)
    assert result.rows == [{"tier": "gold", "customers": 1}, {"tier": "silver", "customers": 1}]


def test_every_format_renders_the_same_rows(crm: CRM) -> None:
    crm.customers.create({"name": "A", "tier": "gold", "score": 1})
    as_json = json.loads(crm.reports.render("probe.summary", format="json", now=NOW))
    assert as_json["rows"] == [{"tier": "gold", "customers": 1}]
    assert as_json["params"] == {"min_score": 0} and as_json["generated_at"] == NOW.isoformat()
    assert list(csv.reader(io.StringIO(crm.reports.render("probe.summary", format="csv")))) == [
        ["tier", "customers"],
        ["gold", "1"],
    ]
    md = crm.reports.render("probe.summary", format="md", now=NOW)
    assert "# Customers by tier" in md and "| gold | 1 |" in md
    html = crm.reports.render("probe.summary", format="html", now=NOW)
    assert '<svg class="chart chart-bar"' in html and "<td>gold</td>" in html
    with pytest.raises(ValueError, match="unknown format"):
        crm.reports.render("probe.summary", format="pdf")


def test_customer_data_never_executes(crm: CRM) -> None:
    crm.customers.create({"name": HOSTILE, "score": 3})
    crm.customers.create({"name": '=HYPERLINK("http://evil")', "score": 2})
    crm.reports.register(names_report(crm))
    html = crm.reports.render("app.names", format="html")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html
    rows = list(csv.reader(io.StringIO(crm.reports.render("app.names", format="csv"))))
    assert rows[2][0].startswith("'=")  # a spreadsheet shows the text instead of running the formula
    md = crm.reports.render("app.names", format="md")
    assert "<script>" not in md


def test_empty_data_renders_a_clear_no_data(crm: CRM) -> None:
    html = crm.reports.render("probe.summary", format="html")
    assert "No data for these parameters." in html and "<svg" not in html
    assert "_No data for these parameters._" in crm.reports.render("probe.summary", format="md")
    assert json.loads(crm.reports.render("probe.summary", format="json"))["rows"] == []
    assert crm.reports.render("probe.summary", format="csv") == "tier,customers\n"


def test_templates_are_searched_user_then_plugin_then_core(crm_factory: Any, tmp_path: Path) -> None:
    plugin_dir = Path(__file__).parent / "probe" / "templates"
    assert not (plugin_dir / "reports").exists()  # the probe ships no report template: the core's is used
    user_dir = tmp_path / "mine"
    (user_dir / "reports").mkdir(parents=True)
    (user_dir / "reports" / "probe.summary.html").write_text("USER {{ report.title }} {{ rows | length }}")
    (user_dir / "reports" / "default.md").write_text("USER-MD {{ report.name }}")
    crm = crm_factory([Probe()], template_dirs=[user_dir])
    assert crm.reports.render("probe.summary", format="html") == "USER Customers by tier 0"
    assert crm.reports.render("probe.summary", format="md") == "USER-MD probe.summary"
    plain = crm_factory([Probe()])
    assert "<!doctype html>" in plain.reports.render("probe.summary", format="html")


def test_plugin_templates_override_the_core(crm_factory: Any, tmp_path: Path) -> None:
    from crmkit import hookimpl

    folder = tmp_path / "vendor"
    (folder / "reports").mkdir(parents=True)
    (folder / "reports" / "default.html").write_text("VENDOR {{ report.name }}")

    class Vendor:
        plugin_name = "vendor"

        @hookimpl
        def crmkit_register_template_dirs(self) -> list[Path]:
            return [folder]

    crm = crm_factory([Probe(), Vendor()])
    assert crm.reports.render("probe.summary") == "VENDOR probe.summary"


def test_bad_report_declarations() -> None:
    with pytest.raises(ValueError, match="unknown columns"):
        Report("x", "X", data=lambda crm, p: [], columns=[Column("a")], charts=[Chart("bar", x="a", y=("b",))])
    with pytest.raises(ValueError):
        Report("Bad Name", "X", data=lambda crm, p: [], columns=[])


def test_duplicate_report_names_fail(crm: CRM) -> None:
    crm.reports.register(names_report(crm))
    with pytest.raises(PluginError, match="already declared"):
        crm.reports.register(names_report(crm))


def test_heatmap_and_line_charts_draw_every_cell_and_point() -> None:
    from crmkit.reports.charts import render_chart
    from crmkit.reports.formats import Formats

    rows = [{"day": d, "hour": h, "visits": (i * 3 + h) % 7} for i, d in enumerate(("Mon", "Tue")) for h in range(6, 9)]
    columns = {c.name: c for c in (Column("day"), Column("hour"), Column("visits", "Visits", "integer"))}
    svg = render_chart(Chart("heatmap", x="hour", y=("day",), value="visits"), rows, columns, Formats())
    assert svg.count('class="cell"') == 6
    line = render_chart(Chart("line", x="hour", y=("visits",)), rows[:3], columns, Formats())
    assert line.count("<circle") == 3 and "<polyline" in line
    empty = render_chart(Chart("bar", x="hour", y=("visits",)), [], columns, Formats())
    assert "no data" in empty


def test_cli_lists_and_writes_reports(crm: CRM, tmp_path: Path) -> None:
    from test_triggers import cli_url

    crm.customers.create({"name": "A", "tier": "gold", "score": 4})
    args = ["--url", cli_url(crm), "--no-plugins", "--plugin", "probe:Probe"]
    runner = CliRunner()
    listed = runner.invoke(main, ["report", "list", *args])
    assert listed.exit_code == 0, listed.output
    assert "probe.summary" in listed.output and "min_score" in listed.output
    out = tmp_path / "summary.html"
    result = runner.invoke(main, ["report", "probe.summary", *args, "--param", "min_score=3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "<td>gold</td>" in out.read_text()
    as_csv = runner.invoke(main, ["report", "probe.summary", *args, "--format", "csv"])
    assert as_csv.output.splitlines() == ["tier,customers", "gold,1"]
    bad = runner.invoke(main, ["report", "probe.summary", *args, "--param", "min_score=many"])
    assert bad.exit_code == 1 and "min_score" in bad.output
    bad = runner.invoke(main, ["report", "probe.summary", *args, "--param", "oops"])
    assert bad.exit_code == 2 and "k=v" in bad.output
    book = tmp_path / "summary.xlsx"
    written = runner.invoke(main, ["report", "probe.summary", *args, "--format", "xlsx", "-o", str(book)])
    assert written.exit_code == 0, written.output
    assert book.read_bytes()[:2] == b"PK"  # a zipped workbook
    no_file = runner.invoke(main, ["report", "probe.summary", *args, "--format", "xlsx"])
    assert no_file.exit_code == 1 and no_file.output.strip().count("\n") == 0 and "needs -o FILE" in no_file.output
    site = runner.invoke(main, ["report", "site", *args, "-o", str(tmp_path / "site")])
    assert site.exit_code == 0, site.output
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "probe.summary.html").is_file()
    assert "open file://" in site.output
    local = runner.invoke(main, ["report", "site", *args, "--locale", "de_DE", "-o", str(tmp_path / "de")])
    assert local.exit_code == 0, local.output
    assert re.search(
        r"seit \d{2}\.\d{2}\.\d{4}|since \d{2}\.\d{2}\.\d{4}", (tmp_path / "de" / "index.html").read_text()
    )
    zone = runner.invoke(main, ["report", "list", *args, "--time-zone", "Mars/Olympus"])
    assert zone.exit_code == 1 and zone.output == (
        "error: unknown time zone 'Mars/Olympus': expected an IANA name such as 'Europe/Berlin'\n"
    )
    bad_locale = runner.invoke(main, ["report", "list", *args, "--locale", "zz"])
    assert bad_locale.exit_code == 1 and "locale 'zz' is not known" in bad_locale.output
    no_folder = runner.invoke(main, ["report", "site", *args])
    assert no_folder.exit_code == 1 and "needs -o FOLDER" in no_folder.output
