"""Open, in another process, the database a test's CRM uses: a SQLite file, or a PostgreSQL test schema.

Concurrency tests start real processes (multiprocessing's "spawn": nothing inherited but what is passed),
and each must open the same database with the same options as the test (``crmkit.testing.database_of``).
"""

from __future__ import annotations

from typing import Any

from crmkit import CRM
from crmkit.testing import database_of

__all__ = ["TIMEOUT", "database_of", "open_crm"]

#: Bounds every wait of a concurrency test, so a hang fails the test instead of stalling the suite.
TIMEOUT = 120


def open_crm(database: tuple[str, dict[str, Any]], plugins: list[object] | None = None) -> CRM:
    url, options = database
    return CRM(url, plugins=plugins or [], engine_options=options, load_entry_points=False)
