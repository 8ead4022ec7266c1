"""Duplicate checks under real concurrency: several processes, started together, writing shared values.

Each worker is a separate process ("spawn" context) with its own CRM on the test's database (the same
SQLite file, or the same PostgreSQL schema), so the writers race exactly as an application's would. The
runs are deterministic in what must hold, whatever the interleaving: every value is taken by exactly one
customer, and every other attempt at it is refused.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crmkit import CRM, DuplicateCustomerError
from crmkit.app import SQLITE_BUSY_TIMEOUT
from crmkit.db import Customer
from crmkit.errors import DatabaseBusyError
from crmkit.testing import run_in_processes

WORKERS = 4
ITERATIONS = 40
TIMEOUT = 120  # seconds a worker may take before the test gives up on it (never reached when all is well)


def _key_of(iteration: int) -> int:
    # every worker walks the same keys in the same order, each key twice in a row: maximal overlap
    return iteration // 2


def _email(key: int, worker: int) -> str:
    spelled = f"member{key}@club.example"
    return spelled.upper() if worker % 2 else f"  {spelled} "


def _phone(key: int, worker: int) -> str:
    line = 1000 + key
    return (f"+1 646-555-{line}", f"(646) 555-{line}", f"646.555.{line}", f"646 555 {line}")[worker]


def _create_input(key: int, worker: int) -> dict[str, Any]:
    """Three families of keys: email and phone, email only, phone only (the values of each key are its own)."""
    family = key % 3
    data: dict[str, Any] = {"name": f"Member {key} via worker {worker}"}
    if family in (0, 1):
        data["email"] = _email(key, worker)
    if family in (0, 2):
        data["phone"] = _phone(key, worker)
    return data


def _expected_values(keys: set[int]) -> set[tuple[str | None, str | None]]:
    return {
        (
            f"member{k}@club.example" if k % 3 in (0, 1) else None,
            f"+1646555{1000 + k}" if k % 3 in (0, 2) else None,
        )
        for k in keys
    }


def _run_workers(target: Any, crm: CRM, *extra: Any) -> list[tuple[int, int, int]]:
    """Start WORKERS processes of ``target`` together; return each one's (worker, written, refused)."""
    return sorted(run_in_processes(target, crm, [(w, *extra) for w in range(WORKERS)], timeout=TIMEOUT))


def _create_worker(database: tuple[str, dict[str, Any]], start: Any, worker: int) -> tuple[int, int, int]:
    crm = CRM(database[0], engine_options=database[1], load_entry_points=False)
    written = refused = 0
    start()
    for i in range(ITERATIONS):
        try:
            crm.customers.create(_create_input(_key_of(i), worker))
            written += 1
        except DuplicateCustomerError:
            refused += 1
    crm.close()
    return worker, written, refused


def _update_worker(
    database: tuple[str, dict[str, Any]], start: Any, worker: int, own_ids: list[list[int]]
) -> tuple[int, int, int]:
    crm = CRM(database[0], engine_options=database[1], load_entry_points=False)
    written = refused = 0
    start()
    for i, customer_id in enumerate(own_ids[worker]):
        try:
            crm.customers.update(customer_id, {"email": _email(_key_of(i), worker)})
            written += 1
        except DuplicateCustomerError:
            refused += 1
    crm.close()
    return worker, written, refused


def _values(crm: CRM) -> list[tuple[str | None, str | None]]:
    with crm.session() as s:
        return [tuple(r) for r in s.execute(select(Customer.email_normalized, Customer.phone_normalized))]  # type: ignore[misc]


def test_concurrent_creates_never_make_a_duplicate(crm: CRM) -> None:
    outcomes = _run_workers(_create_worker, crm)

    keys = {_key_of(i) for i in range(ITERATIONS)}  # 20 keys, each attempted twice by each of the 4 workers
    attempts = WORKERS * ITERATIONS
    written = sum(w for _, w, _ in outcomes)
    refused = sum(r for _, _, r in outcomes)
    assert written + refused == attempts == 160
    # each key's values belong to that key alone, so exactly one attempt per key can win and all others lose
    assert written == len(keys) == 20
    assert refused == attempts - len(keys) == 140
    assert crm.customers.duplicate_groups() == []
    values = _values(crm)
    assert len(values) == 20
    assert set(values) == _expected_values(keys)
    emails = Counter(e for e, _ in values if e)
    phones = Counter(p for _, p in values if p)
    assert emails and phones
    assert max(emails.values()) == max(phones.values()) == 1


