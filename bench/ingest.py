"""The ingest workload: the club's check-ins written into an empty ``crm_activities`` through crmkit's bulk
API, against the same rows written with the driver's ``executemany`` of a hand-written ``INSERT``.

Both sides start from the same Python tuples, run in one transaction, and store the same values in every
column but ``id`` and ``created_at`` (:func:`check_same_rows` proves it). The baseline pays for what any
real import pays for: turning an aware datetime into what the column stores and the data into JSON; its
``INSERT`` names only the columns a check-in has a value for. It does not validate anything or check that
the customers exist; crmkit does both, row by row, through its public ``crm.activities.ingest``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from bench.common import Workload
from crmkit.db.models import Activity

if TYPE_CHECKING:
    from crmkit import CRM

#: (customer_id, occurred_at aware UTC, club, door, class_id or None): a check-in as a turnstile reports it.
Visit = tuple[int, dt.datetime, str, str, "int | None"]

_COLUMNS = ("customer_id", "kind", "channel", "status", "occurred_at", "data", "created_at")
_TABLE = Activity.__tablename__


def ingest_workload(crm: CRM, visits: Sequence[Visit]) -> Workload:
    """Ingest ``visits`` as fitness check-ins into ``crm`` (schema and customers present, no activities)."""
    return Workload(
        name=f"ingest {len(visits):,} check-ins",
        crmkit=lambda: crmkit_ingest(crm, visits),
        baseline=lambda: raw_ingest(crm, visits),
        baseline_kind="raw executemany",
        reset=lambda: reset(crm),
    )


def checkins(visits: Sequence[Visit]) -> Iterator[dict[str, Any]]:
    """The visits as the rows crmkit's ingest takes, the shape the fitness generator produces."""
    for customer_id, occurred_at, club, door, class_id in visits:
        data: dict[str, Any] = {"club": club, "door": door}
        if class_id is not None:
            data["class_id"] = class_id
        yield {"customer_id": customer_id, "kind": "checkin", "occurred_at": occurred_at, "data": data}


def crmkit_ingest(crm: CRM, visits: Sequence[Visit]) -> int:
    report = crm.activities.ingest(checkins(visits))
    if report.rejected:
        raise AssertionError(f"crmkit rejected {len(report.rejected)} check-ins, first {report.rejected[0]}")
    return count(crm)


def raw_ingest(crm: CRM, visits: Sequence[Visit]) -> int:
    """One ``executemany`` of a hand-written ``INSERT`` on the raw DBAPI connection, in one transaction."""
    sqlite = crm.engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    sql = f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})"
    params = (_sqlite_params if sqlite else _psycopg_params)(visits)
    raw = crm.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if sqlite:
            cursor.execute("BEGIN IMMEDIATE")  # crmkit's engine runs sqlite3 without implicit transactions
        # sqlite3 and psycopg take an iterator and stream it; SQLAlchemy's DBAPI protocol asks for a Sequence
        cursor.executemany(sql, params)  # type: ignore[arg-type]
        cursor.close()
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    return count(crm)


def _sqlite_params(visits: Sequence[Visit]) -> Iterator[tuple[Any, ...]]:
    utc = dt.UTC
    created = dt.datetime.now(utc).replace(tzinfo=None).isoformat(" ", "microseconds")  # SQLAlchemy's text form
    dumps = json.dumps
    for customer_id, occurred_at, club, door, class_id in visits:
        data: dict[str, Any] = {"club": club, "door": door}
        if class_id is not None:
            data["class_id"] = class_id
        at = occurred_at.astimezone(utc).replace(tzinfo=None).isoformat(" ", "microseconds")
        yield (customer_id, "checkin", "in_person", "done", at, dumps(data), created)


def _psycopg_params(visits: Sequence[Visit]) -> Iterator[tuple[Any, ...]]:
    from psycopg.types.json import Jsonb

    utc = dt.UTC
    created = dt.datetime.now(utc).replace(tzinfo=None)
    for customer_id, occurred_at, club, door, class_id in visits:
        data: dict[str, Any] = {"club": club, "door": door}
        if class_id is not None:
            data["class_id"] = class_id
        at = occurred_at.astimezone(utc).replace(tzinfo=None)  # the column is timestamp without time zone, in UTC
        yield (customer_id, "checkin", "in_person", "done", at, Jsonb(data), created)


def count(crm: CRM) -> int:
    with crm.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Activity.__table__)).scalar_one()


def reset(crm: CRM) -> None:
    """Empty ``crm_activities`` so each timed run starts from the same state (on PostgreSQL with
    ``TRUNCATE``, so that the dead rows of one run do not weigh on the next)."""
    statement = f"DELETE FROM {_TABLE}" if crm.engine.dialect.name == "sqlite" else f"TRUNCATE {_TABLE}"
    with crm.engine.begin() as conn:
        conn.execute(text(statement))


def check_same_rows(crm: CRM, visits: Sequence[Visit]) -> int:
    """Run both sides on ``visits`` and compare what each stored, column by column (not ``id`` nor
    ``created_at``); raise ``AssertionError`` naming the first difference, or when there is nothing to
    compare. Returns how many rows each side stored. Leaves the table empty."""
    if not visits:
        raise AssertionError("no check-ins to ingest: comparing two empty tables proves nothing")
    stored: dict[str, list[tuple[Any, ...]]] = {}
    for side, run in (("crmkit", crmkit_ingest), ("baseline", raw_ingest)):
        reset(crm)
        run(crm, visits)
        stored[side] = _snapshot(crm)
    reset(crm)
    ours, theirs = stored["crmkit"], stored["baseline"]
    if len(ours) != len(theirs):
        raise AssertionError(f"crmkit stored {len(ours)} rows, the baseline {len(theirs)}")
    if len(ours) != len(visits):
        raise AssertionError(f"{len(visits)} check-ins were ingested, but both sides stored {len(ours)}")
    names = _compared_columns()
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if a != b:
            diff = {n: (x, y) for n, x, y in zip(names, a, b, strict=True) if x != y}
            raise AssertionError(f"row {i} differs (column: (crmkit, baseline)): {diff}")
    return len(ours)


def _compared_columns() -> list[str]:
    return [c.name for c in Activity.__table__.columns if c.name not in ("id", "created_at")]


def _snapshot(crm: CRM) -> list[tuple[Any, ...]]:
    """Every compared value as the database renders it as text (on SQLite it is stored as text), so that a
    microsecond, a time zone shift or a JSON key order that differs is a difference."""
    as_text = "{}" if crm.engine.dialect.name == "sqlite" else "{}::text"
    columns = ", ".join(as_text.format(name) for name in _compared_columns())
    query = f"SELECT {columns} FROM {_TABLE} ORDER BY customer_id, occurred_at, data"
    with crm.engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(query)]
