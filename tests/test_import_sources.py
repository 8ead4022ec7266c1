"""crmkit.imports.sources: CSV, XLSX and JSON lines read record by record in constant memory; a record that
cannot be read carries its line and reason and the others go on; a file that cannot be read at all is one
clear ValidationError."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import os
import re
import tracemalloc
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.errors import ValidationError
from crmkit.imports import sources
from crmkit.imports.sources import Source, SourceLine, open_source


def read(data: bytes, **options: Any) -> tuple[Source, list[SourceLine]]:
    options.setdefault("format", "csv")
    with open_source(io.BytesIO(data), **options) as source:
        return source, list(source)


def refused(data: bytes | Path, **options: Any) -> str:
    """The one reason a whole file is refused for."""
    with pytest.raises(ValidationError) as caught:
        open_source(io.BytesIO(data) if isinstance(data, bytes) else data, **options)
    assert set(caught.value.errors) == {"source"} and len(caught.value.errors["source"]) == 1
    assert "\n" not in str(caught.value)
    reason: str = caught.value.errors["source"][0]
    return reason


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- CSV ---------------------------------------------------------------------------------------------------


def test_csv_records_with_their_lines_raw_text_and_values(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(b"name,email,phone\r\nAnna,anna@example.com,+4915112345678\r\nBoris,,\r\n")
    with open_source(path) as source:
        assert (source.name, source.format, source.encoding, source.delimiter) == ("members.csv", "csv", "utf-8", ",")
        assert source.header == ("name", "email", "phone")
        records = list(source)
    anna = {"name": "Anna", "email": "anna@example.com", "phone": "+4915112345678"}
    assert records == [
        SourceLine(2, "Anna,anna@example.com,+4915112345678", anna, ()),
        SourceLine(3, "Boris,,", {"name": "Boris", "email": "", "phone": ""}, ()),
    ]


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("name,email,note", ","), ("name;email;note", ";"), ("name\temail\tnote", "\t"), ("name|email|note", "|")],
)
def test_the_delimiter_is_sniffed_from_the_header(header: str, delimiter: str) -> None:
    note = "likes " + " and ".join(d for d in ",;|" if d != delimiter)  # the other delimiters are text here
    source, records = read(f"{header}\n{delimiter.join(['Anna', 'a@example.com', note])}\n".encode())
    assert source.delimiter == delimiter
    assert source.header == ("name", "email", "note")
    assert records[0].values == {"name": "Anna", "email": "a@example.com", "note": note}
    assert records[0].problems == ()


def test_a_sniffing_tie_is_a_comma_and_a_given_delimiter_wins() -> None:
    source, _ = read(b"name;a,b\n")  # two names either way
    assert source.delimiter == ","
    source, records = read(b"name,nick\nAnna,Anne\n", delimiter=";")
    assert source.header == ("name,nick",)
    assert records[0].values == {"name,nick": "Anna,Anne"}
    source, _ = read(b"a\tb\n", delimiter="tab")
    assert source.delimiter == "\t"
    assert refused(b"a,b\n", format="csv", delimiter="ab") == (
        "the delimiter must be one character, not a letter, digit or quote: got 'ab'"
    )


def test_a_record_written_with_another_delimiter_is_ragged_and_the_others_go_on() -> None:
    data = (
        b"name;email;city;zip;phone;goal;stage;note\n"
        b"Anna;a@x.org;Bonn;53111;;;lead;\n"
        b"Boris,b@x.org,Koeln\n"
        b"Cleo;c@x.org;;;;;;\n"
    )
    _, records = read(data)
    assert [(r.line, r.problems) for r in records] == [
        (2, ()),
        (3, ("has 1 field, the header has 8",)),
        (4, ()),
    ]
    assert records[1].raw == "Boris,b@x.org,Koeln"
    assert records[1].values == {"name": "Boris,b@x.org,Koeln"}  # partial: what there is
    _, records = read(b"a,b,c,d,e,f,g,h\n1,2,3\n1,2,3,4,5,6,7,8,9\n")
    assert [r.problems for r in records] == [("has 3 fields, the header has 8",), ("has 9 fields, the header has 8",)]


def test_empty_lines_and_lines_of_delimiters_are_no_records_but_are_counted() -> None:
    _, records = read(b"\n\nname,email\n\nAnna,a@x.org\n,\n   \r\n\nBoris,b@x.org\n\n")
    assert [(r.line, r.values["name"]) for r in records] == [(5, "Anna"), (9, "Boris")]


def test_a_bom_is_removed_and_header_names_are_stripped() -> None:
    source, records = read(b"\xef\xbb\xbf name , email\nAnna,a@x.org\n")
    assert source.header == ("name", "email")
    assert records[0].values == {"name": "Anna", "email": "a@x.org"}
    source, _ = read(b"\xef\xbb\xbfname,email\n", encoding="utf-8")
    assert source.header == ("name", "email")


def test_a_quoted_field_may_span_lines_the_record_starts_where_it_starts() -> None:
    data = b'name,note,city\nAnna,"first line\r\nsecond, line\r\n""third""",Bonn\r\nBoris,,Koeln\r\n'
    _, records = read(data)
    assert [r.line for r in records] == [2, 5]
    assert records[0].raw == 'Anna,"first line\r\nsecond, line\r\n""third""",Bonn'
    assert records[0].values == {"name": "Anna", "note": 'first line\r\nsecond, line\r\n"third"', "city": "Bonn"}
    assert records[0].problems == ()
    assert records[1].values == {"name": "Boris", "note": "", "city": "Koeln"}


