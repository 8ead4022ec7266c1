"""Check-ins from a turnstile export, as the core's importer ``fitness_turnstile``.

The file (CSV, XLSX or JSON lines) needs a ``card`` (or ``card_number``) and a ``time`` (or ``timestamp``)
column, and may have ``door`` and ``club``. Times without a zone are read in the import's time zone
(``tz``). The core reads the file line by line (memory stays flat), matches cards to members one query per
chunk, stores the check-ins through ``crm.activities.ingest`` (whose hook in this plugin uses one session
per stored check-in, ``crmkit_fitness.sessions``), writes the reject file, records the import and can
revert it (the sessions the check-ins used are given back).

**Each check-in is stored once.** A line's event is identified by its card and its UTC time: the check-in
carries ``source="turnstile"`` and that as ``external_id``, and the database's unique key on (customer,
source, external id) makes an export imported twice, or by two processes at the same time, store each
check-in once. A skipped line uses no session.

**Chunks commit one by one.** Without ``tx`` every ``batch_size`` lines are a transaction of their own, so the
front desk's writes go in between; if the import stops (an error, a killed process), the chunks that
committed stay, complete with the sessions they used, and importing the file again stores only what is
missing. With ``tx`` the whole file is part of the caller's unit of work.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import attrs

from crmkit import ImportContext, ImportedActivity, ImporterSpec, Transaction, ValidationError
from crmkit.imports.values import ParseOptions, parse_value

if TYPE_CHECKING:
    from crmkit import CRM

#: The ``source`` of every imported check-in: with the card and the time, the idempotency key.
SOURCE = "turnstile"
NAME = "fitness_turnstile"


@attrs.frozen
class LineError:
    line: int
    reason: str


@attrs.frozen
class TurnstileReport:
    """What an import did: check-ins added, lines already imported, every rejected line with why (the first
    1,000; the reject file has them all), and the import's id (for ``crm.imports.revert``)."""

    imported: int
    duplicates: int
    rejected: tuple[LineError, ...]
    import_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.rejected


def parse_checkin(values: Mapping[str, Any], context: ImportContext) -> ImportedActivity:
    """One line: the member's card, the UTC time, and the club and door as the check-in's data."""
    card = str(values.get("card") or "").strip()
    if not card:
        raise ValueError("no card number")
    try:
        moment = parse_value("datetime", values.get("time"), context.options, field="time")
    except ValueError:
        raise ValueError(f"bad time {values.get('time')!r}") from None
    if not isinstance(moment, dt.datetime):
        raise ValueError("no time")
    data: dict[str, Any] = {"club": str(values.get("club") or "").strip() or context.settings["club"]}
    door = str(values.get("door") or "").strip()
    if door:
        data["door"] = door
    return ImportedActivity(
        key=f"{card}@{moment.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}",
        customer=("card_number", card),
        values={"occurred_at": moment, "data": data},
    )


TURNSTILE = ImporterSpec(
    name=NAME,
    kind="checkin",
    parse=parse_checkin,
    label="Turnstile check-ins",
    description="Check-ins from a turnstile export (card, time, door, club), matched to members by card number.",
    source=SOURCE,
    columns={
        "card": ("card_number", "card no", "member card"),
        "time": ("timestamp", "datetime", "date"),
        "door": ("gate", "turnstile"),
        "club": ("site", "location"),
    },
    required=("card", "time"),
)


def import_turnstile(
    crm: CRM,
    source: str | os.PathLike[str] | BinaryIO | IO[str],
    *,
    club: str | None = None,
    tz: str = "UTC",
    batch_size: int = 5000,
    rejects: str | os.PathLike[str] | IO[str] | None = None,
    tx: Transaction | None = None,
) -> TurnstileReport:
    """Import a turnstile export with ``crm.imports.run("fitness_turnstile", ...)``: good lines are kept even
    when others are rejected, lines already imported are counted as duplicates. ``club`` is the club of lines
    without one (the plugin's default club when ``None``), ``tz`` the zone of times written without one."""
    from crmkit_fitness.config import config_of

    try:
        options = ParseOptions(timezone=tz)
    except ValueError as exc:
        raise ValidationError({"tz": [str(exc)]}, "cannot import the turnstile export") from None
    text = isinstance(source, io.TextIOBase)
    report = crm.imports.run(
        NAME,
        _Encoded(source) if text else source,  # type: ignore[arg-type]
        settings={"club": club or config_of(crm).default_club},
        options=options,
        format="csv" if text else None,
        chunk_size=batch_size,
        rejects=rejects,
        tx=tx,
    )
    return TurnstileReport(
        imported=report.counts["created"],
        duplicates=report.counts["skipped"],
        rejected=tuple(LineError(o.line, "; ".join(o.reasons)) for o in report.rejected),
        import_id=report.import_id,
    )


class _Encoded(io.RawIOBase):
    """A text stream read as UTF-8 bytes, a block at a time (the core's reader takes bytes)."""

    def __init__(self, text: Any) -> None:
        self._text = text
        self._pending = b""
        self.name = getattr(text, "name", "turnstile.csv")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._pending) < len(buffer):
            block = self._text.read(8192)
            if not block:
                break
            self._pending += block.encode("utf-8")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
