"""What an import did: per line (the preview), in totals, and the reject file."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import attrgetter
from typing import IO, Any

import attrs

#: What a line can do: a new customer, changed fields, nothing to change, left alone, refused.
ACTIONS = ("created", "updated", "unchanged", "skipped", "rejected")
#: How many rejected lines a report keeps in memory; the reject file has them all.
REJECTS_KEPT = 1000


@attrs.frozen
class LineOutcome:
    """What one line of the file did (or, in a dry run, would do)."""

    line: int
    action: str
    customer_id: int | None = None
    #: the fields an update changes (or a create sets)
    fields: tuple[str, ...] = ()
    #: why a line is skipped or rejected, every reason
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "fields": list(self.fields), "reasons": list(self.reasons)}


@attrs.frozen
class ImportReport:
    """The outcome of an import: totals per action, the first lines' outcomes (``preview``), the first
    :data:`REJECTS_KEPT` rejected lines, and the import's id (``None`` for a dry run, which wrote nothing)."""

    import_id: int | None
    dry_run: bool
    counts: dict[str, int]
    preview: tuple[LineOutcome, ...]
    rejected: tuple[LineOutcome, ...]
    mapping: dict[str, str]
    ignored_columns: tuple[str, ...]

    @property
    def lines(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "dry_run": self.dry_run,
            "counts": dict(self.counts),
            "lines": self.lines,
            "preview": [o.to_dict() for o in self.preview],
            "rejected": [o.to_dict() for o in self.rejected],
            "mapping": dict(self.mapping),
            "ignored_columns": list(self.ignored_columns),
        }


class Tally:
    """Counts outcomes as they come, keeps the first ``preview`` of them and the first rejects, and writes
    every reject to the reject file."""

    def __init__(self, preview: int, rejects: RejectWriter | None) -> None:
        self.counts = dict.fromkeys(ACTIONS, 0)
        self.preview: list[LineOutcome] = []
        self.rejected: list[LineOutcome] = []
        self._preview = preview
        self._rejects = rejects

    def add_many(self, outcomes: Sequence[LineOutcome], raws: Iterable[str]) -> None:
        """Count each outcome, keep it for the preview and the rejects, and write a reject's line (its
        original text, from ``raws``) to the reject file, in order."""
        counted = Counter(map(attrgetter("action"), outcomes))
        for action, count in counted.items():
            self.counts[action] += count
        room = self._preview - len(self.preview)
        if room > 0:
            self.preview.extend(outcomes[:room])
        if counted["rejected"]:
            for outcome, raw in zip(outcomes, raws, strict=True):
                if outcome.action == "rejected":
                    self._reject(outcome, raw)

    def _reject(self, outcome: LineOutcome, raw: str) -> None:
        if len(self.rejected) < REJECTS_KEPT:
            self.rejected.append(outcome)
        if self._rejects is not None:
            self._rejects.write(outcome.line, outcome.reasons, raw)


class RejectWriter:
    """The reject file: a CSV of ``line``, ``reasons`` (joined by ``"; "``) and ``original`` (the line as it
    was in the file), one row per rejected line, in file order."""

    def __init__(self, handle: IO[str]) -> None:
        self._writer = csv.writer(handle)
        self._writer.writerow(["line", "reasons", "original"])

    def write(self, line: int, reasons: tuple[str, ...], raw: str) -> None:
        self._writer.writerow([line, "; ".join(reasons), raw])


@contextmanager
def reject_writer(target: str | os.PathLike[str] | IO[str] | None) -> Iterator[RejectWriter | None]:
    """A :class:`RejectWriter` on a path (created, UTF-8) or an open text file (left open), or ``None``."""
    if target is None:
        yield None
    elif isinstance(target, (str, os.PathLike)):
        with open(target, "w", newline="", encoding="utf-8") as handle:
            yield RejectWriter(handle)
    else:
        yield RejectWriter(target)


def reasons_of(errors: Mapping[str, Any], prefix: str = "") -> list[str]:
    """A ``ValidationError``'s errors as one reason each: ``{"phone": ["bad"], "x": {"y": ["z"]}}`` as
    ``["phone: bad", "x.y: z"]``."""
    out: list[str] = []
    for field, problems in errors.items():
        name = f"{prefix}{field}"
        if isinstance(problems, Mapping):
            out.extend(reasons_of(problems, f"{name}."))
        elif isinstance(problems, (list, tuple)):
            out.extend(f"{name}: {p}" for p in problems)
        else:
            out.append(f"{name}: {problems}")
    return out