def test_a_line_with_paired_quotes_may_still_go_on_at_the_next_line() -> None:
    # a quote inside an unquoted field is text; the quote opening the last field pairs with one a line later
    _, records = read(b'name,nick,note\nAnna,b"c,"multi\nline"\nBoris,,\n')
    assert [(r.line, r.raw, r.values, r.problems) for r in records] == [
        (2, 'Anna,b"c,"multi\nline"', {"name": "Anna", "nick": 'b"c', "note": "multi\nline"}, ()),
        (4, "Boris,,", {"name": "Boris", "nick": "", "note": ""}, ()),
    ]
    _, records = read(b'name,note\n"",""\n"Cleo","x"\n')  # quoted empties are an empty record
    assert [(r.line, r.values) for r in records] == [(3, {"name": "Cleo", "note": "x"})]


FIELD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
FIELD = FIELD | st.sampled_from(["", ",", '"', '""x"', "a\nb", "a\r\nb", "a\rb", " ", ";", "\t", "é"])


@given(
    rows=st.lists(st.lists(FIELD, min_size=3, max_size=3), max_size=12),
    quote_all=st.booleans(),
    terminator=st.sampled_from(["\r\n", "\n"]),
)
def test_any_csv_that_python_writes_reads_back_with_its_line_numbers(
    rows: list[list[str]], quote_all: bool, terminator: str
) -> None:
    if terminator == "\n":  # csv.writer then leaves a field with a lone "\r" unquoted: a line break to any reader
        rows = [[field.replace("\r", "") for field in row] for row in rows]
    out = io.StringIO(newline="")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator=terminator)
    writer.writerow(["a", "b", "c"])
    expected, line = [], 2
    for row in rows:
        start = out.tell()
        writer.writerow(row)
        written = out.getvalue()[start:]
        if any(field.strip() for field in row):  # a row of blanks is no record
            expected.append((line, written.removesuffix(terminator), dict(zip("abc", row, strict=True))))
        line += len(re.findall(r"\r\n|\r|\n", written))
    _, records = read(out.getvalue().encode(), delimiter=",")
    assert [(r.line, r.raw, r.values) for r in records] == expected
    assert all(r.problems == () for r in records)


@given(
    data=st.binary(max_size=300)
    | st.lists(st.sampled_from([b"a", b",", b";", b'"', b"\n", b"\r", b"\xe9", b"\x00", b"{", b"}"])).map(b"".join),
    format=st.sampled_from(["csv", "jsonl"]),
)
def test_any_bytes_give_records_or_one_validation_error(data: bytes, format: str) -> None:
    try:
        _, records = read(data, format=format)
    except ValidationError as error:
        assert list(error.errors) == ["source"]
        return
    lines = [r.line for r in records]
    assert lines == sorted(set(lines)) and all(line >= 1 for line in lines)
    for record in records:
        record.raw.encode("utf-8")  # a reject file can always be written: no undecodable byte is left raw
        assert all(isinstance(problem, str) and "\n" not in problem for problem in record.problems)


