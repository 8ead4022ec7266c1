"""Open, in another process, the database a test's CRM uses: a SQLite file, or a PostgreSQL test schema.

Concurrency tests start real processes (multiprocessing's "spawn": nothing inherited but what is passed),
and each must open the same database with the same options as the test, including the per-test schema
that ``crmkit.testing`` selects with ``search_path``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from crmkit import CRM

#: Bounds every wait of a concurrency test, so a hang fails the test instead of stalling the suite.
TIMEOUT = 120


def database_of(crm: CRM) -> tuple[str, dict[str, Any]]:
    """The URL and engine options that open ``crm``'s database from another process."""
    url = crm.engine.url.render_as_string(hide_password=False)
    if crm.engine.dialect.name != "postgresql":
        return url, {}
    with crm.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return url, {"connect_args": {"options": f"-csearch_path={schema}"}}


def open_crm(database: tuple[str, dict[str, Any]], plugins: list[object] | None = None) -> CRM:
    url, options = database
    return CRM(url, plugins=plugins or [], engine_options=options, load_entry_points=False)
