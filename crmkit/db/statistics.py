"""The planner's statistics, refreshed after a bulk write.

PostgreSQL plans a query from the statistics ``ANALYZE`` gathers. A table filled by an import has none (a
fresh one) or stale ones until autovacuum gets to it, and the planner then picks plans for an empty table:
a dormant-customers query over 100k fresh activities took 3.1 s before ``ANALYZE`` and 24 ms after. So a
bulk write of at least :data:`ANALYZE_AFTER_ROWS` rows, and at least :data:`ANALYZE_SHARE` of what the
table held, is followed by ``ANALYZE`` of the tables it wrote, once it has committed.

SQLite keeps no statistics unless asked (``ANALYZE`` writes ``sqlite_stat1``, and its plans then change
for every query): nothing runs there by itself; :func:`analyze` (``crm.analyze()``) runs SQLite's own
``PRAGMA optimize``, which analyses the tables that need it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Engine, text

#: Rows a bulk write must have stored before the tables it wrote are analysed.
ANALYZE_AFTER_ROWS = 10_000
#: ... and their share of the rows the table held before (what autovacuum's ``autovacuum_analyze_scale_factor``
#: waits for, without waiting for autovacuum's next round).
ANALYZE_SHARE = 0.1


def analyze(engine: Engine, tables: Iterable[str] | None = None) -> list[str]:
    """Refresh the planner's statistics: PostgreSQL's ``ANALYZE`` of ``tables`` (all of the database's
    when ``None``), SQLite's ``PRAGMA optimize``. Returns the tables analysed (``["*"]`` for all)."""
    names = sorted(set(tables)) if tables is not None else None
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA optimize")
        elif names is None:
            conn.exec_driver_sql("ANALYZE")
        else:
            for name in names:
                conn.exec_driver_sql(f"ANALYZE {engine.dialect.identifier_preparer.quote(name)}")
        conn.commit()
    return ["*"] if names is None else names


def after_bulk_write(engine: Engine, written: Mapping[str, int]) -> list[str]:
    """``ANALYZE`` (PostgreSQL only) the tables of ``written`` (table -> rows stored) that a bulk write
    changed enough; returns their names. Call it once the write has committed."""
    if engine.dialect.name != "postgresql":
        return []
    large = {name: rows for name, rows in written.items() if rows >= ANALYZE_AFTER_ROWS}
    if not large:
        return []
    with engine.connect() as conn:
        held = {
            name: conn.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": name}
            ).scalar()
            for name in large
        }
    # reltuples is -1 for a table never analysed, and counts the rows just written once analysed since
    due = [
        name
        for name, rows in large.items()
        if (before := held[name]) is not None and rows >= ANALYZE_SHARE * (before - rows)
    ]
    return analyze(engine, due) if due else []