def test_a_record_that_is_not_utf8_is_a_problem_and_the_others_go_on() -> None:
    data = "name,city\nAnna,Köln\n".encode() + b"Ren\xe9,Paris\nZo\xeb,Li\xe8ge\nBoris,Bonn\n"
    _, records = read(data)
    assert [(r.line, r.problems) for r in records] == [
        (2, ()),
        (3, ("is not UTF-8 text (byte 0xe9 at column 4); give the file's encoding",)),
        (4, ("is not UTF-8 text (byte 0xeb at column 3); give the file's encoding",)),
        (5, ()),
    ]
    assert records[0].values == {"name": "Anna", "city": "Köln"}
    assert records[1].raw == "Ren\\xe9,Paris"  # the undecodable byte stays visible
    assert records[1].values == {"name": "Ren\ufffd", "city": "Paris"}


def test_an_undecodable_byte_on_a_later_line_of_a_record_says_which_line() -> None:
    _, records = read(b'name,note\nAnna,"ok\nbad \xff here"\n')
    assert records[0].problems == ("is not UTF-8 text (byte 0xff on line 3, column 5); give the file's encoding",)


def test_a_given_encoding_decodes_the_whole_file() -> None:
    data = "name,city\nRené,Liège\nZoë,Köln\n".encode("cp1252")
    source, records = read(data, encoding="cp1252")
    assert source.encoding == "cp1252"
    assert [r.values for r in records] == [{"name": "René", "city": "Liège"}, {"name": "Zoë", "city": "Köln"}]
    assert all(r.problems == () for r in records)
    _, records = read(b"name\nA\x81\n", encoding="cp1252")  # 0x81 is no character in cp1252
    assert records[0].problems == ("is not cp1252 text (byte 0x81 at column 2); check the file's encoding",)


def test_a_header_that_is_not_utf8_refuses_the_file_asking_for_the_encoding() -> None:
    data = "Prénom;Ville\nRené;Liège\n".encode("cp1252")
    assert refused(data, format="csv") == (
        "the header is not UTF-8 text (byte 0xe9 at column 3); give the file's encoding (for example encoding='cp1252')"
    )
    assert refused(data, format="csv", encoding="latin-9000") == "unknown encoding 'latin-9000'"


def test_utf16_with_a_bom_is_read_as_such() -> None:
    # what a spreadsheet's "Unicode text" export writes: UTF-16 with a BOM, tab separated
    data = "name\tcity\r\nRené\tLiège\r\n".encode("utf-16")
    source, records = read(data)
    assert (source.encoding, source.delimiter, source.header) == ("utf-16", "\t", ("name", "city"))
    assert records == [SourceLine(2, "René\tLiège", {"name": "René", "city": "Liège"}, ())]
    assert "UTF-16" in refused("name,city\n".encode("utf-16-le"), format="csv")  # no BOM: NULs in the header


def test_a_nul_byte_is_the_records_problem() -> None:
    _, records = read(b"name,email\nAn\x00na,a@x.org\nBoris,b@x.org\n")
    assert records[0].problems == ("contains a NUL byte",)
    assert records[0].raw == "An\\x00na,a@x.org"
    assert records[1].problems == ()


def test_a_bad_quote_is_the_records_problem_and_the_next_line_goes_on() -> None:
    _, records = read(b'name,email\n"Anna" Smith,a@x.org\nBoris,b@x.org\nCleo,"c@x.org\n')
    assert [(r.line, r.raw, r.problems) for r in records] == [
        (2, '"Anna" Smith,a@x.org', ("is not valid CSV: ',' expected after '\"'",)),
        (3, "Boris,b@x.org", ()),
        (4, 'Cleo,"c@x.org', ("is not valid CSV: a quoted field is never closed",)),
    ]


