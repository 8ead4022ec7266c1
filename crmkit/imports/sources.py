"""One streamed reader for the files a user imports: CSV, XLSX and JSON lines.

:func:`open_source` reads the header (and fails at once, with one sentence, when the file as a whole cannot be
read); iterating the :class:`Source` then gives one :class:`SourceLine` per record, in constant memory at any
file size. A record that cannot be read (bytes that are not text in the file's encoding, a NUL byte, the
wrong number of fields, invalid JSON) is not an exception: its ``problems`` say why, and the records after it
go on, so an import can put every bad record in its reject file with its line number and reason.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import attrs

from crmkit.errors import ValidationError

FORMATS = ("csv", "xlsx", "jsonl")
SUFFIXES = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: The delimiters a CSV header is sniffed for, the default first (it wins a tie).
DELIMITERS = (",", ";", "\t", "|")
#: The longest record (all its physical lines) read as one; a longer one is a problem, not a memory blow-up
#: (an unclosed quote would otherwise swallow the rest of the file).
MAX_RECORD_CHARS = 1 << 20
#: How many lines of a JSON lines file are read ahead (at most a megabyte of them, once an object is found):
#: their objects' keys are the header the file starts with.
JSONL_PEEK = 1000

# surrogateescape turns each byte the codec cannot decode into one of these; a codec never yields them itself
_ESCAPED = re.compile("[\udc80-\udcff]")
# UTF-32 first: its little-endian BOM starts with UTF-16's
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32")]
_BOMS += [(codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


@attrs.frozen
class SourceLine:
    """One record of a file."""

    #: 1-based line where the record starts (CSV and JSON lines: the physical line; XLSX: the row number).
    line: int
    #: The record's original text: CSV the physical line(s) as read, without the final newline; JSON lines the
    #: line; XLSX the row's cells written as one CSV line. Bytes that are no text (not decodable, NUL) are
    #: shown as ``\\xNN``.
    raw: str
    #: Header name -> value. CSV: ``str`` (``''`` for empty); JSON lines: the JSON values; XLSX: the cell
    #: values as openpyxl gives them (``str``, ``int``, ``float``, ``datetime``, ``bool``, ``None``).
    values: dict[str, Any]
    #: Why the record cannot be read at all (then ``values`` may be partial); empty when it is fine.
    problems: tuple[str, ...] = ()


class Source:
    """An open file to import: a context manager and an iterable of :class:`SourceLine`, read once, streamed.

    Made by :func:`open_source`. Closing it closes the file when it was opened from a path, never a file
    object the caller passed.
    """

    def __init__(
        self,
        name: str,
        format: str,
        reader: _Reader,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
    ) -> None:
        #: The file's name (or the name given to :func:`open_source`).
        self.name = name
        #: ``"csv"``, ``"xlsx"`` or ``"jsonl"``.
        self.format = format
        #: The text encoding used (CSV and JSON lines).
        self.encoding = encoding
        #: The delimiter used (CSV).
        self.delimiter = delimiter
        self._reader = reader
        self._records: Iterator[SourceLine] | None = None

    @property
    def header(self) -> tuple[str, ...]:
        """The column names as in the file (stripped, a BOM removed). JSON lines: the keys of the objects
        of the first :data:`JSONL_PEEK` lines, then every new key in the order the records reveal them."""
        return self._reader.header

    def __iter__(self) -> Iterator[SourceLine]:
        if self._records is None:
            self._records = self._reader.records()
        return self._records

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Source {self.name!r} {self.format} {len(self.header)} columns>"


class _Reader:
    """What a format gives :class:`Source`: the header, the records, and how to let the file go."""

    def __init__(self, closers: list[Callable[[], object]]) -> None:
        self._closers = closers
        self._header: tuple[str, ...] = ()

    @property
    def header(self) -> tuple[str, ...]:
        return self._header

    def records(self) -> Iterator[SourceLine]:  # pragma: no cover - every format overrides it
        raise NotImplementedError

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()


def open_source(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    name: str | None = None,
) -> Source:
    """Open a file to import and read its header.

    :param source: a path, or a file object opened in binary mode (left open when the source is closed).
    :param format: ``"csv"``, ``"xlsx"`` or ``"jsonl"``; by default from the suffix of ``name`` or the file's
        (``.csv``/``.txt``/``.tsv``, ``.xlsx``, ``.jsonl``/``.ndjson``).
    :param encoding: any Python codec name for CSV and JSON lines; by default UTF-8 (a BOM is removed; a
        UTF-16 or UTF-32 BOM is read as such).
    :param delimiter: CSV only; by default the one of ``, ; tab |`` that splits the header into the most
        names (``,`` on a tie).
    :param sheet: XLSX only; the first sheet by default.
    :param name: the name to report, e.g. the original name of an upload.
    :raises ValidationError: ``{"source": [reason]}`` when the file as a whole cannot be read.
    """
    path = Path(os.fspath(source)) if isinstance(source, str | os.PathLike) else None
    own_name = path.name if path is not None else Path(str(getattr(source, "name", "") or "")).name
    label = name or own_name or "input"
    kind = _format(format, [name or "", own_name], label)
    if encoding is not None and kind != "xlsx":
        encoding = _codec(encoding, label)
    delimiter = _delimiter(delimiter, label) if delimiter is not None else None
    closers: list[Callable[[], object]] = []
    if path is not None:
        try:
            binary: IO[bytes] = path.open("rb")
        except OSError as error:
            raise _fail(label, f"cannot open the file: {error.strerror or error}") from None
        closers.append(binary.close)
    else:
        binary = source  # type: ignore[assignment]  # not a path: a file object
        if not isinstance(binary.read(0), bytes):
            raise _fail(label, "the file was opened as text; open it in binary mode ('rb')")
    try:
        if kind == "xlsx":
            return Source(label, kind, _Workbook(binary, sheet, label, closers))
        stream, used = _text(binary, encoding, newline="" if kind == "csv" else "\n")
        closers.append(stream.close)  # closes the wrappers only: the file itself is closed when it is ours
        if kind == "jsonl":
            return Source(label, kind, _JsonLines(stream, label, encoding, closers), encoding=used)
        reader = _Csv(stream, label, encoding, delimiter, closers)
        return Source(label, kind, reader, encoding=used, delimiter=reader.delimiter)
    except BaseException:
        _Reader(closers).close()
        raise


def _fail(label: str, reason: str) -> ValidationError:
    return ValidationError({"source": [reason]}, f"cannot read {label}")


def _format(given: str | None, names: list[str], label: str) -> str:
    if given is not None:
        if given.lower() not in FORMATS:
            raise _fail(label, f"unknown format {given!r}: expected one of {', '.join(FORMATS)}")
        return given.lower()
    suffixes = [Path(n).suffix.lower() for n in names if Path(n).suffix]
    for suffix in suffixes:
        if suffix in SUFFIXES:
            return SUFFIXES[suffix]
    known = ", ".join(SUFFIXES)
    if suffixes:
        hint = " (save it as .xlsx or CSV)" if suffixes[0] in (".xls", ".ods", ".numbers") else ""
        raise _fail(label, f"cannot tell the format from the suffix {suffixes[0]!r}{hint}: expected {known}")
    raise _fail(label, f"cannot tell the format without a suffix ({known}): pass format=")


def _codec(encoding: str, label: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise _fail(label, f"unknown encoding {encoding!r}") from None


def _delimiter(delimiter: str, label: str) -> str:
    delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)
    if len(delimiter) != 1 or delimiter in '"\r\n' or delimiter.isalnum():
        raise _fail(label, f"the delimiter must be one character, not a letter, digit or quote: got {delimiter!r}")
    return delimiter


def _text(binary: IO[bytes], encoding: str | None, newline: str) -> tuple[io.TextIOWrapper, str]:
    """A text stream over ``binary`` that turns undecodable bytes into lone surrogates instead of failing,
    so each record can be told apart; and the name of the encoding read."""
    buffered = io.BufferedReader(_Unowned(binary))  # the wrapper never closes the caller's file
    used = encoding
    if used is None:
        start = buffered.peek(4)[:4]
        used = next((codec for bom, codec in _BOMS if start.startswith(bom)), "utf-8")
    codec = "utf-8-sig" if used == "utf-8" else used  # a UTF-8 BOM is not part of the first column's name
    return io.TextIOWrapper(buffered, encoding=codec, errors="surrogateescape", newline=newline), used


class _Unowned(io.RawIOBase):
    """Reads a binary file through its ``read`` alone, and leaves it open when closed."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _TooLong(Exception):
    """A record longer than :data:`MAX_RECORD_CHARS`."""


