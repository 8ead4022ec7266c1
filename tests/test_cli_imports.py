"""``crmkit import``: customers from a file with its summary, a dry run's preview, the reject file,
``--strict``, the list of imports, revert, and every mistake as one line.

The command runs in-process (click's runner) against the test's database, on SQLite or PostgreSQL; the
expected output is written out by hand, line by line.
"""

from __future__ import annotations

import csv
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from crmkit_fitness import FitnessPlugin
from sqlalchemy import make_url, text

from crmkit import CRM
from crmkit.cli import main
from crmkit.testing import database_of

PLUGINS = ("--no-plugins", "--plugin", "crmkit_fitness:FitnessPlugin")


@pytest.fixture
def fcrm(crm_factory: Any) -> CRM:
    return crm_factory([FitnessPlugin()])


@pytest.fixture
def url(fcrm: CRM) -> str:
    """``fcrm``'s database as a ``--url`` (on PostgreSQL, the test's schema rides in the URL)."""
    raw, options = database_of(fcrm)
    if not options:
        return raw
    return make_url(raw).update_query_dict({"options": options["connect_args"]["options"]}).render_as_string(False)


def crmkit(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--url", url, *PLUGINS])


def one_line_error(result: Result) -> str:
    """The error of a command that failed as a user error should: one ``error: ...`` line on stderr, a
    non-zero exit code, no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write_csv(path: Path, *rows: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def count(crm: CRM, table: str) -> int:
    with crm.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def names(crm: CRM) -> list[str]:
    return sorted(c["name"] for c in crm.customers.search({}).items)


MEMBERS = [
    ["Name", "Email", "Goal", "Notes"],
    ["Anna", "anna@x.example", "muscle", "first"],  # 2 created
    ["Bea B.", "bea@x.example", "", ""],  # 3 updates Bea's name
    ["Anna", "ANNA@x.example", "", ""],  # 4 duplicate of line 2
    ["Bo", "not-an-email", "", ""],  # 5 rejected
]
COUNTS = ["created            1", "updated            1", "unchanged          0", "skipped            1",
          "rejected           1", "total              4"]  # fmt: skip
EMAIL = "email: Not a valid email address."


@pytest.fixture
def members(tmp_path: Path, fcrm: CRM) -> Path:
    """The file, and Bea already in the CRM."""
    fcrm.customers.create({"name": "Bea", "email": "bea@x.example"})
    return write_csv(tmp_path / "members.csv", *MEMBERS)


def test_an_import_prints_its_counts_its_id_and_where_the_rejects_went(fcrm: CRM, url: str, members: Path) -> None:
    result = crmkit(url, "import", "customers", str(members))
    assert result.exit_code == 0, result.output
    (record,) = fcrm.imports.list()
    rejects = members.with_name("members.rejects.csv")
    assert result.stdout.splitlines() == [
        f"import {record['id']}: customers from members.csv",
        "columns: Name -> name, Email -> email, Goal -> goal",
        "ignored columns: Notes",
        *COUNTS,
        f"  rejected line 5: {EMAIL}",
        f"rejected lines written to {rejects} (next to the file; choose another with --rejects PATH)",
        f"to take it back: crmkit import revert {record['id']}",
    ]
    assert result.stderr == ""  # no progress bar when nobody watches
    assert names(fcrm) == ["Anna", "Bea B."]
    with rejects.open(newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["line", "reasons", "original"], ["5", EMAIL, "Bo,not-an-email,,"]]
    assert sorted(p.name for p in members.parent.iterdir() if p.name.startswith("members")) == [
        "members.csv",
        "members.rejects.csv",
    ]  # and no temporary file left beside it
    assert (record["status"], record["counts"]["created"], record["source_name"]) == ("done", 1, "members.csv")


def test_a_dry_run_prints_what_each_line_would_do_and_writes_nothing(fcrm: CRM, url: str, members: Path) -> None:
    (bea,) = fcrm.customers.search({}).items
    result = crmkit(url, "import", "customers", str(members), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "dry run: nothing was written",
        "columns: Name -> name, Email -> email, Goal -> goal",
        "ignored columns: Notes",
        "   line  action     customer  fields or reasons",
        "      2  created         new  email, goal, name",
        f"      3  updated    {bea['id']:>8}  name",
        "      4  skipped         new  duplicate of line 2",
        f"      5  rejected          -  {EMAIL}",
        *COUNTS,
        "dry run: nothing was written",
    ]
    assert names(fcrm) == ["Bea"]
    assert count(fcrm, "crm_imports") == 0
    assert sorted(p.name for p in members.parent.iterdir() if p.name.startswith("members")) == ["members.csv"]
    # --preview says how many lines; the rejected lines beyond them are still shown
    short = crmkit(url, "import", "customers", str(members), "--dry-run", "--preview", "1")
    assert short.stdout.splitlines()[3:5] == ["   line  action     customer  fields or reasons",
                                              "      2  created         new  email, goal, name"]  # fmt: skip
    assert f"  rejected line 5: {EMAIL}" in short.stdout.splitlines()


def test_options_map_columns_and_say_how_values_are_written(fcrm: CRM, url: str, tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "old-crm.csv",
        ["Who", "Contact", "Born", "Aim", "Tel", "Remarks"],
        ["Anna", "anna@x.example", "04/03/1990", "Lose weight", "020 7946 0958", "vip"],
    )
    args = ["--map", "Who=name", "--map", "Contact=email", "--map", "Born=birthday", "--map", "Aim=goal",
            "--map", "Tel=phone", "--ignore", "Remarks", "--choice", "goal:Lose weight=weight_loss",
            "--date-format", "dd/mm/yyyy", "--phone-region", "gb", "--match", "email"]  # fmt: skip
    result = crmkit(url, "import", "customers", str(file), *args)
    assert result.exit_code == 0, result.output
    assert "columns: Who -> name, Contact -> email, Born -> birthday, Aim -> goal, Tel -> phone" in result.stdout
    (anna,) = fcrm.customers.search({}).items
    assert (anna["birthday"], anna["goal"], anna["phone_normalized"]) == ("1990-03-04", "weight_loss", "+442079460958")
    # --mode create leaves the customers the file matches alone
    again = crmkit(url, "import", "customers", str(file), *args, "--mode", "create")
    assert again.exit_code == 0, again.output
    assert "created            0" in again.stdout and "skipped            1" in again.stdout


def test_strict_exits_1_when_a_line_is_rejected_and_0_when_none_is(fcrm: CRM, url: str, members: Path) -> None:
    result = crmkit(url, "import", "customers", str(members), "--strict")
    assert one_line_error(result) == "error: 1 line rejected (--strict)"
    assert "rejected           1" in result.stdout  # the summary is printed all the same
    assert names(fcrm) == ["Anna", "Bea B."]  # and the import ran: the good lines are stored
    clean = write_csv(members.with_name("clean.csv"), ["Name", "Email"], ["Cid", "cid@x.example"])
    assert crmkit(url, "import", "customers", str(clean), "--strict").exit_code == 0
    dry = crmkit(url, "import", "customers", str(members), "--strict", "--dry-run")
    assert one_line_error(dry) == "error: 1 line rejected (--strict)"


def test_the_default_reject_file_is_written_only_when_lines_are_rejected(fcrm: CRM, url: str, tmp_path: Path) -> None:
    clean = write_csv(tmp_path / "clean.csv", ["Name", "Email"], ["Cid", "cid@x.example"])
    earlier = tmp_path / "clean.rejects.csv"
    earlier.write_text("line,reasons,original\n9,from the run before,x\n", encoding="utf-8")
    result = crmkit(url, "import", "customers", str(clean))
    assert result.exit_code == 0, result.output
    assert "rejected lines" not in result.stdout
    assert earlier.read_text(encoding="utf-8") == "line,reasons,original\n9,from the run before,x\n"
    # a --rejects file is written whenever the import runs, so that a script always finds it
    chosen = tmp_path / "out" / "rejected.csv"
    chosen.parent.mkdir()
    again = crmkit(url, "import", "customers", str(clean), "--rejects", str(chosen))
    assert again.exit_code == 0, again.output
    assert f"no rejected lines; {chosen} has none" in again.stdout.splitlines()
    assert chosen.read_text(encoding="utf-8").splitlines() == ["line,reasons,original"]
    assert sorted(p.name for p in chosen.parent.iterdir()) == ["rejected.csv"]


def test_import_list_shows_what_ran_on_what_and_what_it_did(fcrm: CRM, url: str, members: Path) -> None:
    assert crmkit(url, "import", "list").stdout == "no imports yet\n"
    assert crmkit(url, "import", "customers", str(members)).exit_code == 0
    office = fcrm.users.create({"name": "Office", "role": "manager"})
    clean = write_csv(members.with_name("clean.csv"), ["Name"], ["Cid"])
    fcrm.imports.customers(clean, actor_id=office["id"])
    first, second = (r["id"] for r in reversed(fcrm.imports.list()))
    assert crmkit(url, "import", "revert", str(second)).exit_code == 0
    result = crmkit(url, "import", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["id", "importer", "source", "status", "created", "updated", "unchanged", "skipped",
                              "rejected", "started", "(UTC)", "actor"]  # fmt: skip
    day = fcrm.imports.get(first)["started_at"][:10]
    assert [row.split()[:9] + row.split()[11:] for row in rows] == [
        [str(second), "customers", "clean.csv", "reverted", "1", "0", "0", "0", "0", "Office"],
        [str(first), "customers", "members.csv", "done", "1", "1", "0", "1", "1", "-"],
    ]
    assert [row.split()[9] for row in rows] == [day, day]
    assert len(crmkit(url, "import", "list", "--limit", "1").stdout.splitlines()) == 2


def test_revert_says_what_it_took_back(fcrm: CRM, url: str, members: Path) -> None:
    assert crmkit(url, "import", "customers", str(members)).exit_code == 0
    (record,) = fcrm.imports.list()
    result = crmkit(url, "import", "revert", str(record["id"]))
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"import {record['id']} reverted: 1 customers removed, 1 restored, 0 activities removed\n")
    assert names(fcrm) == ["Bea"]
    again = one_line_error(crmkit(url, "import", "revert", str(record["id"])))
    assert again.startswith(f"error: import {record['id']} was reverted already, at ")


def test_a_refused_revert_is_one_line_naming_the_customers_and_changes_nothing(
    fcrm: CRM, url: str, members: Path
) -> None:
    assert crmkit(url, "import", "customers", str(members)).exit_code == 0
    (record,) = fcrm.imports.list()
    (bea,) = (c for c in fcrm.customers.search({}).items if c["name"] == "Bea B.")
    fcrm.customers.update(bea["id"], {"name": "Beatrice"})
    line = one_line_error(crmkit(url, "import", "revert", str(record["id"])))
    assert line == (
        f"error: import {record['id']} cannot be reverted, later changes would be lost:"
        f" customer {bea['id']} (line 3) changed since: name"
    )
    assert names(fcrm) == ["Anna", "Beatrice"]
    assert fcrm.imports.get(record["id"])["status"] == "done"
    assert one_line_error(crmkit(url, "import", "revert", "999")) == "error: import 999 not found"


MISTAKES: list[tuple[list[str], str]] = [
    (["--map", "Name"], "'--map': 'Name' is not COLUMN=FIELD"),
    (["--map", "Name=nope"], "unknown field 'nope'"),
    (["--map", "Who=name"], "the mapping names column 'Who', which the file does not have"),
    (["--ignore", "Name", "--map", "Name=name"], "'--ignore': 'Name' is also given to --map"),
    (["--match", "email,name"], "match keys must be some of email, phone, external_id"),
    (["--mode", "merge"], "'--mode'"),
    (["--date-format", "when"], "'--date-format'"),
    (["--timezone", "Mars/Olympus"], "'--timezone'"),
    (["--phone-region", "XX"], "'--phone-region': 'XX' is not a region code"),
    (["--choice", "goal=x"], "'--choice': 'goal=x' is not FIELD:LABEL=VALUE"),
    (["--choice", "name:A=b"], "'--choice': 'name' is not a field with choices"),
    (["--choice", "goal:Lose weight=thin"], "'--choice': 'thin' is not a choice of goal"),
    (["--preview", "-1"], "'--preview'"),
    (["--chunk-size", "0"], "'--chunk-size'"),
    (["--rejects", "{file}"], "'--rejects': is the file being imported"),
    (["--rejects", "{dir}/no/such/r.csv"], "--rejects: folder"),
]


@pytest.mark.parametrize(("args", "expected"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_each_mistake_is_one_line_and_writes_nothing(
    fcrm: CRM, url: str, members: Path, args: list[str], expected: str
) -> None:
    args = [a.format(file=members, dir=members.parent) for a in args]
    line = one_line_error(crmkit(url, "import", "customers", str(members), *args))
    assert expected in line
    assert (names(fcrm), count(fcrm, "crm_imports")) == (["Bea"], 0)
    assert sorted(p.name for p in members.parent.iterdir() if p.name.startswith("members")) == ["members.csv"]


def test_a_file_that_is_missing_or_cannot_be_read_is_one_line(fcrm: CRM, url: str, tmp_path: Path) -> None:
    missing = one_line_error(crmkit(url, "import", "customers", str(tmp_path / "nope.csv")))
    assert "'FILE'" in missing and "does not exist" in missing
    assert "'FILE'" in one_line_error(crmkit(url, "import", "customers", str(tmp_path)))
    legacy = tmp_path / "members.xls"
    legacy.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00\xff" * 64)  # an old binary Excel file
    one_line_error(crmkit(url, "import", "customers", str(legacy)))
    nameless = write_csv(tmp_path / "nameless.csv", ["Email"], ["a@x.example"])
    line = one_line_error(crmkit(url, "import", "customers", str(nameless)))
    assert "no column maps to name" in line
    assert count(fcrm, "crm_imports") == 0


def test_import_list_and_revert_take_one_line_errors_too(url: str) -> None:
    assert "'ID'" in one_line_error(crmkit(url, "import", "revert", "abc"))
    assert "'--limit'" in one_line_error(crmkit(url, "import", "list", "--limit", "0"))


def test_help_lists_the_import_commands() -> None:
    top = CliRunner().invoke(main, ["--help"])
    assert top.exit_code == 0 and "  import " in top.output
    group = CliRunner().invoke(main, ["import", "-h"])
    assert group.exit_code == 0
    for usage in ("crmkit import customers FILE", "crmkit import NAME FILE", "crmkit import list",
                  "crmkit import revert ID"):  # fmt: skip
        assert usage in group.output


def test_a_person_watching_sees_a_progress_bar_with_rows_per_second(fcrm: CRM, url: str, tmp_path: Path) -> None:
    file = write_csv(tmp_path / "big.csv", ["Name", "Email"], *[[f"M{i}", f"m{i}@x.example"] for i in range(60)])
    primary, secondary = pty.openpty()  # stderr is a terminal; stdout stays a pipe
    script = Path(sys.executable).with_name("crmkit")
    args = [str(script), "import", "customers", str(file), "--chunk-size", "20", "--url", url, *PLUGINS]
    env = {k: v for k, v in os.environ.items() if k not in ("CRMKIT_DATABASE_URL", "CRMKIT_TRACEBACK")}
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=secondary, env=env) as process:
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal's other end closed: the command is done
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = process.communicate(timeout=120)
    os.close(primary)
    assert process.returncode == 0, seen
    shown = seen.decode()
    assert "importing big.csv" in shown and "60 rows" in shown and "rows/s" in shown
    assert b"created           60" in stdout


def test_the_import_commands_module_can_be_imported_before_the_command_line() -> None:
    # crmkit.cli finds `import` when it is run, so neither module needs the other imported first
    code = (
        "import crmkit.cli_imports as m; from crmkit.cli import main;"
        " assert main.get_command(None, 'import') is m.imports"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_an_importer_runs_by_its_name_and_a_rerun_stores_nothing_twice(fcrm: CRM, url: str, tmp_path: Path) -> None:
    anna = fcrm.customers.create({"name": "Anna", "phone": "+12125550100"})
    calls = write_csv(
        tmp_path / "calls.csv",
        ["uniqueid", "calldate", "src", "dst", "billsec", "type", "disposition"],
        ["c1", "2026-11-02 09:15:00", "+12125550100", "+12125559999", "65", "inbound", "ANSWERED"],
        ["c2", "2026-11-02 09:20:00", "+12125550177", "+12125559999", "5", "inbound", "ANSWERED"],
        ["c3", "2026-11-02 09:25:00", "+12125550100", "+12125559999", "x", "inbound", "ANSWERED"],
    )
    first = crmkit(url, "import", "telephony", str(calls), "--set", "create_unknown=true")
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0].endswith(": telephony from calls.csv")
    assert "created            2" in lines and "rejected           1" in lines
    assert "  rejected line 4: duration: not a whole number: 'x'" in lines
    again = crmkit(url, "import", "telephony", str(calls), "--set", "create_unknown=true")
    assert "created            0" in again.stdout.splitlines() and "skipped            2" in again.stdout.splitlines()
    with fcrm.engine.connect() as conn:
        stored = conn.execute(text("SELECT customer_id, external_id FROM crm_activities ORDER BY external_id")).all()
    (lead,) = [c for c in fcrm.customers.search({}).items if c["id"] != anna["id"]]
    assert [tuple(r) for r in stored] == [(anna["id"], "c1"), (lead["id"], "c2")]
    unknown = one_line_error(crmkit(url, "import", "pbx", str(calls)))
    assert "unknown importer 'pbx'" in unknown and "telephony" in unknown
