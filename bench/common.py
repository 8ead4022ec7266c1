"""What every workload module shares: the fixed day the club is generated for, and the ``Workload`` shape
the runner times."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from typing import Any

import attrs

#: The generated club's history ends the day before this one; every workload looks from it. A fixed day
#: keeps the data, and so the figures, the same from run to run.
TODAY = dt.date(2026, 6, 1)
AS_OF = dt.datetime.combine(TODAY, dt.time(), dt.UTC)


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
