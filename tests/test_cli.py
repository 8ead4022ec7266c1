"""The ``crmkit`` command: the README's demo, and plugin listing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit import CRM
from crmkit.cli import main


def test_demo_creates_a_database_and_prints_customers_and_stages(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--db", str(db), "--no-plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["customer", "stage", "lifecycle", "membership"]
    assert lines[1].split() == ["Anna", "Berg", "active", "active", "monthly"]
    assert "Chen Wu      trial    lead" in result.output
    assert "task for Maya (coach): Welcome call" in result.output
    crm = CRM(f"sqlite:///{db}", load_entry_points=False)
    assert crm.customers.count() == 4
    # a second run starts from a fresh file instead of failing on duplicates
    assert CliRunner().invoke(main, ["demo", "--db", str(db), "--no-plugins"]).exit_code == 0


def test_plugins_lists_core_declarations(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plugins", "--url", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0, result.output
    assert "meeting" in result.output and "(crmkit)" in result.output


# -- every user error is one line, never a traceback; a read command never creates a database ---------

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def crmkit(*args: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The installed ``crmkit`` command (its console entry point), in a folder of the test's own."""
    script = Path(sys.executable).with_name("crmkit")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from crmkit.cli import run; run()"]
    unset = ("CRMKIT_DATABASE_URL", "CRMKIT_TRACEBACK")
    env = {k: v for k, v in os.environ.items() if k not in unset} | extra_env
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a command that failed as a user error should: non-zero exit, nothing but one
    ``error: ...`` line on stderr, no traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def migrated(database: str) -> str:
    """``database`` with the core's schema, a customer and a task due (commands run with ``--no-plugins``)."""
    with CRM(database, load_entry_points=False) as crm:
        crm.create_schema()
        anna = crm.customers.create({"name": "Anna", "email": "anna@example.com"})
        crm.tasks.create({"title": "Welcome call", "customer_id": anna["id"], "due_at": "2026-01-06T10:00:00Z"})
    return database


def test_a_url_with_an_unknown_driver_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(crmkit("tasks", "next", "--url", "bogus://x", cwd=tmp_path))
    assert "--url" in line and "'bogus'" in line


def test_a_url_that_is_not_a_url_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(crmkit("tasks", "next", "--url", "not-a-url", cwd=tmp_path))
    assert "'--url'" in line and "'not-a-url' is not a database URL" in line


def test_a_postgresql_database_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(crmkit("tasks", "next", "--url", f"{LOCAL_POSTGRES}/crmkit_no_such_db", cwd=tmp_path))
    assert line.startswith("error: cannot connect to ") and 'database "crmkit_no_such_db" does not exist' in line


def test_a_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    # port 1 on the local machine: nothing listens there, so the connection is refused at once
    line = one_line_error(crmkit("tasks", "next", "--url", "postgresql+psycopg://postgres@127.0.0.1:1/x", cwd=tmp_path))
    assert "cannot connect to" in line and "refused" in line.lower()