def test_concurrent_updates_to_the_same_email_never_make_a_duplicate(crm: CRM) -> None:
    own_ids = [
        [crm.customers.create({"name": f"Worker {w} customer {i}"})["id"] for i in range(ITERATIONS)]
        for w in range(WORKERS)
    ]
    outcomes = _run_workers(_update_worker, crm, own_ids)

    keys = {_key_of(i) for i in range(ITERATIONS)}
    written = sum(w for _, w, _ in outcomes)
    refused = sum(r for _, _, r in outcomes)
    # every customer is updated once and keeps what it got, so the first writer of an email holds it for good
    assert written == len(keys) == 20
    assert refused == WORKERS * ITERATIONS - len(keys) == 140
    assert crm.customers.duplicate_groups() == []
    emails = [e for e, _ in _values(crm) if e]
    assert sorted(emails) == sorted(f"member{k}@club.example" for k in keys)


def test_a_sqlite_writer_kept_waiting_too_long_gets_crmkits_error(tmp_path: Path) -> None:
    # SQLite's own behaviour, checked on a file of its own whichever database the suite runs on
    path = tmp_path / "busy.db"
    crm = CRM(f"sqlite:///{path}", load_entry_points=False)
    crm.create_schema()
    with crm.engine.connect() as conn:  # writers wait SQLITE_BUSY_TIMEOUT seconds by default
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT * 1000
    impatient = CRM(f"sqlite:///{path}", load_entry_points=False, engine_options={"connect_args": {"timeout": 0.05}})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(DatabaseBusyError, match="database is locked"):
            impatient.customers.create({"name": "Anna", "email": "anna@example.com"})
        assert crm.customers.count() == 0  # readers are not blocked (WAL)
    finally:
        holder.rollback()
        holder.close()
    assert impatient.customers.create({"name": "Anna", "email": "anna@example.com"})["id"] == 1
    crm.close()
    impatient.close()


def test_units_of_work_claiming_in_opposite_orders_fail_with_crmkits_error(crm: CRM) -> None:
    """Two units of work of an app each create two customers, in opposite orders. On PostgreSQL each first
    holds one claim (the barrier makes sure of it) and then waits for the other's: a deadlock, which the
    database breaks by aborting one; on SQLite writers queue, so the second finds the first's customers.
    Either way exactly one unit of work fails, with a crmkit error, and the other's customers are stored."""
    import threading

    postgres = crm.engine.dialect.name == "postgresql"
    barrier = threading.Barrier(2, timeout=60)
    outcomes: dict[str, BaseException | None] = {}

    def unit(name: str, emails: tuple[str, str]) -> None:
        try:
            with crm.transaction() as tx:
                crm.customers.create({"name": name, "email": emails[0]}, tx=tx)
                if postgres:
                    barrier.wait()
                crm.customers.create({"name": name, "email": emails[1]}, tx=tx)
            outcomes[name] = None
        except BaseException as exc:  # the assertion below says what it was
            outcomes[name] = exc

    threads = [
        threading.Thread(target=unit, args=("A", ("a@example.com", "b@example.com"))),
        threading.Thread(target=unit, args=("B", ("b@example.com", "a@example.com"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    failed = {name: exc for name, exc in outcomes.items() if exc is not None}
    assert len(outcomes) == 2 and len(failed) == 1, outcomes
    (error,) = failed.values()
    assert isinstance(error, DatabaseBusyError if postgres else DuplicateCustomerError), repr(error)
    (winner,) = set(outcomes) - set(failed)
    with crm.session() as s:
        stored = sorted(s.execute(select(Customer.name, Customer.email_normalized)).all())
    assert stored == [(winner, "a@example.com"), (winner, "b@example.com")]