def test_an_unclosed_quote_cannot_swallow_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_RECORD_CHARS", 200)
    lines = [f"Member {i},m{i}@x.org" for i in range(40)]
    data = ("name,email\n" + '"Anna,a@x.org\n' + "\n".join(lines) + "\n").encode()
    _, records = read(data)
    assert records[0].line == 2
    assert records[0].problems == ("is longer than 200 characters (is a quote left open?)",)
    assert len(records[0].raw) <= 240
    assert records[-1] == SourceLine(42, "Member 39,m39@x.org", {"name": "Member 39", "email": "m39@x.org"}, ())
    _, records = read(b"name\n" + b"x" * 1000 + b"\nBoris\n")  # one endless physical line
    assert [(r.line, r.problems) for r in records] == [
        (2, ("is longer than 200 characters (is a quote left open?)",)),
        (3, ()),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"\n\r\n  \n", "the file is empty"),
        (b"name,,email\n", "column 2 of the header has no name"),
        (b"name, ,email\n", "column 2 of the header has no name"),
        (b"name,email,Name,email\n", "the header names 'email' twice (columns 2 and 4)"),
        (b'name,"email\n', "the header is not valid CSV: a quoted field is never closed"),
    ],
)
def test_a_header_that_cannot_be_read_refuses_the_file(data: bytes, reason: str) -> None:
    assert refused(data, format="csv") == reason


def test_whole_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"^cannot read people\.csv: source: the file is empty$"):
        open_source(io.BytesIO(b""), name="people.csv")
    assert refused(tmp_path / "missing.csv").startswith("cannot open the file: No such file")
    assert refused(b"a", name="people.xls") == (
        "cannot tell the format from the suffix '.xls' (save it as .xlsx or CSV):"
        " expected .csv, .txt, .tsv, .xlsx, .jsonl, .ndjson"
    )
    assert refused(b"a").startswith("cannot tell the format without a suffix")
    assert refused(b"a", format="parquet") == "unknown format 'parquet': expected one of csv, xlsx, jsonl"
    text = tmp_path / "t.csv"
    text.write_text("a\n1\n")
    with text.open() as opened:
        assert refused(opened) == "the file was opened as text; open it in binary mode ('rb')"  # type: ignore[arg-type]


def test_the_format_comes_from_the_name_given_or_the_files_suffix(tmp_path: Path) -> None:
    for suffix, expected in [
        (".csv", "csv"),
        (".TXT", "csv"),
        (".tsv", "csv"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
    ]:
        path = tmp_path / f"f{suffix}"
        path.write_bytes(b'{"a": 1}\n' if expected == "jsonl" else b"a\n1\n")
        with open_source(path) as source:
            assert source.format == expected
    with open_source(io.BytesIO(b"a\n1\n"), name="upload.csv") as source:
        assert (source.name, source.format) == ("upload.csv", "csv")


def test_a_path_is_closed_with_the_source_a_file_object_is_left_open(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"name\nAnna\nBoris\n")
    before = open_fds()
    with open_source(path) as source:
        assert open_fds() == before + 1
        assert next(iter(source)).values == {"name": "Anna"}  # left half-read
    assert open_fds() == before
    with pytest.raises(ValidationError):
        open_source(tmp_path / "m.csv", delimiter="long")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ValidationError):
        open_source(tmp_path / "empty.csv")  # refused after opening: closed all the same
    assert open_fds() == before
    with path.open("rb") as file:
        with open_source(file, format="csv", name="m.csv") as source:
            assert [r.values["name"] for r in source] == ["Anna", "Boris"]
        assert not file.closed


def test_a_large_csv_is_streamed_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as file:
        file.write("name,email\n")
        file.writelines(f"Customer number {i:07d} of the club,customer{i:07d}@example.com\n" for i in range(200_000))
    size = path.stat().st_size
    assert size > 10_000_000
    tracemalloc.start()
    try:
        with open_source(path) as source:
            count, last = 0, None
            for record in source:
                count += 1
                last = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last is not None and last.line == 200_001 and last.values["email"] == "customer0199999@example.com"
    assert peak < size / 50, f"peak {peak} bytes reading a {size}-byte file"