READ_COMMANDS = [
    ["report", "crm.average_check"],
    ["report", "list"],
    ["triggers", "effectiveness"],
    ["triggers", "run", "--dry-run"],
    ["triggers", "run"],
    ["tasks", "next"],
    ["db", "current"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_missing_sqlite_file_is_an_error_naming_it_and_is_not_created(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo.db"
    line = one_line_error(crmkit(*command, "--url", f"sqlite:///{missing}", cwd=tmp_path))
    assert f"database file '{missing}' does not exist" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["plugins"], ["triggers", "list"]], ids=" ".join)
def test_listing_declarations_needs_no_database_and_creates_none(tmp_path: Path, command: list[str]) -> None:
    result = crmkit(*command, "--url", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_in_a_sqlite_path_is_one_line_even_for_db_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "crm.db"
    for command in (["db", "upgrade"], ["tasks", "next"]):
        line = one_line_error(crmkit(*command, "--url", f"sqlite:///{path}", cwd=tmp_path))
        assert f"folder '{path.parent}'" in line and "does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_the_database_and_read_commands_then_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    upgraded = crmkit("db", "upgrade", "--url", url, "--no-plugins", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    listed = crmkit("tasks", "next", "--url", url, "--no-plugins", cwd=tmp_path)
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "nothing to do\n", "")


def test_tasks_next_without_url_does_not_create_crmkit_db(tmp_path: Path) -> None:
    line = one_line_error(crmkit("tasks", "next", cwd=tmp_path))
    assert "database file 'crmkit.db' does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_a_database_that_was_never_migrated_says_run_db_upgrade(database: str, tmp_path: Path) -> None:
    with CRM(database, load_entry_points=False) as crm, crm.engine.connect():
        pass  # an empty database: on SQLite the file now exists
    # the triggers are the installed fitness edition's, so that command loads it
    commands = (
        ["tasks", "next", "--no-plugins"],
        ["report", "crm.customer_growth", "--no-plugins"],
        ["triggers", "run"],
    )
    for command in commands:
        line = one_line_error(crmkit(*command, "--url", database, cwd=tmp_path))
        assert "is not migrated" in line and "run 'crmkit db upgrade" in line


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
@pytest.mark.parametrize("command", [["tasks", "next"], ["triggers", "run", "--dry-run"]], ids=" ".join)
def test_as_of_out_of_range_is_one_line_naming_the_option(
    migrated: str, tmp_path: Path, command: list[str], day: str
) -> None:
    line = one_line_error(crmkit(*command, "--as-of", day, "--url", migrated, "--no-plugins", cwd=tmp_path))
    assert "'--as-of'" in line and "out of range" in line


def test_a_report_whose_until_is_before_since_is_one_line(migrated: str, tmp_path: Path) -> None:
    args = ("--param", "since=2026-05-01", "--param", "until=2026-01-01", "--url", migrated, "--no-plugins")
    line = one_line_error(crmkit("report", "crm.average_check", *args, cwd=tmp_path))
    assert "until: must not be before since (2026-05-01)" in line


def test_report_dates_out_of_range_are_one_line_naming_the_parameter(migrated: str, tmp_path: Path) -> None:
    for param in ("since=0001-01-01", "until=9999-12-31"):
        args = ("--param", param, "--url", migrated, "--no-plugins")
        line = one_line_error(crmkit("report", "crm.cohort_retention", *args, cwd=tmp_path))
        assert f"{param.split('=')[0]}: must be between 1900-01-01 and 2199-12-31" in line


def test_output_into_a_missing_folder_is_one_line_and_a_good_one_is_written(migrated: str, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.csv"
    args = ("--format", "csv", "--url", migrated, "--no-plugins")
    line = one_line_error(crmkit("report", "crm.customer_growth", *args, "-o", str(target), cwd=tmp_path))
    assert f"-o: folder '{target.parent}' does not exist" in line
    written = crmkit("report", "crm.customer_growth", *args, "-o", str(tmp_path / "out.csv"), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "out.csv").read_text().startswith("month,")


def test_plugin_option_naming_something_that_is_not_a_plugin_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(crmkit("plugins", "--plugin", "os", cwd=tmp_path))
    assert "module 'os' is not a crmkit plugin" in line
    line = one_line_error(crmkit("plugins", "--plugin", "crmkit.errors:CRMError", cwd=tmp_path))
    assert "CRMError object is not a crmkit plugin" in line
    line = one_line_error(crmkit("plugins", "--plugin", "crmkit_no_such_module", cwd=tmp_path))
    assert "'--plugin'" in line and "No module named 'crmkit_no_such_module'" in line


def test_demo_size_zero_is_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    line = one_line_error(crmkit("demo", "--size", "0", "--db", str(tmp_path / "demo.db"), cwd=tmp_path))
    assert "'--size'" in line
    assert list(tmp_path.iterdir()) == []


def test_effectiveness_dates_name_their_own_option(migrated: str, tmp_path: Path) -> None:
    base = ("triggers", "effectiveness", "--url", migrated, "--no-plugins")
    line = one_line_error(crmkit(*base, "--since", "bad", cwd=tmp_path))
    assert "'--since'" in line and "--as-of" not in line
    line = one_line_error(crmkit(*base, "--until", "0001-01-01", cwd=tmp_path))
    assert "'--until'" in line and "out of range" in line
    line = one_line_error(crmkit(*base, "--since", "2026-05-01", "--until", "2026-01-01", cwd=tmp_path))
    assert "'--until'" in line and "before --since" in line


def test_click_usage_errors_are_one_line_too(tmp_path: Path) -> None:
    assert "no such command 'nosuch'" in one_line_error(crmkit("nosuch", cwd=tmp_path))
    assert "no such option '--bogus'" in one_line_error(crmkit("tasks", "next", "--bogus", cwd=tmp_path))
    assert "'--limit'" in one_line_error(crmkit("tasks", "next", "--limit", "0", cwd=tmp_path))


@pytest.mark.parametrize("command", [[], ["db"], ["report"], ["triggers", "run"], ["tasks", "next"]], ids=" ".join)
def test_dash_h_is_help(command: list[str]) -> None:
    short = CliRunner().invoke(main, [*command, "-h"])
    long = CliRunner().invoke(main, [*command, "--help"])
    assert short.exit_code == 0 and short.output == long.output
    assert short.output.startswith("Usage: ") and "-h, --help" in short.output


def test_a_read_command_reads_an_existing_database(migrated: str, tmp_path: Path) -> None:
    result = crmkit("tasks", "next", "--as-of", "2026-01-06", "--url", migrated, "--no-plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["unassigned:", "  [  0] 2026-01-06 10:00  Welcome call"]


def test_crmkit_traceback_shows_the_traceback_for_a_bug_report(database: str, tmp_path: Path) -> None:
    with CRM(database, load_entry_points=False) as crm, crm.engine.connect():
        pass
    args = ("tasks", "next", "--url", database, "--no-plugins")
    assert "is not migrated" in one_line_error(crmkit(*args, cwd=tmp_path))
    shown = crmkit(*args, cwd=tmp_path, CRMKIT_TRACEBACK="1")
    assert shown.returncode != 0 and "Traceback" in shown.stderr


def test_as_user_runs_a_command_with_that_users_permissions(migrated: str, tmp_path: Path) -> None:
    with CRM(migrated, load_entry_points=False) as crm:
        viewer = crm.users.create({"name": "Vic", "role": "viewer"})["id"]
        operator = crm.users.create({"name": "Olga", "role": "operator"})["id"]
        gone = crm.users.create({"name": "Gone", "role": "admin", "active": False})["id"]
    args = ("--url", migrated, "--no-plugins")
    report = crmkit("report", "crm.customer_growth", "--format", "csv", *args, "--as-user", str(viewer), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("month,")
    line = one_line_error(crmkit("report", "crm.customer_growth", *args, "--as-user", str(operator), cwd=tmp_path))
    assert line == f"error: user {operator} (operator) may not reports:run"
    line = one_line_error(crmkit("export", "customers", "-o", "out.csv", *args, cwd=tmp_path, CRMKIT_USER=str(viewer)))
    assert line == f"error: user {viewer} (viewer) may not customers:export"
    assert not (tmp_path / "out.csv").exists()
    assert one_line_error(crmkit("tasks", "next", *args, "--as-user", str(gone), cwd=tmp_path)) == (
        f"error: user {gone} is not active"
    )
    assert (
        one_line_error(crmkit("tasks", "next", *args, "--as-user", "999", cwd=tmp_path)) == "error: user 999 not found"
    )
