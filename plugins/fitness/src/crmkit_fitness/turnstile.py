"""Check-ins from a turnstile export: CSV in, validated check-in activities out, every bad line reported.

The file needs a header with ``card`` (or ``card_number``), ``time`` (or ``timestamp``) and optionally
``door`` and ``club``. Times without a zone are read in the club's time zone (``tz``). Lines are streamed in
batches (memory stays flat): cards are matched to members with one query per batch, and check-ins go in
through the core's set-based ``crm.activities.ingest``, whose hook in the plugin uses one session per stored
check-in (``crmkit_fitness.sessions``).

**Each check-in is stored once.** A line's event is identified by its card and its UTC time: the check-in
carries ``source="turnstile"`` and that as ``external_id``, and the database's unique key on (customer,
source, external id) makes an export imported twice, or by two processes at the same time, store each
check-in once. A skipped line is counted in the report's ``duplicates`` and uses no session.

**A file goes in whole or not at all.** The whole file is one transaction (or a savepoint of the caller's
``tx``): if anything raises (the database, a plugin's hook), nothing of the file is stored and no session is
used. Rejected lines are not failures: they are reported, and every good line is stored.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmkit.errors import ValidationError
from crmkit.limits import text_problem
from crmkit.unit import Transaction

if TYPE_CHECKING:
    from crmkit import CRM

#: The ``source`` of every imported check-in: with the card and the time, the idempotency key.
SOURCE = "turnstile"
CARD = ("card", "card_number")
TIME = ("time", "timestamp", "datetime")


@attrs.frozen
class LineError:
    line: int
    reason: str


@attrs.frozen
class TurnstileReport:
    """What an import did: check-ins added, lines already imported, and every rejected line with why."""

    imported: int
    duplicates: int
    rejected: tuple[LineError, ...]

    @property
    def ok(self) -> bool:
        return not self.rejected


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _parse_time(text: str, zone: dt.tzinfo) -> dt.datetime:
    value = text.strip().replace("/", "-")
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def import_turnstile(
    crm: CRM,
    source: str | Path | TextIO,
    *,
    club: str | None = None,
    tz: str = "UTC",
    batch_size: int = 5000,
    tx: Transaction | None = None,
) -> TurnstileReport:
    """Import a turnstile CSV export in one transaction (``tx`` to join the caller's). Good lines are kept
    even when others are rejected; lines already imported are counted as duplicates."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError({"tz": [f"unknown time zone {tz!r}"]}, "cannot import the turnstile export") from exc
    default_club = club or crm.plugin_manager.get_plugin("fitness").config.default_club
    try:
        if isinstance(source, (str, Path)):
            with open(source, newline="", encoding="utf-8-sig") as handle:
                return _import(crm, handle, default_club, zone, batch_size, tx)
        return _import(crm, source, default_club, zone, batch_size, tx)
    except UnicodeDecodeError as exc:  # raised while reading: the import has rolled back, nothing is stored
        problem = [f"is not UTF-8 text (byte {exc.start} of a block read from it)"]
        raise ValidationError({"source": problem}, "cannot import the turnstile export") from None


def _import(
    crm: CRM, handle: TextIO, club: str, zone: dt.tzinfo, batch_size: int, tx: Transaction | None
) -> TurnstileReport:
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header:
        return TurnstileReport(0, 0, (LineError(1, "empty file: expected a header with card and time"),))
    card_col, time_col = _column(header, CARD), _column(header, TIME)
    missing = [n for n, c in (("card", card_col), ("time", time_col)) if c is None]
    if missing:
        return TurnstileReport(0, 0, (LineError(1, f"header has no {' or '.join(missing)} column: {header}"),))
    index = {name: i for i, name in enumerate(header)}
    columns = (
        index[card_col],
        index[time_col],
        _at(index, _column(header, ("door",))),
        _at(index, _column(header, ("club",))),
    )  # type: ignore[index]
    rejected: list[LineError] = []
    imported = duplicates = 0
    lines: Iterator[tuple[int, list[str]]] = ((reader.line_num, row) for row in reader)
    with crm.units.write(tx) as t:
        while batch := list(islice(lines, batch_size)):
            parsed = [
                p for p in (_parse(line, row, len(header), columns, club, zone, rejected) for line, row in batch) if p
            ]
            members = _members(t.session, crm, {card for _, card, _, _ in parsed})
            rows, numbers = [], []
            for line, card, moment, data in parsed:
                if card not in members:
                    rejected.append(LineError(line, f"unknown card {card!r}"))
                    continue
                rows.append(_checkin(members[card], card, moment, data))
                numbers.append(line)
            report = crm.activities.ingest(rows, batch_size=max(len(rows), 1), tx=t)
            imported += report.inserted
            duplicates += report.skipped
            rejected.extend(LineError(numbers[r.index], _reason(r.errors)) for r in report.rejected)
    rejected.sort(key=lambda e: e.line)
    return TurnstileReport(imported, duplicates, tuple(rejected))


def _at(index: dict[str, int], name: str | None) -> int | None:
    return None if name is None else index[name]


def _parse(
    line: int,
    row: list[str],
    width: int,
    columns: tuple[int, int, int | None, int | None],
    club: str,
    zone: dt.tzinfo,
    rejected: list[LineError],
) -> tuple[int, str, dt.datetime, dict[str, Any]] | None:
    """One line as (line, card, UTC time, data), or ``None`` with the reason added to ``rejected``."""
    if not any(cell.strip() for cell in row):
        return None  # blank lines are not check-ins, nor errors
    if len(row) != width:
        rejected.append(LineError(line, f"expected {width} fields, got {len(row)}"))
        return None
    card_at, time_at, door_at, club_at = columns
    problem = next((f"{text_problem(cell)}: {cell!r}" for cell in row if text_problem(cell)), None)
    if problem:  # a NUL byte or a broken character: neither database can store it, nor match a card by it
        rejected.append(LineError(line, problem))
        return None
    card = row[card_at].strip()
    if not card:
        rejected.append(LineError(line, "no card number"))
        return None
    try:
        moment = _parse_time(row[time_at], zone)
    except (ValueError, OverflowError):  # year 1 or 9999 cannot be moved to UTC
        rejected.append(LineError(line, f"bad time {row[time_at]!r}"))
        return None
    data = {"club": (row[club_at].strip() if club_at is not None else "") or club}
    if door_at is not None and row[door_at].strip():
        data["door"] = row[door_at].strip()
    return line, card, moment, data


def _checkin(customer_id: int, card: str, moment: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The check-in as an ingest row, keyed by the event it records: this card at this UTC time."""
    return {
        "customer_id": customer_id,
        "kind": "checkin",
        "occurred_at": moment,
        "data": data,
        "source": SOURCE,
        "external_id": f"{card}@{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}",
    }


def _reason(errors: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(errors.items()))


def _members(session: Session, crm: CRM, cards: set[str]) -> dict[str, int]:
    """The members holding ``cards``, read in the import's own transaction."""
    if not cards:
        return {}
    table = crm.extension_tables["fitness"]
    rows = session.execute(select(table.c.card_number, table.c.customer_id).where(table.c.card_number.in_(cards)))
    return {card: cid for card, cid in rows}
