"""The planner's statistics after bulk writes: PostgreSQL's tables are analysed once a large ingest or
import has committed; SQLite is left alone unless ``crm.analyze()`` is called."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from sqlalchemy import text

from crmkit import CRM, ValidationError
from crmkit.db import statistics

T0 = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)


def _planner_rows(crm: CRM, table: str) -> float | None:
    """What PostgreSQL's planner believes ``table`` holds (-1: never analysed); ``None`` on SQLite."""
    if crm.engine.dialect.name != "postgresql":
        return None
    with crm.engine.connect() as conn:
        return float(
            conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}).scalar_one()
        )


def _sqlite_has_statistics(crm: CRM) -> bool:
    with crm.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar_one() > 0


def _visits(customer_id: int, n: int) -> list[dict[str, Any]]:
    return [
        {"customer_id": customer_id, "kind": "visit", "occurred_at": T0 + dt.timedelta(minutes=i)} for i in range(n)
    ]


def test_a_large_ingest_is_analysed_on_postgresql_and_not_on_sqlite(crm: CRM) -> None:
    member = crm.customers.create({"name": "Member"})["id"]
    report = crm.activities.ingest(_visits(member, statistics.ANALYZE_AFTER_ROWS), commit_every=4_000)
    assert report.inserted == statistics.ANALYZE_AFTER_ROWS
    if crm.engine.dialect.name == "postgresql":
        # ANALYZE samples up to 30,000 rows: on 10,000 it counts them exactly
        assert _planner_rows(crm, "crm_activities") == statistics.ANALYZE_AFTER_ROWS
    else:
        assert not _sqlite_has_statistics(crm)


def test_an_ingest_in_the_callers_transaction_is_analysed_once_it_commits(crm: CRM) -> None:
    member = crm.customers.create({"name": "Member"})["id"]
    with crm.transaction() as tx:
        crm.activities.ingest(_visits(member, statistics.ANALYZE_AFTER_ROWS), tx=tx)
        if crm.engine.dialect.name == "postgresql":
            assert _planner_rows(crm, "crm_activities") != statistics.ANALYZE_AFTER_ROWS
    if crm.engine.dialect.name == "postgresql":
        assert _planner_rows(crm, "crm_activities") == statistics.ANALYZE_AFTER_ROWS


def test_small_writes_and_sqlite_never_analyse() -> None:
    class Engine:  # the decision is made before the database is asked anything
        class dialect:
            name = "postgresql"

    assert statistics.after_bulk_write(Engine(), {"crm_activities": statistics.ANALYZE_AFTER_ROWS - 1}) == []  # type: ignore[arg-type]
    Engine.dialect.name = "sqlite"
    assert statistics.after_bulk_write(Engine(), {"crm_activities": 10**9}) == []  # type: ignore[arg-type]


def test_a_large_customer_import_analyses_the_customers(crm: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "ANALYZE_AFTER_ROWS", 3)  # what 10,000 lines would do, on 5
    upload = io.BytesIO(b"name,email\n" + b"".join(b"Member %d,m%d@example.com\n" % (i, i) for i in range(5)))
    upload.name = "members.csv"
    report = crm.imports.customers(upload)
    assert report.counts["created"] == 5
    if crm.engine.dialect.name == "postgresql":
        assert _planner_rows(crm, "crm_customers") == 5
        assert _planner_rows(crm, "crm_import_changes") == 5
    else:
        assert not _sqlite_has_statistics(crm)


def test_crm_analyze_refreshes_every_table_of_the_crm(crm: CRM) -> None:
    crm.customers.create({"name": "Member"})
    analysed = crm.analyze()
    assert {"crm_customers", "crm_activities", "crm_import_changes"} <= set(analysed)
    if crm.engine.dialect.name == "postgresql":
        assert _planner_rows(crm, "crm_customers") == 1
    else:
        assert crm.analyze(["crm_customers"]) == ["crm_customers"]


def test_crm_analyze_refuses_a_table_the_crm_does_not_have(crm: CRM) -> None:
    with pytest.raises(ValidationError, match="not a table of this CRM: pg_class"):
        crm.analyze(["crm_customers", "pg_class"])
