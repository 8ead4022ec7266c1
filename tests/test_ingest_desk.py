"""A long ingest does not lock the front desk out, and an interrupted one keeps what it committed.

The desk runs in a process of its own with SQLite's usual 5 s busy timeout (Python's default, the one an
app that does not configure it gets). The ingest's rows come from a generator that goes on until the desk
says it is done (and gives up after far more rows than the desk should ever need), so the desk's writes
happen while the ingest is running: if the ingest held the write lock for its whole run, or took it back
at once after each commit, the desk's ``customers.create`` would fail with ``DatabaseBusyError``.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from same_database import TIMEOUT, open_crm
from sqlalchemy import func, select

from crmkit import CRM
from crmkit.db import Activity
from crmkit.errors import CRMError
from crmkit.testing import database_of, run_in_processes

T0 = dt.datetime(2026, 5, 4, 6, 0, tzinfo=dt.UTC)
#: the ingest's rows if the desk never gets in: minutes of work, ended by the desk long before
GIVE_UP = 20_000_000
DESK_CUSTOMERS = 3


def _visits(customer_id: int, stop: Any = None, started: Any = None, limit: int = GIVE_UP) -> Iterator[dict[str, Any]]:
    for i in range(limit):
        if i == 20_000 and started is not None:
            started.set()  # the ingest is under way, holding the write lock in its first unit of work
        if stop is not None and i % 1_000 == 0 and stop.is_set():
            return
        yield {
            "customer_id": customer_id,
            "kind": "visit",
            "occurred_at": T0 + dt.timedelta(seconds=i),
            "source": "gate",
            "external_id": str(i),
        }


def _ingest(database: Any, start: Any, customer_id: int, started: Any, desk_done: Any) -> tuple[int, bool]:
    crm = open_crm(database)
    try:
        start()
        # small batches keep the gap between two pieces (preparing the next batch) short: the harder case
        report = crm.activities.ingest(_visits(customer_id, desk_done, started), batch_size=100)
        return report.inserted, desk_done.is_set()
    finally:
        crm.close()


def _desk(database: Any, start: Any, started: Any, desk_done: Any) -> list[int]:
    url, options = database
    if url.startswith("sqlite"):  # the busy timeout of an app that keeps Python's default
        options = {**options, "connect_args": {**options.get("connect_args", {}), "timeout": 5.0}}
    crm = open_crm((url, options))
    try:
        start()
        assert started.wait(TIMEOUT), "the ingest never started"
        try:
            return [crm.customers.create({"name": f"Walk-in {n}"})["id"] for n in range(DESK_CUSTOMERS)]
        finally:
            desk_done.set()  # and the ingest ends soon after
    finally:
        crm.close()


def _either(database: Any, start: Any, role: str, *args: Any) -> Any:
    return (_ingest if role == "ingest" else _desk)(database, start, *args)


def test_the_front_desk_creates_customers_while_a_long_ingest_runs(crm: CRM) -> None:
    member = crm.customers.create({"name": "Member"})["id"]
    ctx = multiprocessing.get_context("spawn")
    started, desk_done = ctx.Event(), ctx.Event()
    jobs = [("ingest", member, started, desk_done), ("desk", started, desk_done)]
    (inserted, ended_by_desk), desk = run_in_processes(_either, crm, jobs, timeout=TIMEOUT)
    assert ended_by_desk, "the ingest ran out of rows before the desk got in: that proves nothing"
    assert len(desk) == DESK_CUSTOMERS
    with crm.session() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == inserted > 20_000
    assert [crm.customers.get(i)["name"] for i in desk] == [f"Walk-in {n}" for n in range(DESK_CUSTOMERS)]


def _killed_ingest(database: Any, customer_id: int, after: int) -> None:
    crm = open_crm(database)

    def rows() -> Iterator[dict[str, Any]]:
        for n, row in enumerate(_visits(customer_id, limit=10_000)):
            if n == after:
                os.kill(os.getpid(), signal.SIGKILL)  # as `kill -9` would, in the middle of a piece
            yield row

    crm.activities.ingest(rows(), batch_size=500, commit_every=1_000)


def test_an_ingest_killed_halfway_keeps_the_pieces_it_committed_and_a_rerun_completes_it(crm: CRM) -> None:
    member = crm.customers.create({"name": "Member"})["id"]
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_killed_ingest, args=(database_of(crm), member, 2_500))
    proc.start()
    proc.join(TIMEOUT)
    assert proc.exitcode == -signal.SIGKILL
    with crm.session() as s:
        # pieces of 1,000 rows: the first two committed, the third died with the process
        assert s.scalar(select(func.count()).select_from(Activity)) == 2_000
    report = crm.activities.ingest(_visits(member, limit=10_000), batch_size=500, commit_every=1_000)
    assert (report.inserted, report.skipped, report.rejected) == (8_000, 2_000, ())
    with crm.session() as s:
        assert s.scalar(select(func.count(func.distinct(Activity.external_id)))) == 10_000
        assert s.scalar(select(func.count()).select_from(Activity)) == 10_000


def test_an_error_in_the_rows_keeps_the_pieces_committed_before_it(crm: CRM) -> None:
    member = crm.customers.create({"name": "Member"})["id"]

    def rows() -> Iterator[dict[str, Any]]:
        for n, row in enumerate(_visits(member, limit=5_000)):
            if n == 3_200:
                raise OSError("the turnstile's export went away")
            yield row

    with pytest.raises(OSError):
        crm.activities.ingest(rows(), batch_size=500, commit_every=1_000)
    with crm.session() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 3_000


def test_commit_every_none_or_a_caller_transaction_is_one_unit_of_work(crm: CRM) -> None:
    member = crm.customers.create({"name": "Member"})["id"]

    def rows() -> Iterator[dict[str, Any]]:
        yield from _visits(member, limit=2_500)
        raise OSError("cut off")

    for kwargs in ({"commit_every": None}, {"all_or_nothing": True}):
        with pytest.raises(OSError):
            crm.activities.ingest(rows(), batch_size=500, **kwargs)
    with pytest.raises(OSError), crm.transaction() as tx:
        crm.activities.ingest(rows(), batch_size=500, commit_every=1_000, tx=tx)
    with crm.session() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 0


@pytest.mark.parametrize("commit_every", [0, -5, 2.5, "100"])
def test_commit_every_must_be_a_positive_number_of_rows(crm: CRM, commit_every: Any) -> None:
    with pytest.raises(CRMError, match="commit_every"):
        crm.activities.ingest([], commit_every=commit_every)