# --- JSON lines --------------------------------------------------------------------------------------------


def test_json_lines_records_and_a_header_that_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (
        b'\xef\xbb\xbf{"name": "Anna", "tags": ["vip"], "address": {"city": "Bonn"}}\n'
        b"\n"
        b'{"name": "Boris", "email": "b@x.org", "visits": 3, "paid": 12.5, "active": true, "phone": null}\r\n'
    )
    every_key = ("name", "tags", "address", "email", "visits", "paid", "active", "phone")
    with open_source(io.BytesIO(data), format="jsonl") as source:  # the first lines' keys, from the start
        assert source.header == every_key
    monkeypatch.setattr(sources, "JSONL_PEEK", 1)  # a key first seen further down the file
    with open_source(io.BytesIO(data), format="jsonl") as source:
        assert (source.format, source.encoding, source.delimiter) == ("jsonl", "utf-8", None)
        assert source.header == ("name", "tags", "address")
        records = list(source)
        assert list(source.header) == ["name", "tags", "address", "email", "visits", "paid", "active", "phone"]
    anna = {"name": "Anna", "tags": ["vip"], "address": {"city": "Bonn"}}
    assert records[0] == SourceLine(1, '{"name": "Anna", "tags": ["vip"], "address": {"city": "Bonn"}}', anna, ())
    assert records[1].line == 3
    assert records[1].values == {
        "name": "Boris",
        "email": "b@x.org",
        "visits": 3,
        "paid": 12.5,
        "active": True,
        "phone": None,
    }


def test_a_json_line_that_is_not_an_object_is_its_own_problem() -> None:
    data = (
        b'{"name": "Anna"}\n'
        b'{"name": "Boris" "email": "b@x.org"}\n'
        b"[1, 2]\n"
        b'"Cleo"\n'
        b'{"name": "Dora", "score": NaN}\n'
        b'{"name": "Ren\xe9"}\n'
        b'{"name": "Emil"}\n'
    )
    _, records = read(data, format="jsonl")
    assert [(r.line, r.values, r.problems) for r in records] == [
        (1, {"name": "Anna"}, ()),
        (2, {}, ("is not valid JSON: Expecting ',' delimiter at column 18",)),
        (3, {}, ("is not a JSON object but a list",)),
        (4, {}, ("is not a JSON object but a string",)),
        (5, {}, ("is not valid JSON: NaN is not a JSON number",)),
        (6, {"name": "Ren\ufffd"}, ("is not UTF-8 text (byte 0xe9 at column 14); give the file's encoding",)),
        (7, {"name": "Emil"}, ()),
    ]
    assert records[5].raw == '{"name": "Ren\\xe9"}'


def test_the_json_header_is_the_first_object_after_bad_lines_and_a_file_without_one_is_refused() -> None:
    source, records = read(b'oops\n{"b": 1}\n{"a": 2}\n', format="jsonl")
    assert source.header == ("b", "a")
    assert [r.line for r in records] == [1, 2, 3]
    assert refused(b"\n\n", format="jsonl") == "the file is empty"
    assert refused(b"[1]\n[2]\n", format="jsonl") == "the first 2 lines hold no JSON object: is it a JSON lines file?"


# --- XLSX --------------------------------------------------------------------------------------------------


