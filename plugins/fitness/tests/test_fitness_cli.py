"""``crmkit fitness import-turnstile``: a plugin's command on the crmkit command line (``crmkit_cli_commands``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from crmkit import CRM
from crmkit.cli import main
from crmkit.db import Activity
from crmkit.testing import database_of


def cli_url(crm: CRM) -> str:
    """The test's database as one ``--url``: on PostgreSQL its schema rides in the URL's ``options``."""
    url, options = database_of(crm)
    extra = options.get("connect_args", {})
    return make_url(url).update_query_dict(extra).render_as_string(hide_password=False)


def checkins(crm: CRM) -> int:
    with crm.session() as s:
        return int(s.scalar(select(func.count()).select_from(Activity).where(Activity.kind == "checkin")) or 0)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    path.write_text("card,time\nA-100,2026-06-01 07:15:00\nZ-9,2026-06-01 08:00:00\nA-100,2026-06-02 09:00\n")
    return path


def test_the_command_stores_reports_and_skips_on_a_second_run(club: CRM, export: Path) -> None:
    club.customers.create({"name": "Anna", "card_number": "A-100"})
    args = ["fitness", "import-turnstile", str(export), "--url", cli_url(club), "--tz", "Europe/Berlin"]
    first = CliRunner().invoke(main, args)
    # by hand: lines 2 and 4 are Anna's, line 3 a card nobody holds
    assert first.output == (
        "stored 2 check-ins, skipped 0 already imported, rejected 1 lines\n  line 3: no customer with card_number Z-9\n"
    )
    assert first.exit_code == 1  # a rejected line: the job notices, the good lines are stored
    assert checkins(club) == 2
    again = CliRunner().invoke(main, args)
    assert again.output.startswith("stored 0 check-ins, skipped 2 already imported, rejected 1 lines\n")
    assert checkins(club) == 2


def test_a_clean_file_exits_zero(club: CRM, tmp_path: Path) -> None:
    club.customers.create({"name": "Anna", "card_number": "A-100"})
    path = tmp_path / "ok.csv"
    path.write_text("card,time\nA-100,2026-06-01T07:15:00Z\n")
    result = CliRunner().invoke(main, ["fitness", "import-turnstile", str(path), "--url", cli_url(club)])
    assert (result.exit_code, result.output) == (
        0,
        "stored 1 check-ins, skipped 0 already imported, rejected 0 lines\n",
    )


def one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_bad_files_and_options_are_one_error_line(club: CRM, export: Path, tmp_path: Path) -> None:
    url = cli_url(club)
    missing = one_error_line(["fitness", "import-turnstile", str(tmp_path / "nope.csv"), "--url", url])
    assert "nope.csv" in missing
    assert "tz" in one_error_line(["fitness", "import-turnstile", str(export), "--url", url, "--tz", "Mars/Base"])
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\ncard,time\n")
    assert "UTF-8" in one_error_line(["fitness", "import-turnstile", str(binary), "--url", url])
    not_utf8 = tmp_path / "latin1.csv"  # a header that reads, then a line that does not: that line is rejected
    not_utf8.write_bytes(b"card,time\nJos\xe9,2026-06-01 07:00\n")
    result = CliRunner().invoke(main, ["fitness", "import-turnstile", str(not_utf8), "--url", url])
    assert result.exit_code == 1 and "line 2: " in result.output and "UTF-8" in result.output
    assert "--colour" in one_error_line(["fitness", "import-turnstile", str(export), "--colour", "red"])
    assert "FILE" in one_error_line(["fitness", "import-turnstile", "--url", url])
    assert checkins(club) == 0


def test_the_command_is_listed_with_the_core_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()]
    assert {"db", "report", "fitness"} <= set(listed)
    sub = CliRunner().invoke(main, ["fitness", "--help"])
    assert "import-turnstile" in sub.output
