"""What every workload module shares: the fixed day the club is generated for, and the ``Workload`` shape
the runner times."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

#: The generated club's history ends the day before this one; every workload looks from it. A fixed day
#: keeps the data, and so the figures, the same from run to run.
TODAY = dt.date(2026, 6, 1)
AS_OF = dt.datetime.combine(TODAY, dt.time(), dt.UTC)


def parts(result: Any) -> dict[str, int]:
    """What a side's result holds, part by part: a count is itself, a mapping of counts (matches per
    trigger) is each of them, rows are how many there are and how many of their numbers are not zero (a
    month-by-month report has a row for every month, so its rows alone cannot tell an empty period)."""
    if isinstance(result, bool) or result is None:
        return {}
    if isinstance(result, int):
        return {"rows": result}
    if isinstance(result, Mapping):
        return {str(k): int(v) for k, v in result.items()}
    if isinstance(result, Sequence):
        cells = (row.values() if isinstance(row, Mapping) else row for row in result)
        numbers = sum(1 for row in cells for v in row if _nonzero_number(v))
        return {"rows": len(result), "non-zero numbers": numbers}
    return {}


def _nonzero_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and value != 0


def empty_parts(ours: Mapping[str, int], theirs: Mapping[str, int]) -> list[str]:
    """The parts where either side has nothing: comparing those would prove nothing."""
    return [name for name in {**ours, **theirs} if not ours.get(name) or not theirs.get(name)]


@attrs.frozen
class Workload:
    """One line of the results table: the same job done by crmkit and by a baseline.

    Both callables run in the same process against the same database; each returns its result, and
    ``same(crmkit_result, baseline_result)`` must hold, so a baseline that does less work than crmkit
    is caught instead of flattering the ratio.
    """

    name: str
    crmkit: Callable[[], Any]
    baseline: Callable[[], Any]
    same: Callable[[Any, Any], bool] = operator.eq
    #: What the baseline is, for the table ("hand-written SQL", "raw executemany", ...).
    baseline_kind: str = "hand-written SQL"
    #: Multiply the baseline's time by this (a per-customer loop run on a sample, scaled to every customer).
    baseline_scale: float = 1.0
    #: Called before each timed run of either side (e.g. to empty the table an ingest writes to).
    reset: Callable[[], None] | None = None
    #: What a result holds, part by part; every part must be non-empty on both sides (see :func:`parts`).
    parts: Callable[[Any], dict[str, int]] = parts
    #: How many calls one run makes (the app path's one-at-a-time workloads): the table shows time per call.
    calls: int = 0
