"""``crm.exports``: customers, activities and tasks written to CSV, XLSX or JSON lines, a page at a time.

An export reads through the list API (``crm.customers.search`` and its kin) a page of 1,000 records at a
time, in id order with the keyset cursor, and writes each page before it reads the next: memory stays that
of one page whatever the table holds. ``where`` is the list API's filter, so "customers in stage X whose
plugin field Y is Z" exports with the very ``where`` that lists them.

The columns are the read model's fields, in the order of its output schema (``crm.schemas``): for customers
every core field, then the plugins' fields, then the run-time fields, each in declaration order; for
activities and tasks the keys of their records. The schema's field types decide how a value is written:

* CSV (UTF-8, a header row): the read model's values as text, ``None`` as an empty cell, booleans as
  ``true``/``false``, activity ``data`` as JSON; text goes through :func:`crmkit.cells.csv_text` (no
  formulas, phone numbers as they are);
* XLSX: typed cells (text as text, never a formula; integers and decimals as numbers; dates as dates;
  datetimes as naive UTC datetimes under a header that says ``(UTC)``; booleans as booleans), the header
  row frozen;
* JSON lines: one object per record with the read model's values as they are.

Without ``tx`` each page is read on its own: a record added while the export runs may be in it or not,
none is written twice. With ``tx`` every page is read in that unit of work. A file given by its path is
written beside it under a temporary name and renamed when complete: a failed export leaves no half file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import errno
import io
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import attrs
from marshmallow import Schema
from marshmallow import fields as mf

from crmkit.access import Access
from crmkit.cells import csv_text, phone_column
from crmkit.errors import ValidationError
from crmkit.listing import Page, Searchable
from crmkit.schemas import Schemas
from crmkit.unit import Transaction

FORMATS = ("csv", "xlsx", "jsonl")
#: The file name endings a format is told from, when not given.
SUFFIXES: Mapping[str, str] = {".csv": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: Records read (and written) at a time: the list API's largest page.
PAGE_SIZE = 1000
_MESSAGE = "invalid export"
#: What a path or a binary file may be.
Target = str | os.PathLike[str] | IO[bytes]
#: Told how many more records were written, after each page.
Progress = Callable[[int], object]


@attrs.frozen
class ExportReport:
    """What an export wrote: how many records (``rows``, the header not counted), the format and the
    columns, in order."""

    kind: str
    rows: int
    format: str
    columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rows": self.rows, "format": self.format, "columns": list(self.columns)}


@attrs.frozen
class Column:
    """One exported column: a field of the read model, its type, and whether it holds phone numbers."""

    name: str
    #: ``text``, ``integer``, ``decimal``, ``boolean``, ``date``, ``datetime`` or ``json``
    type: str
    phone: bool = False


#: The column type of each output field class, most specific first (a marshmallow ``Date`` is a ``DateTime``).
_TYPES: tuple[tuple[type[mf.Field[Any]], str], ...] = (
    (mf.Boolean, "boolean"),
    (mf.Integer, "integer"),
    (mf.Decimal, "decimal"),
    (mf.Date, "date"),
    (mf.DateTime, "datetime"),
    (mf.Dict, "json"),
)


def columns_of(schema: Schema) -> list[Column]:
    """Every field of an output schema as a column, in the schema's order; those named for phone numbers
    (:func:`crmkit.cells.phone_column`) keep a number as typed in CSV."""
    return [
        Column(name, next((kind for cls, kind in _TYPES if isinstance(field, cls)), "text"), phone_column(name))
        for name, field in schema.fields.items()
    ]


class Exports:
    """``crm.exports``: streamed exports of customers, activities and tasks (see the module)."""

    def __init__(
        self, *, customers: Searchable, activities: Searchable, tasks: Searchable, schemas: Schemas, access: Access
    ) -> None:
        self._access = access
        self._customers = customers
        self._activities = activities
        self._tasks = tasks
        self._schemas = schemas

    def customers(
        self,
        target: Target,
        *,
        format: str | None = None,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        tx: Transaction | None = None,
        progress: Progress | None = None,
    ) -> ExportReport:
        """Write the customers ``where`` selects (all without it) to ``target``, a path or a binary file,
        in ``format`` (``csv``, ``xlsx`` or ``jsonl``; by default told from the file name's ending).
        ``columns`` picks and orders the fields (default: every field); ``progress`` is called with the
        number of records written after each page. Bad arguments are a ``ValidationError`` raised before
        anything is written."""
        self._access.require("customers:export", tx)
        table = columns_of(self._schemas.customer_out)
        return _export("customers", self._customers, table, target, format, where, columns, tx, progress)

    def activities(
        self,
        target: Target,
        *,
        format: str | None = None,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        tx: Transaction | None = None,
        progress: Progress | None = None,
    ) -> ExportReport:
        """Write the activities ``where`` selects to ``target``; see :meth:`customers`."""
        self._access.require("customers:export", tx)
        table = columns_of(self._schemas.activity_out)
        return _export("activities", self._activities, table, target, format, where, columns, tx, progress)

    def tasks(
        self,
        target: Target,
        *,
        format: str | None = None,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        tx: Transaction | None = None,
        progress: Progress | None = None,
    ) -> ExportReport:
        """Write the tasks ``where`` selects to ``target``; see :meth:`customers`."""
        self._access.require("customers:export", tx)
        table = columns_of(self._schemas.task_out)
        return _export("tasks", self._tasks, table, target, format, where, columns, tx, progress)


def _export(
    kind: str,
    source: Searchable,
    table: list[Column],
    target: Target,
    format: str | None,
    where: Mapping[str, Any] | None,
    columns: Sequence[str] | None,
    tx: Transaction | None,
    progress: Progress | None,
) -> ExportReport:
    errors: dict[str, list[str]] = {}
    fmt = chosen = None
    try:
        fmt = _format(format, target)
    except ValidationError as exc:
        errors.update(exc.errors)
    try:
        chosen = _choose(table, columns)
    except ValidationError as exc:
        errors.update(exc.errors)
    if not isinstance(target, str | os.PathLike) and isinstance(target, io.TextIOBase):
        errors["target"] = ["a file opened as text: open it in binary mode ('wb')"]
    if errors:
        raise ValidationError(errors, _MESSAGE)
    assert fmt is not None and chosen is not None
    # the first page is read before the file is opened: a bad filter leaves no file behind
    first = source.search(where, limit=PAGE_SIZE, tx=tx)
    pages = _pages(source, where, tx, first)
    writer = _WRITERS[fmt]
    with _opened(target) as out:
        rows = writer(out, kind, chosen, _counted(pages, progress))
    return ExportReport(kind, rows, fmt, tuple(c.name for c in chosen))


def _format(format: str | None, target: Target) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValidationError({"format": [f"unknown format {format!r}; choose one of {', '.join(FORMATS)}"]})
        return format
    name = os.fspath(target) if isinstance(target, str | os.PathLike) else getattr(target, "name", None)
    if isinstance(name, str):
        found = SUFFIXES.get(Path(name).suffix.lower())
        if found is not None:
            return found
        told = f"from the file name {Path(name).name!r}"
    else:
        told = "from a file object without a name"
    *others, last = SUFFIXES
    endings = f"{', '.join(others)} or {last}"
    raise ValidationError({"format": [f"cannot tell the format {told}: name it, or end the name in {endings}"]})


def _choose(table: list[Column], columns: Sequence[str] | None) -> list[Column]:
    if columns is None:
        return table
    by_name = {c.name: c for c in table}
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise ValidationError({"columns": ["expected a list of field names"]})
    if not columns:
        raise ValidationError({"columns": ["expected at least one field"]})
    problems = []
    unknown = [c for c in columns if c not in by_name]
    if unknown:
        names = ", ".join(repr(c) if isinstance(c, str) else repr(str(c)) for c in unknown)
        problems.append(f"unknown field {names}; fields: {', '.join(by_name)}")
    twice = sorted({c for c in columns if isinstance(c, str) and columns.count(c) > 1})
    if twice:
        problems.append(f"named more than once: {', '.join(twice)}")
    if problems:
        raise ValidationError({"columns": problems})
    return [by_name[c] for c in columns]


def _pages(
    source: Searchable, where: Mapping[str, Any] | None, tx: Transaction | None, page: Page
) -> Iterator[list[dict[str, Any]]]:
    while True:
        yield page.items
        if page.next_cursor is None:
            return
        page = source.search(where, after=page.next_cursor, limit=PAGE_SIZE, tx=tx)


def _counted(pages: Iterator[list[dict[str, Any]]], progress: Progress | None) -> Iterator[list[dict[str, Any]]]:
    """The pages, telling ``progress`` about each once the writer asks for the next (it has written it)."""
    for page in pages:
        yield page
        if progress is not None:
            progress(len(page))


@contextmanager
def _opened(target: Target) -> Iterator[IO[bytes]]:
    """A binary file to write to: ``target`` itself, or a temporary file beside the path, renamed to it
    once everything is written (and removed if anything fails)."""
    if not isinstance(target, str | os.PathLike):
        yield target
        return
    path = Path(target)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    # opened like any new file (the umask decides its mode), under a name no other export takes
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        out = open(temporary, "xb")  # noqa: SIM115 - closed below, before the rename
    except OSError as exc:  # named after the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# -- CSV -----------------------------------------------------------------------------------------------


def _csv_cell(column: Column) -> Callable[[Any], Any]:
    phone = column.phone
    if column.type == "text":
        return lambda v: "" if v is None else csv_text(v, phone=phone)
    if column.type == "boolean":
        return lambda v: "" if v is None else ("true" if v else "false")
    if column.type == "json":
        return lambda v: "" if v is None else csv_text(json.dumps(v, ensure_ascii=False))
    # numbers, and dates and datetimes as ISO text: a spreadsheet reads them as they are
    return lambda v: "" if v is None else v


def _write_csv(out: IO[bytes], kind: str, columns: list[Column], pages: Iterable[list[dict[str, Any]]]) -> int:
    text = codecs.getwriter("utf-8")(out)
    writer = csv.writer(text)
    writer.writerow([c.name for c in columns])
    cells = [(c.name, _csv_cell(c)) for c in columns]
    rows = 0
    for page in pages:
        writer.writerows([[cell(record.get(name)) for name, cell in cells] for record in page])
        rows += len(page)
    return rows


# -- JSON lines ----------------------------------------------------------------------------------------


def _write_jsonl(out: IO[bytes], kind: str, columns: list[Column], pages: Iterable[list[dict[str, Any]]]) -> int:
    names = [c.name for c in columns]
    rows = 0
    for page in pages:
        lines = [json.dumps({n: record.get(n) for n in names}, ensure_ascii=False) + "\n" for record in page]
        out.write("".join(lines).encode("utf-8"))
        rows += len(page)
    return rows


# -- XLSX ----------------------------------------------------------------------------------------------

#: Characters XML 1.0 cannot hold, which an XLSX file is made of: written as U+FFFD.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xlsx_cell(column: Column, sheet: Any) -> Callable[[Any], Any]:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES

    def text(value: str) -> Any:
        value = _NOT_XML.sub("\ufffd", value)
        # openpyxl would store these as a formula (``=...``) or an error value (``#N/A``)
        if value.startswith("=") or value in ERROR_CODES:
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"  # text, as it was stored: a string cell is never evaluated
            return cell
        return value

    def decimal(value: str) -> Any:
        # a spreadsheet's numbers are doubles: 14 significant digits (a crmkit decimal) read back unchanged
        cell = WriteOnlyCell(sheet, float(Decimal(value)))
        cell.number_format = "0.00"
        return cell

    def moment(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC).replace(tzinfo=None)

    convert: Callable[[Any], Any] = {
        "text": text,
        "json": lambda v: text(json.dumps(v, ensure_ascii=False)),
        "decimal": decimal,
        "date": dt.date.fromisoformat,
        "datetime": moment,
    }.get(column.type, lambda v: v)  # integers and booleans are what the cell holds
    return lambda v: None if v is None else convert(v)


def _write_xlsx(out: IO[bytes], kind: str, columns: list[Column], pages: Iterable[list[dict[str, Any]]]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    # write-only: rows go to a temporary file as they come, not into a workbook held in memory
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=kind)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for column in columns:
        cell = WriteOnlyCell(sheet, f"{column.name} (UTC)" if column.type == "datetime" else column.name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    cells = [(c.name, _xlsx_cell(c, sheet)) for c in columns]
    rows = 0
    for page in pages:
        for record in page:
            sheet.append([cell(record.get(name)) for name, cell in cells])
        rows += len(page)
    book.save(out)
    return rows


_WRITERS: Mapping[str, Callable[[IO[bytes], str, list[Column], Iterable[list[dict[str, Any]]]], int]] = {
    "csv": _write_csv,
    "xlsx": _write_xlsx,
    "jsonl": _write_jsonl,
}
