"""Exports: customers (with plugin and run-time fields), activities and tasks to CSV, XLSX and JSON lines,
filtered as the lists are, streamed a page at a time; CSV never carries a formula but keeps phone numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner
from crmkit_fitness import FitnessPlugin
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from crmkit import CRM, FieldSpec
from crmkit.cells import csv_text, read_csv_text
from crmkit.cli import main
from crmkit.errors import ValidationError
from crmkit.testing import database_of

CORE = [
    "id", "name", "email", "email_normalized", "phone", "phone_normalized", "birthday", "source", "campaign",
    "owner_id", "branch", "country", "stage", "lifecycle", "stage_changed_at", "created_at", "updated_at",
]  # fmt: skip
FITNESS = ["card_number", "goal", "interests", "trial_ends_on", "home_club"]
RUNTIME = ["vip_level", "balance", "newsletter", "last_seen"]
MOMENTS = ("stage_changed_at", "created_at", "updated_at")

ANN: dict[str, Any] = {
    "name": "Ann Müller",
    "email": "Ann@Example.com",
    "phone": "+1 (212) 555-0100",
    "birthday": "1990-05-17",
    "source": "web",
    "stage": "trial",
    "card_number": "C-001",
    "goal": "endurance",
    "trial_ends_on": "2026-03-01",
    "home_club": "North",
    "vip_level": 3,
    "balance": "12.5",
    "newsletter": True,
    "last_seen": "2026-01-01T10:30:00+02:00",
}
BOB: dict[str, Any] = {
    "name": '=HYPERLINK("http://evil.example","open")',
    "phone": "+4915112345678",
    "stage": "active",
    "interests": "+cmd|' /C calc'!A0",
    "home_club": "South",
    "vip_level": 1,
    "newsletter": False,
}
CY: dict[str, Any] = {
    "name": "-5+3",
    "source": "@SUM(A1)",
    "campaign": "'=already quoted",
    "stage": "trial",
    "interests": "#N/A",
    "home_club": "North",
    "balance": "-7.25",
}
DEE: dict[str, Any] = {"name": "Dee", "phone": "030 1234567", "country": "DE"}


def expected_csv(record_id: int, data: dict[str, Any], stamps: dict[str, Any]) -> dict[str, str]:
    """A customer's CSV row, worked out from what the test gave (and the times the CRM stamped)."""
    email = data.get("email")
    stage = data.get("stage", "lead")
    row = {name: "" for name in [*CORE, *FITNESS, *RUNTIME]}
    row.update({k: str(v) for k, v in data.items() if isinstance(v, str)})
    row.update(
        id=str(record_id),
        email_normalized=email.lower() if email else "",
        stage=stage,
        lifecycle={"trial": "lead", "active": "active", "lead": "lead"}[stage],
        **{name: stamps[name] for name in MOMENTS},
    )
    if "vip_level" in data:
        row["vip_level"] = str(data["vip_level"])
    if "newsletter" in data:
        row["newsletter"] = "true" if data["newsletter"] else "false"
    return row


@pytest.fixture
def club(crm_factory: Callable[..., CRM]) -> CRM:
    crm = crm_factory([FitnessPlugin()])
    crm.fields.define(FieldSpec("vip_level", "integer"))
    crm.fields.define(FieldSpec("balance", "decimal"))
    crm.fields.define(FieldSpec("newsletter", "boolean"))
    crm.fields.define(FieldSpec("last_seen", "datetime"))
    return crm


@pytest.fixture
def people(club: CRM) -> dict[str, dict[str, Any]]:
    return {key: club.customers.create(data) for key, data in (("ann", ANN), ("bob", BOB), ("cy", CY), ("dee", DEE))}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# -- CSV ------------------------------------------------------------------------------------------------