class _Lines:
    """The physical lines of a text stream, counted, each record's kept: what csv reads and ``raw`` shows."""

    def __init__(self, stream: io.TextIOWrapper, label: str, encoding: str | None) -> None:
        self._readline = stream.readline
        self._label = label
        self._encoding = encoding
        self.ahead: deque[str] = deque()
        self.taken: list[str] = []
        self.size = 0
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.ahead.popleft() if self.ahead else self.read()
        if not line:
            raise StopIteration
        self.number += 1
        self.taken.append(line)
        self.size += len(line)
        if self.size > MAX_RECORD_CHARS:
            if not line.endswith(("\n", "\r")):  # skip the rest of an endless physical line
                while (more := self.read()) and not more.endswith(("\n", "\r")):
                    pass
            raise _TooLong
        return line

    def read(self) -> str:
        try:
            return self._readline(MAX_RECORD_CHARS + 1)
        except UnicodeDecodeError as error:  # codecs such as UTF-16 cannot escape every bad byte
            raise _fail(self._label, f"the file is not {self._encoding or 'UTF-8'} text: {error.reason}") from None

    def take(self) -> tuple[int, list[str]]:
        """The first line number and the lines of the record just read; the next record starts afresh."""
        taken, self.taken, self.size = self.taken, [], 0
        return self.number - len(taken) + 1, taken