def workbook(path: Path, rows: list[list[Any]], *, other: str | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Members"
    for row in rows:
        sheet.append(row)
    if other is not None:
        book.create_sheet(other).append(["code", "label"])
        book[other].append(["a", "Alpha"])
    book.save(path)
    return path


def test_xlsx_rows_with_typed_values(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "members.xlsx",
        [
            [],
            [" name ", "joined", "visits", "phone", "vip"],
            ["Anna", dt.date(2024, 3, 1), 12, 4915112345678, True],
            [],
            ["Boris", dt.datetime(2024, 3, 2, 18, 30), 2.5, None, None, None],
            ["Cleo", None, None, None, None, None, "   "],
        ],
    )
    with open_source(path) as source:
        assert (source.name, source.format, source.encoding, source.delimiter) == ("members.xlsx", "xlsx", None, None)
        assert source.header == ("name", "joined", "visits", "phone", "vip")
        records = list(source)
    anna = {"name": "Anna", "joined": dt.datetime(2024, 3, 1), "visits": 12, "phone": 4915112345678, "vip": True}
    boris = {"name": "Boris", "joined": dt.datetime(2024, 3, 2, 18, 30), "visits": 2.5, "phone": None, "vip": None}
    assert records == [
        SourceLine(3, "Anna,2024-03-01,12,4915112345678,true", anna, ()),
        SourceLine(5, "Boris,2024-03-02 18:30:00,2.5", boris, ()),
        SourceLine(6, "Cleo", {"name": "Cleo", "joined": None, "visits": None, "phone": None, "vip": None}, ()),
    ]


def test_xlsx_a_row_with_more_cells_than_the_header_is_ragged(tmp_path: Path) -> None:
    path = workbook(tmp_path / "m.xlsx", [["name", "email"], ["Anna", "a@x.org", None, "stray, note"], ["Boris"]])
    with open_source(path) as source:
        records = list(source)
    assert [(r.line, r.raw, r.problems) for r in records] == [
        (2, 'Anna,a@x.org,,"stray, note"', ("has 4 fields, the header has 2",)),
        (3, "Boris", ()),
    ]
    assert records[0].values == {"name": "Anna", "email": "a@x.org"}


def test_xlsx_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path / "m.xlsx", [["name"], ["Anna"]], other="Codes")
    with open_source(path, sheet="Codes") as source:
        assert source.header == ("code", "label")
        assert [r.values for r in source] == [{"code": "a", "label": "Alpha"}]
    assert refused(path, sheet="Leads") == "the workbook has no sheet 'Leads' (its sheets: 'Members', 'Codes')"


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([], "the sheet 'Members' is empty"),
        ([["name", None, "email"]], "column B of the header has no name"),
        ([["email", "name", "email"]], "the header names 'email' twice (columns A and C)"),
    ],
)
def test_xlsx_header_problems_refuse_the_file(tmp_path: Path, rows: list[list[Any]], reason: str) -> None:
    assert refused(workbook(tmp_path / "m.xlsx", rows)) == reason


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.xlsx"
    path.write_bytes(b"name,email\nAnna,a@x.org\n")
    assert refused(path) == "the file is not a valid XLSX workbook (BadZipFile: File is not a zip file)"


def test_an_xlsx_file_object_is_left_open(tmp_path: Path) -> None:
    path = workbook(tmp_path / "m.xlsx", [["name"], ["Anna"]])
    before = open_fds()
    with open_source(path) as source:
        assert [r.values for r in source] == [{"name": "Anna"}]
    assert open_fds() == before
    data = io.BytesIO(path.read_bytes())
    with open_source(data, format="xlsx") as source:
        assert [r.line for r in source] == [2]
    assert not data.closed


# --- the page ----------------------------------------------------------------------------------------------

PAGE = Path(__file__).resolve().parent.parent / "docs" / "imports.md"
BLOCK = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize(
    "sections",
    [
        ("## Reading files",),
        ("## Parsing values",),
        ("## Importing customers", "## Preview, reject file, record and revert"),
        ("## Integrations are importers",),
    ],
)
def test_the_pages_examples_print_what_the_page_says(sections: tuple[str, ...]) -> None:
    text = PAGE.read_text(encoding="utf-8")
    namespace: dict[str, object] = {}  # a section's examples go on from one another, as a reader's session does
    for section in sections:
        start = text.index(f"\n{section}\n")
        end = text.find("\n## ", start + 1)
        blocks = BLOCK.findall(text[start : end if end != -1 else len(text)])
        examples = [(code, blocks[i + 1][1]) for i, (lang, code) in enumerate(blocks) if lang == "python"]
        assert examples and all(blocks[i + 1][0] == "text" for i, (lang, _) in enumerate(blocks) if lang == "python")
        for code, printed in examples:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, str(PAGE), "exec"), namespace)
            assert out.getvalue() == printed
