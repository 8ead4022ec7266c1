"""Check-ins from a turnstile export: CSV in, validated check-in activities out, every bad line reported.

Each check-in uses up a session of the membership covering its day when that membership counts sessions.
The file needs a header with ``card`` (or ``card_number``), ``time`` (or ``timestamp``) and optionally
``door`` and ``club``. Times without a zone are read in the club's time zone (``tz``). Lines are streamed
in batches: cards are matched to members with one query per batch, check-ins go in through the core's
set-based ``crm.activities.ingest``, and an export imported twice adds nothing the second time.
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

from crmkit.db import Activity
from crmkit_fitness.sessions import use_sessions

if TYPE_CHECKING:
    from crmkit import CRM

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
) -> TurnstileReport:
    """Import a turnstile CSV export. Good lines are kept even when others are rejected."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    default_club = club or crm.plugin_manager.get_plugin("fitness").config.default_club
    if isinstance(source, (str, Path)):
        with open(source, newline="", encoding="utf-8-sig") as handle:
            return _import(crm, handle, default_club, zone, batch_size)
    return _import(crm, source, default_club, zone, batch_size)


def _import(crm: CRM, handle: TextIO, club: str, zone: dt.tzinfo, batch_size: int) -> TurnstileReport:
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header:
        return TurnstileReport(0, 0, (LineError(1, "empty file: expected a header with card and time"),))
    card_col, time_col = _column(header, CARD), _column(header, TIME)
    missing = [n for n, c in (("card", card_col), ("time", time_col)) if c is None]
    if missing:
        return TurnstileReport(0, 0, (LineError(1, f"header has no {' or '.join(missing)} column: {header}"),))
    index = {name: i for i, name in enumerate(header)}
    door_col, club_col = _column(header, ("door",)), _column(header, ("club",))
    rejected: list[LineError] = []
    imported = duplicates = 0
    lines: Iterator[tuple[int, list[str]]] = ((reader.line_num, row) for row in reader)
    while batch := list(islice(lines, batch_size)):
        parsed: list[tuple[int, str, dt.datetime, dict[str, Any]]] = []
        for line, row in batch:
            if not any(cell.strip() for cell in row):
                continue  # blank lines are not check-ins, nor errors
            if len(row) != len(header):
                rejected.append(LineError(line, f"expected {len(header)} fields, got {len(row)}"))
                continue
            card = row[index[card_col]].strip()  # type: ignore[index]
            if not card:
                rejected.append(LineError(line, "no card number"))
                continue
            try:
                moment = _parse_time(row[index[time_col]], zone)  # type: ignore[index]
            except ValueError:
                rejected.append(LineError(line, f"bad time {row[index[time_col]]!r}"))  # type: ignore[index]
                continue
            data = {"club": (row[index[club_col]].strip() if club_col else "") or club}
            if door_col and row[index[door_col]].strip():
                data["door"] = row[index[door_col]].strip()
            parsed.append((line, card, moment, data))
        members = _members(crm, {card for _, card, _, _ in parsed})
        known = [(line, members[card], moment, data) for line, card, moment, data in parsed if card in members]
        rejected.extend(LineError(line, f"unknown card {card!r}") for line, card, _, _ in parsed if card not in members)
        seen = _existing(crm, known)
        fresh = []
        for line, cid, moment, data in known:
            key = (cid, moment)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)  # the same line twice in one file is a duplicate too
            fresh.append((line, cid, moment, data))
        with crm.transaction() as tx:  # the check-ins and the sessions they use up go in together
            report = crm.activities.ingest(
                (
                    {"customer_id": cid, "kind": "checkin", "occurred_at": moment, "data": data}
                    for _, cid, moment, data in fresh
                ),
                tx=tx,
            )
            failed = {r.index for r in report.rejected}
            use_sessions(
                tx.session, [(cid, moment.date()) for i, (_, cid, moment, _) in enumerate(fresh) if i not in failed]
            )
        imported += report.inserted
        rejected.extend(LineError(fresh[r.index][0], _reason(r.errors)) for r in report.rejected)
    rejected.sort(key=lambda e: e.line)
    return TurnstileReport(imported, duplicates, tuple(rejected))


def _reason(errors: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(errors.items()))


def _members(crm: CRM, cards: set[str]) -> dict[str, int]:
    if not cards:
        return {}
    table = crm.extension_tables["fitness"]
    with crm.engine.connect() as conn:
        rows = conn.execute(select(table.c.card_number, table.c.customer_id).where(table.c.card_number.in_(cards)))
        return {card: cid for card, cid in rows}


def _existing(crm: CRM, rows: list[tuple[int, int, dt.datetime, dict[str, Any]]]) -> set[tuple[int, dt.datetime]]:
    if not rows:
        return set()
    ids = {cid for _, cid, _, _ in rows}
    low = min(moment for _, _, moment, _ in rows)
    high = max(moment for _, _, moment, _ in rows)
    query = select(Activity.customer_id, Activity.occurred_at).where(
        Activity.kind == "checkin",
        Activity.customer_id.in_(ids),
        Activity.occurred_at >= low,
        Activity.occurred_at <= high,
    )
    with crm.engine.connect() as conn:
        return {(cid, moment) for cid, moment in conn.execute(query)}