def test_csv_has_every_field_in_declaration_order_and_the_stored_values(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "customers.csv"
    report = club.exports.customers(target)
    assert report.to_dict() == {
        "kind": "customers",
        "rows": 4,
        "format": "csv",
        "columns": [*CORE, *FITNESS, *RUNTIME],
    }
    with target.open(encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == [*CORE, *FITNESS, *RUNTIME]
    rows = read_csv(target)
    ann, bob, cy, dee = (people[k] for k in ("ann", "bob", "cy", "dee"))
    want_ann = expected_csv(ann["id"], ANN, ann)
    want_ann.update(phone_normalized="+12125550100", balance="12.50")
    want_bob = expected_csv(bob["id"], BOB, bob)
    # text a spreadsheet would run gets a quote in front; the phone numbers stay as they are
    want_bob.update(
        name="'" + BOB["name"],
        interests="'" + BOB["interests"],
        phone="+4915112345678",
        phone_normalized="+4915112345678",
    )
    want_cy = expected_csv(cy["id"], CY, cy)
    want_cy.update(name="'-5+3", source="'@SUM(A1)", campaign="''=already quoted", balance="-7.25")
    want_dee = expected_csv(dee["id"], DEE, dee)
    want_dee.update(phone_normalized="+49301234567")
    assert rows == [want_ann, want_bob, want_cy, want_dee]
    # the run-time datetime as given, the plugin's date as ISO text
    assert rows[0]["last_seen"] == "2026-01-01T10:30:00+02:00" and rows[0]["trial_ends_on"] == "2026-03-01"


def test_csv_is_utf8_with_a_header_and_crlf_rows(club: CRM, people: dict[str, dict[str, Any]]) -> None:
    out = io.BytesIO()
    club.exports.customers(out, format="csv", columns=["name", "home_club"])
    assert out.getvalue().decode("utf-8").split("\r\n") == [
        "name,home_club",
        "Ann Müller,North",
        '"\'=HYPERLINK(""http://evil.example"",""open"")",South',
        "'-5+3,North",
        "Dee,",
        "",
    ]


def test_every_text_comes_back_from_the_csv_as_it_was_stored(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "customers.csv"
    club.exports.customers(target)
    rows = {int(r["id"]): r for r in read_csv(target)}
    checked = 0
    for key, data in (("ann", ANN), ("bob", BOB), ("cy", CY), ("dee", DEE)):
        row = rows[people[key]["id"]]
        for field, value in data.items():
            if isinstance(value, str) and field not in ("balance", "birthday", "trial_ends_on", "last_seen"):
                assert read_csv_text(row[field]) == value, field
                checked += 1
    assert checked >= 15


def test_a_phone_survives_the_csv_exactly(club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    target = tmp_path / "phones.csv"
    club.exports.customers(target, columns=["phone", "phone_normalized"])
    with target.open(encoding="utf-8", newline="") as f:
        cells = list(csv.reader(f))
    assert cells == [
        ["phone", "phone_normalized"],
        ["+1 (212) 555-0100", "+12125550100"],
        ["+4915112345678", "+4915112345678"],
        ["", ""],
        ["030 1234567", "+49301234567"],
    ]


@pytest.mark.parametrize(
    ("text", "phone", "written"),
    [
        ("=1+2", False, "'=1+2"),
        ("-5+3", False, "'-5+3"),
        ("-5+3", True, "'-5+3"),
        ("+cmd|' /C calc'!A0", False, "'+cmd|' /C calc'!A0"),
        ("+cmd|' /C calc'!A0", True, "'+cmd|' /C calc'!A0"),
        ("@SUM(A1)", False, "'@SUM(A1)"),
        ("\tx", False, "'\tx"),
        ("\rx", False, "'\rx"),
        ("+4915112345678", False, "+4915112345678"),  # E.164, in any column
        ("+4915112345678", True, "+4915112345678"),
        ("+1 (212) 555-0100", True, "+1 (212) 555-0100"),  # as typed, in a phone column
        ("+1 (212) 555-0100", False, "'+1 (212) 555-0100"),  # elsewhere arithmetic a spreadsheet would do
        ("+44 20.7946/0958", True, "+44 20.7946/0958"),
        ("+5-3", True, "'+5-3"),  # too few digits for a phone number
        ("+12345", False, "'+12345"),
        ("+1234567890123456", False, "'+1234567890123456"),  # 16 digits: longer than E.164 allows
        ("+1-800-FLOWERS", True, "'+1-800-FLOWERS"),
        ("+1 212 555 0100 =cmd", True, "'+1 212 555 0100 =cmd"),
        ("'=x", False, "''=x"),
        ("'hello", False, "'hello"),
        ("Ann", False, "Ann"),
        ("", False, ""),
        ("a=b", False, "a=b"),
    ],
)
def test_the_csv_text_rule(text: str, phone: bool, written: str) -> None:
    assert csv_text(text, phone=phone) == written
    assert read_csv_text(written) == text


@given(st.text(), st.booleans())
def test_read_csv_text_undoes_csv_text(text: str, phone: bool) -> None:
    written = csv_text(text, phone=phone)
    assert read_csv_text(written) == text
    # a spreadsheet runs nothing: the text starts with a quote, or with no formula character, or is a phone
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r")) or written.startswith("+")


def test_report_csv_uses_the_same_rule(club: CRM, people: dict[str, dict[str, Any]]) -> None:
    from crmkit.reports import Column, Report, ReportContext

    def names(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"name": c["name"], "phone": c["phone"]} for c in club.customers.search().items]

    club.reports.register(Report("app.names", "Names", names, (Column("name"), Column("phone"))))
    rows = list(csv.reader(io.StringIO(club.reports.render("app.names", format="csv"))))
    assert rows == [
        ["name", "phone"],
        ["Ann Müller", "+1 (212) 555-0100"],
        ["'" + BOB["name"], "+4915112345678"],
        ["'-5+3", ""],
        ["Dee", "030 1234567"],
    ]


# -- JSON lines -----------------------------------------------------------------------------------------


def test_jsonl_is_one_object_per_customer_with_the_read_model_values(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "customers.jsonl"
    report = club.exports.customers(target)
    assert report.format == "jsonl" and report.rows == 4
    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [people[k] for k in ("ann", "bob", "cy", "dee")]
    ann = json.loads(lines[0])
    assert list(ann) == [*CORE, *FITNESS, *RUNTIME]
    assert (ann["home_club"], ann["vip_level"], ann["balance"], ann["newsletter"]) == ("North", 3, "12.50", True)
    assert ann["last_seen"] == "2026-01-01T10:30:00+02:00"
    assert json.loads(lines[1])["name"] == BOB["name"]  # JSON is no spreadsheet: text as it is


# -- XLSX -----------------------------------------------------------------------------------------------


def test_xlsx_cells_are_typed_and_text_is_never_a_formula(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "customers.xlsx"
    report = club.exports.customers(target)
    assert report.format == "xlsx" and report.rows == 4
    sheet = openpyxl.load_workbook(target).active
    assert sheet is not None
    assert sheet.freeze_panes == "A2"
    header = [c.value for c in sheet[1]]
    utc = {"stage_changed_at", "created_at", "updated_at", "last_seen"}
    assert header == [f"{n} (UTC)" if n in utc else n for n in [*CORE, *FITNESS, *RUNTIME]]
    rows: list[dict[str, Any]] = [
        dict(zip([*CORE, *FITNESS, *RUNTIME], row, strict=True)) for row in sheet.iter_rows(2)
    ]
    assert len(rows) == 4
    ann, bob, cy, _ = rows

    def typed(cell: Any) -> tuple[Any, str]:
        return cell.value, cell.data_type

    assert typed(ann["id"]) == (people["ann"]["id"], "n")
    assert typed(ann["name"]) == ("Ann Müller", "s")
    assert typed(ann["phone"]) == ("+1 (212) 555-0100", "s")
    assert typed(ann["vip_level"]) == (3, "n")
    assert typed(ann["balance"]) == (12.5, "n") and ann["balance"].number_format == "0.00"
    assert typed(cy["balance"]) == (-7.25, "n")
    assert typed(ann["newsletter"]) == (True, "b")
    assert typed(bob["newsletter"]) == (False, "b")
    assert ann["trial_ends_on"].is_date and ann["trial_ends_on"].value.date() == dt.date(2026, 3, 1)
    assert ann["birthday"].is_date and ann["birthday"].value.date() == dt.date(1990, 5, 17)
    # 10:30 at +02:00 is 08:30 UTC, written without a time zone (Excel has none)
    assert ann["last_seen"].is_date and ann["last_seen"].value == dt.datetime(2026, 1, 1, 8, 30)
    created = dt.datetime.fromisoformat(people["ann"]["created_at"]).astimezone(dt.UTC).replace(tzinfo=None)
    assert ann["created_at"].is_date and abs(ann["created_at"].value - created) < dt.timedelta(milliseconds=1)
    # text that openpyxl would take for a formula or an error value is a string cell, kept as it is
    assert typed(bob["name"]) == (BOB["name"], "s")
    assert typed(cy["interests"]) == ("#N/A", "s")
    assert typed(cy["name"]) == ("-5+3", "s")
    assert ann["email"].value == "Ann@Example.com" and ann["source"].value == "web"
    assert ann["card_number"].value == "C-001"


def test_xlsx_text_with_characters_xml_cannot_hold(club: CRM, tmp_path: Path) -> None:
    club.customers.create({"name": "Bell\x07 and\x1b escape", "interests": "line one\nline two\ttab"})
    target = tmp_path / "odd.xlsx"
    club.exports.customers(target, columns=["name", "interests"])
    sheet = openpyxl.load_workbook(target).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["Bell\ufffd and\ufffd escape", "line one\nline two\ttab"]


# -- filters and columns --------------------------------------------------------------------------------


def test_where_is_the_list_apis_filter_with_plugin_and_runtime_fields(
    club: CRM, people: dict[str, dict[str, Any]]
) -> None:
    def exported(where: dict[str, Any]) -> list[int]:
        out = io.BytesIO()
        report = club.exports.customers(out, format="jsonl", where=where, columns=["id"])
        ids = [json.loads(line)["id"] for line in out.getvalue().decode().splitlines()]
        assert report.rows == len(ids)
        assert [c["id"] for c in club.customers.search(where).items] == ids  # the list shows the same
        return ids

    ann, bob, cy, dee = (people[k]["id"] for k in ("ann", "bob", "cy", "dee"))
    assert exported({"stage": "trial", "home_club": "North"}) == [ann, cy]
    assert exported({"stage": "trial", "home_club": "North", "vip_level__gte": 2}) == [ann]
    assert exported({"stage__in": "active,lead"}) == [bob, dee]
    assert exported({"newsletter": "false"}) == [bob]
    assert exported({"phone": "+1 212 555 0100"}) == [ann]
    assert exported({"home_club": "East"}) == []


def test_columns_pick_and_order_the_fields(club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    target = tmp_path / "few.csv"
    report = club.exports.customers(target, columns=["home_club", "name", "vip_level"])
    assert report.columns == ("home_club", "name", "vip_level")
    with target.open(encoding="utf-8", newline="") as f:
        assert list(csv.reader(f)) == [
            ["home_club", "name", "vip_level"],
            ["North", "Ann Müller", "3"],
            ["South", "'" + BOB["name"], "1"],
            ["North", "'-5+3", ""],
            ["", "Dee", ""],
        ]


@pytest.mark.parametrize(
    ("kwargs", "key", "words"),
    [
        ({"columns": ["name", "bogus"]}, "columns", "unknown field 'bogus'"),
        ({"columns": ["name", "name"]}, "columns", "named more than once: name"),
        ({"columns": []}, "columns", "at least one"),
        ({"columns": "name"}, "columns", "list of field names"),
        ({"format": "pdf"}, "format", "unknown format 'pdf'"),
        ({"where": {"nope": 1}}, "nope", "unknown field 'nope'"),
        ({"where": {"vip_level__gte": "many"}}, "vip_level__gte", "integer"),
    ],
)
def test_bad_arguments_are_refused_before_a_file_is_written(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path, kwargs: dict[str, Any], key: str, words: str
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(ValidationError) as caught:
        club.exports.customers(folder / "out.csv", **kwargs)
    assert words in " ".join(map(str, caught.value.errors[key]))
    assert list(folder.iterdir()) == []


def test_the_format_comes_from_the_file_name(club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    assert club.exports.customers(tmp_path / "a.ndjson").format == "jsonl"
    assert club.exports.customers(tmp_path / "a.CSV").format == "csv"
    assert club.exports.customers(str(tmp_path / "a.xlsx")).format == "xlsx"
    with pytest.raises(ValidationError, match="cannot tell the format from the file name 'a.txt'"):
        club.exports.customers(tmp_path / "a.txt")
    with pytest.raises(ValidationError, match="file object without a name"):
        club.exports.customers(io.BytesIO())
    with (tmp_path / "named.jsonl").open("wb") as f:  # a file object's name tells it too
        assert club.exports.customers(f).format == "jsonl"
    with (tmp_path / "text.csv").open("w") as f, pytest.raises(ValidationError, match="binary mode"):
        club.exports.customers(f)  # type: ignore[arg-type]


def test_a_failed_export_leaves_the_previous_file_and_no_half_file(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "customers.csv"
    target.write_text("yesterday's export\n", encoding="utf-8")

    def interrupted(rows: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        club.exports.customers(target, progress=interrupted)
    with pytest.raises(ValidationError):
        club.exports.customers(target, where={"nope": 1})
    assert target.read_text(encoding="utf-8") == "yesterday's export\n"
    assert [p.name for p in folder.iterdir()] == ["customers.csv"]
    assert club.exports.customers(target).rows == 4
    assert len(read_csv(target)) == 4


def test_an_export_in_a_unit_of_work_sees_its_writes(club: CRM, people: dict[str, dict[str, Any]]) -> None:
    with club.transaction() as tx:
        new = club.customers.create({"name": "Eve", "home_club": "North"}, tx=tx)
        out = io.BytesIO()
        report = club.exports.customers(out, format="jsonl", where={"home_club": "North"}, columns=["id"], tx=tx)
    assert report.rows == 3
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == [
        people["ann"]["id"],
        people["cy"]["id"],
        new["id"],
    ]


# -- activities and tasks -------------------------------------------------------------------------------


def test_activities_and_tasks_export_their_records(
    club: CRM, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    ann, bob = people["ann"]["id"], people["bob"]["id"]
    at = "2026-02-03T18:00:00+00:00"
    rows = [
        {"customer_id": ann, "kind": "payment", "amount": "12.50", "currency": "EUR", "occurred_at": at,
         "source": "till", "external_id": "r-1"},
        {"customer_id": bob, "kind": "checkin", "occurred_at": at, "data": {"club": "North", "door": "=A1"}},
        {"customer_id": ann, "kind": "note", "subject": "=1+2", "occurred_at": at},
    ]  # fmt: skip
    assert club.activities.ingest(rows).inserted == 3
    activities = tmp_path / "activities.csv"
    report = club.exports.activities(activities, where={"occurred_at__gte": "2026-02-01"})
    assert report.rows == 3
    assert report.columns[:5] == ("id", "customer_id", "contact_id", "kind", "channel")
    got = read_csv(activities)
    assert [(r["customer_id"], r["kind"], r["amount"], r["currency"], r["subject"]) for r in got] == [
        (str(ann), "payment", "12.50", "EUR", ""),
        (str(bob), "checkin", "", "", ""),
        (str(ann), "note", "", "", "'=1+2"),
    ]
    assert json.loads(got[1]["data"]) == {"club": "North", "door": "=A1"}
    assert [r["occurred_at"] for r in got] == [at] * 3

    book = tmp_path / "activities.xlsx"
    club.exports.activities(book, where={"kind": "payment"}, columns=["kind", "amount", "occurred_at"])
    sheet = openpyxl.load_workbook(book).active
    assert sheet is not None
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["kind", "amount", "occurred_at (UTC)"],
        ["payment", 12.5, dt.datetime(2026, 2, 3, 18, 0)],
    ]

    made = club.tasks.create_many(
        [
            {"title": "Call Ann", "customer_id": ann, "due_at": "2026-03-01T09:00:00Z", "priority": 80},
            {"title": "-check the till", "priority": 5},
        ]
    )
    tasks = tmp_path / "tasks.jsonl"
    report = club.exports.tasks(tasks, where={"priority__gte": 10})
    assert report.rows == 1
    (line,) = tasks.read_text(encoding="utf-8").splitlines()
    task = json.loads(line)
    assert task == made[0]
    assert (task["title"], task["customer_id"], task["due_at"], task["priority"], task["status"]) == (
        "Call Ann",
        ann,
        "2026-03-01T09:00:00+00:00",
        80,
        "open",
    )
    club.exports.tasks(tmp_path / "tasks.csv", columns=["title", "priority"])
    assert read_csv(tmp_path / "tasks.csv") == [
        {"title": "Call Ann", "priority": "80"},
        {"title": "'-check the till", "priority": "5"},
    ]


def test_pages_follow_one_another_without_gaps_or_repeats(crm: CRM, tmp_path: Path) -> None:
    anna = crm.customers.create({"name": "Anna"})["id"]
    rows = [
        {
            "customer_id": anna,
            "kind": "note",
            "subject": f"n{i}",
            "occurred_at": "2026-01-01T00:00:00Z",
            "source": "app",
            "external_id": f"n{i}",
        }
        for i in range(2_345)
    ]
    assert crm.activities.ingest(rows).inserted == 2_345
    seen: list[int] = []
    report = crm.exports.activities(tmp_path / "all.csv", progress=seen.append)
    assert report.rows == 2_345 and seen == [1000, 1000, 345]
    exported = read_csv(tmp_path / "all.csv")
    ids = [int(r["id"]) for r in exported]
    assert ids == sorted(set(ids))  # in id order, none twice
    assert sorted(r["subject"] for r in exported) == sorted(f"n{i}" for i in range(2_345))
    odd = [f"n{i}" for i in range(2_345) if i % 2]
    picked = crm.exports.activities(tmp_path / "some.csv", where={"external_id__in": odd[:500]}, columns=["subject"])
    assert picked.rows == 500
    assert sorted(r["subject"] for r in read_csv(tmp_path / "some.csv")) == sorted(odd[:500])


# -- memory ---------------------------------------------------------------------------------------------

MANY = 20_000


def test_memory_stays_that_of_a_page_however_many_customers(crm: CRM, tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    table = crm.metadata.tables["crm_customers"]
    with crm.engine.begin() as conn:  # a bulk insert: 20k creates would take most of a minute
        conn.execute(
            insert(table),
            [
                {"name": f"Customer number {i}", "email": f"c{i}@example.org", "email_normalized": f"c{i}@example.org",
                 "phone": f"+4915{i:09d}", "phone_normalized": f"+4915{i:09d}", "source": "import", "stage": "lead",
                 "lifecycle": "lead", "stage_changed_at": now, "created_at": now, "updated_at": now, "extra": {}}
                for i in range(MANY)
            ],
        )  # fmt: skip
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        page = crm.customers.search(limit=1000)
        one_page = tracemalloc.get_traced_memory()[0] - before
        assert len(page.items) == 1000
        del page
        everything = one_page * MANY // 1000  # what the rows take as Python objects, all held at once
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        report = crm.exports.customers(tmp_path / "many.csv")
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert report.rows == MANY
    assert peak < everything / 5, (peak, everything)
    with (tmp_path / "many.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        first = next(reader)
        assert (first["name"], first["phone"]) == ("Customer number 0", "+4915000000000")
        assert sum(1 for _ in reader) == MANY - 1


# -- the command line -----------------------------------------------------------------------------------


def cli_url(crm: CRM) -> str:
    """The URL that opens the test's database from the command line (its own schema on PostgreSQL)."""
    url, options = database_of(crm)
    if not options:
        return url
    return make_url(url).update_query_dict({"options": options["connect_args"]["options"]}).render_as_string(False)


def run(crm: CRM, *args: str) -> Any:
    return CliRunner().invoke(main, ["export", *args, "--url", cli_url(crm), "--no-plugins"])


def test_the_export_command_writes_the_file_and_says_so(crm: CRM, tmp_path: Path) -> None:
    for name, stage in (("Ann", "lead"), ("Bob", "active"), ("Cy", "lead")):
        crm.customers.create({"name": name, "stage": stage, "phone": "+1 212 555 0100"}, allow_duplicate=True)
    target = tmp_path / "leads.csv"
    result = run(crm, "customers", "-o", str(target), "--where", "stage=lead", "--columns", "name,phone")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"exported 2 customers to {target}\n"
    assert read_csv(target) == [{"name": "Ann", "phone": "+1 212 555 0100"}, {"name": "Cy", "phone": "+1 212 555 0100"}]
    result = run(crm, "customers", "-o", str(tmp_path / "x"), "--format", "xlsx", "--where", "stage__in=lead,active")
    assert result.stdout == f"exported 3 customers to {tmp_path / 'x'}\n"
    with (tmp_path / "x").open("rb") as f:
        assert openpyxl.load_workbook(f).active.max_row == 4  # type: ignore[union-attr]
    result = run(crm, "tasks", "-o", str(tmp_path / "t.jsonl"))
    assert result.stdout == f"exported 0 tasks to {tmp_path / 't.jsonl'}\n"
    assert (tmp_path / "t.jsonl").read_bytes() == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "nope=1"], "error: invalid search: nope: unknown field 'nope'"),
        (["--where", "stage"], "error: invalid value for '--where': 'stage' is not FIELD=VALUE"),
        (["--where", "stage=lead", "--where", "stage=active"], "error: invalid value for '--where': 'stage' is given"),
        (["--format", "pdf"], "error: invalid value for '--format': 'pdf' is not one of"),
        (["--columns", "name,,phone"], "error: invalid export: columns: unknown field ''"),
        (["-o", "{tmp}/missing/out.csv"], "error: No such file or directory: {tmp}/missing/out.csv"),
        (["-o", "{tmp}/out.txt"], "error: invalid export: format: cannot tell the format from the file name 'out.txt'"),
    ],
)
def test_export_command_errors_are_one_line(crm: CRM, tmp_path: Path, args: list[str], message: str) -> None:
    crm.customers.create({"name": "Ann"})
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "out.csv")]
    result = run(crm, "customers", *args)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a user error, not a crash
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.replace("{tmp}", str(tmp_path))), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("crm-")) == []