def _newline_stripped(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def _not_text(lines: list[str], first: int, encoding: str | None) -> str | None:
    """Why a record is not text in ``encoding``: the first undecodable byte and where, or ``None``."""
    for offset, line in enumerate(lines):
        if line.isascii():
            continue
        found = _ESCAPED.search(line)
        if found is not None:
            byte = ord(found.group()) - 0xDC00
            column = found.start() + 1
            where = f"at column {column}" if offset == 0 else f"on line {first + offset}, column {column}"
            hint = "give the file's encoding" if encoding is None else "check the file's encoding"
            return f"is not {encoding or 'UTF-8'} text (byte 0x{byte:02x} {where}); {hint}"
    return None


def _shown(text: str) -> str:
    """``text`` with undecodable bytes and NUL written as ``\\xNN``."""
    text = _ESCAPED.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
    return text.replace("\x00", "\\x00")


def _readable(value: str) -> str:
    return _ESCAPED.sub("\ufffd", value)


class _Csv(_Reader):
    def __init__(
        self,
        stream: io.TextIOWrapper,
        label: str,
        encoding: str | None,
        delimiter: str | None,
        closers: list[Callable[[], object]],
    ) -> None:
        super().__init__(closers)
        self._label = label
        self._encoding = encoding
        self._lines = _Lines(stream, label, encoding)
        while (line := self._lines.read()) and not line.strip():
            self._lines.number += 1  # blank lines before the header are counted, not kept
        if not line:
            raise _fail(label, "the file is empty")
        self._lines.ahead.append(line)
        self.delimiter = delimiter or _sniff(line)
        self._reader = self._new_reader()
        self._header = self._read_header()
        # a second reader, fed one line at a time: a quoted record on one line needs none of _Lines' bookkeeping
        self._slot: list[str] = []
        self._single = csv.reader(iter(self._slot.pop, None), delimiter=self.delimiter, strict=True)

    def _new_reader(self) -> Iterator[list[str]]:
        # strict: a stray or unclosed quote is that record's problem, not a silent merge of the lines after it
        return csv.reader(self._lines, delimiter=self.delimiter, strict=True)

    def _read_header(self) -> tuple[str, ...]:
        label = self._label
        try:
            fields: list[str] = []
            while not any(f.strip() for f in fields):
                fields = next(self._reader)
        except StopIteration:
            raise _fail(label, "the file is empty") from None
        except csv.Error as error:
            raise _fail(label, f"the header is not valid CSV: {_csv_reason(error)}") from None
        except _TooLong:
            raise _fail(label, f"the header is longer than {MAX_RECORD_CHARS} characters") from None
        first, lines = self._lines.take()
        problem = _not_text(lines, first, self._encoding)
        if problem is not None:
            hint = "" if self._encoding is not None else " (for example encoding='cp1252')"
            raise _fail(label, f"the header {problem}{hint}")
        if any("\x00" in line for line in lines):
            raise _fail(label, "the header contains a NUL byte; is the file UTF-16? give the file's encoding")
        return _header([f.strip() for f in fields], label, str)

    def records(self) -> Iterator[SourceLine]:
        header, width, delimiter = self.header, len(self.header), self.delimiter
        lines, ahead, read = self._lines, self._lines.ahead, self._lines.read
        openings = {"", delimiter, '"'}
        while True:
            line = ahead.popleft() if ahead else read()
            if not line:
                return
            quotes = line.count('"') if len(line) <= MAX_RECORD_CHARS else 1
            fields = None
            if not quotes:  # most records: a line without quotes is split exactly as csv would split it
                raw = line.rstrip("\r\n")
                fields = raw.split(delimiter)
            elif quotes % 2 == 0:  # most likely a record on one line: parsed alone, with no bookkeeping
                raw = line.rstrip("\r\n")
                fields = self._one_line(raw)
            if fields is not None:
                lines.number += 1
                first = lines.number
                opening = raw[:1]  # a record that opens with a letter or digit is not blank: no need to look
                if (opening in openings or opening.isspace()) and _blank(fields):
                    continue  # an empty line, or delimiters only: no record
                if raw.isascii() and "\x00" not in raw and len(fields) == width:
                    yield SourceLine(first, raw, dict(zip(header, fields, strict=True)))
                    continue
                taken = [line]
            else:
                ahead.appendleft(line)
                try:
                    fields = next(self._reader)
                except (csv.Error, _TooLong) as error:
                    first, taken = lines.take()
                    reason = (
                        f"is longer than {MAX_RECORD_CHARS} characters (is a quote left open?)"
                        if isinstance(error, _TooLong)
                        else f"is not valid CSV: {_csv_reason(error)}"
                    )
                    yield SourceLine(first, _shown(_newline_stripped("".join(taken))), {}, (reason,))
                    self._reader = self._new_reader()  # go on at the next line
                    continue
                first, taken = lines.take()
                if _blank(fields):
                    continue
                raw = _newline_stripped("".join(taken))
            yield self._record(first, raw, taken, fields)

    def _one_line(self, raw: str) -> list[str] | None:
        """The fields of a line read as a whole record, or ``None`` when csv finds it is not one."""
        self._slot.append(raw)
        try:
            return next(self._single)
        except (csv.Error, IndexError):  # a bad quote, or a record going on at the next line (csv asked for
            self._slot.clear()  # it and found none): read it again the careful way
            return None

    def _record(self, first: int, raw: str, taken: list[str], fields: list[str]) -> SourceLine:
        problems = []
        if not raw.isascii() and (problem := _not_text(taken, first, self._encoding)) is not None:
            problems.append(problem)
            fields = [_readable(f) for f in fields]
        if "\x00" in raw:
            problems.append("contains a NUL byte")
        if len(fields) != len(self.header):
            problems.append(_ragged(len(fields), len(self.header)))
        return SourceLine(
            first, _shown(raw) if problems else raw, dict(zip(self.header, fields, strict=False)), tuple(problems)
        )


def _blank(fields: list[str]) -> bool:
    return not any(field.strip() for field in fields)


def _csv_reason(error: BaseException) -> str:
    reason = str(error)
    if reason == "unexpected end of data":
        return "a quoted field is never closed"
    if reason.startswith("field larger than field limit"):
        return f"a field is longer than {csv.field_size_limit()} characters"
    return reason


def _sniff(line: str) -> str:
    def names(delimiter: str) -> int:
        try:
            return sum(1 for name in next(csv.reader([line], delimiter=delimiter)) if name.strip())
        except csv.Error:
            return 0

    return max(DELIMITERS, key=names)  # max keeps the first of equals: ',' wins a tie


def _header(names: list[str], label: str, column: Callable[[int], str]) -> tuple[str, ...]:
    if names:
        names[0] = names[0].removeprefix("\ufeff").strip()
    seen: dict[str, int] = {}
    for index, name in enumerate(names, start=1):
        if not name:
            raise _fail(label, f"column {column(index)} of the header has no name")
        if name in seen:
            raise _fail(label, f"the header names {name!r} twice (columns {column(seen[name])} and {column(index)})")
        seen[name] = index
    return tuple(names)


class _JsonLines(_Reader):
    def __init__(
        self, stream: io.TextIOWrapper, label: str, encoding: str | None, closers: list[Callable[[], object]]
    ) -> None:
        super().__init__(closers)
        self._label = label
        self._encoding = encoding
        self._lines = _Lines(stream, label, encoding)
        self._keys: dict[str, None] = {}
        self._stream = self._read()
        self._ahead: deque[SourceLine] = deque()
        held = 0
        for record in self._stream:  # the keys of the first objects are the header from the start
            self._ahead.append(record)
            held += len(record.raw)
            if len(self._ahead) >= JSONL_PEEK or (self._keys and held >= MAX_RECORD_CHARS):
                break
        if not self._ahead:
            raise _fail(label, "the file is empty")
        if not self._keys:
            raise _fail(label, f"the first {len(self._ahead)} lines hold no JSON object: is it a JSON lines file?")

    @property
    def header(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def records(self) -> Iterator[SourceLine]:
        while self._ahead:
            yield self._ahead.popleft()
        yield from self._stream

    def _read(self) -> Iterator[SourceLine]:
        lines = self._lines
        while True:
            try:
                next(lines)
            except StopIteration:
                return
            except _TooLong:
                number, taken = lines.take()
                raw = _shown(_newline_stripped("".join(taken)))
                yield SourceLine(number, raw, {}, (f"is longer than {MAX_RECORD_CHARS} characters",))
                continue
            number, (line,) = lines.take()
            if not line.strip():
                continue
            raw = _newline_stripped(line)
            problems = []
            if not raw.isascii() and (problem := _not_text([raw], number, self._encoding)) is not None:
                problems.append(problem)
            values, problem = _json_object(_readable(raw))
            if problem is not None:
                problems.append(problem)
            self._keys.update(dict.fromkeys(values))
            yield SourceLine(number, _shown(raw) if problems else raw, values, tuple(problems))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# one decoder for every line: json.loads(..., parse_constant=) would build a new one each time
_JSON = json.JSONDecoder(parse_constant=_no_constant)


def _json_object(text: str) -> tuple[dict[str, Any], str | None]:
    try:
        value = _JSON.decode(text)
    except json.JSONDecodeError as error:
        return {}, f"is not valid JSON: {error.msg} at column {error.colno}"
    except RecursionError:
        return {}, "is not valid JSON: nested too deeply"
    except ValueError as error:
        return {}, f"is not valid JSON: {error}"
    if not isinstance(value, dict):
        kind = {list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(type(value), "a number")
        return {}, f"is not a JSON object but {kind}"
    return value, None


class _Workbook(_Reader):
    def __init__(self, file: IO[bytes], sheet: str | None, label: str, closers: list[Callable[[], object]]) -> None:
        super().__init__(closers)
        import openpyxl  # only XLSX needs it, and it takes a while to import
        from openpyxl.utils import get_column_letter

        self._label = label
        if not _seekable(file):
            raise _fail(label, "an XLSX file must be given as a path or a seekable file")
        try:
            book = openpyxl.load_workbook(file, read_only=True, data_only=True)
        except Exception as error:  # openpyxl raises whatever its zip and XML readers raise for a broken file
            raise _fail(label, f"the file is not a valid XLSX workbook ({_brief(error)})") from None
        self._closers.append(book.close)
        if sheet is None:
            if not book.worksheets:
                raise _fail(label, "the workbook has no worksheet")
            worksheet = book.worksheets[0]
        else:
            named = [ws for ws in book.worksheets if ws.title == sheet]
            if not named:
                sheets = ", ".join(repr(ws.title) for ws in book.worksheets)
                raise _fail(label, f"the workbook has no sheet {sheet!r} (its sheets: {sheets})")
            worksheet = named[0]
        worksheet.reset_dimensions()  # some writers record a wrong size: read every row there is
        self._rows = enumerate(worksheet.iter_rows(values_only=True), start=1)
        for _, row in self._next_rows():
            if _width(row):
                names = ["" if v is None else _cell_text(v).strip() for v in row[: _width(row)]]
                self._header = _header(names, label, get_column_letter)
                break
        else:
            raise _fail(label, f"the sheet {worksheet.title!r} is empty")

    def _next_rows(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        while True:
            try:
                number, row = next(self._rows)
            except StopIteration:
                return
            except Exception as error:  # a sheet whose XML breaks off half-way
                raise _fail(self._label, f"the file is not a valid XLSX workbook ({_brief(error)})") from None
            yield number, row

    def records(self) -> Iterator[SourceLine]:
        header = self.header
        width = len(header)
        for number, row in self._next_rows():
            used = _width(row)
            if not used:
                continue
            values = {name: row[i] if i < len(row) else None for i, name in enumerate(header)}
            problems = (_ragged(used, width),) if used > width else ()
            yield SourceLine(number, _csv_line(row[:used]), values, problems)


def _seekable(file: IO[bytes]) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _brief(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _width(row: tuple[Any, ...]) -> int:
    """How many cells the row uses: up to its last cell that is not empty."""
    for index in range(len(row) - 1, -1, -1):
        value = row[index]
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return index + 1
    return 0


def _cell_text(value: Any) -> str:
    """A cell written as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):  # an Excel date is a datetime at midnight
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _csv_line(cells: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([_cell_text(v) for v in cells])
    return out.getvalue()


def _ragged(fields: int, width: int) -> str:
    return f"has {fields} field{'' if fields == 1 else 's'}, the header has {width}"
