"""A pytest kit for crmkit and for plugin authors. ``check_plugin``, ``run_in_processes`` and ``database_of``
are **public and stable** (see ``docs/plugin-api.md``).

Add ``pytest_plugins = ["crmkit.testing"]`` to your ``conftest.py`` and you get:

* ``crm_factory``: builds a fresh CRM with an empty schema per call, on SQLite in ``tmp_path`` by default,
  or on the database named by the ``CRMKIT_TEST_DATABASE_URL`` environment variable (each test gets its
  own PostgreSQL schema, dropped afterwards);
* ``crm``: a CRM without plugins, from ``crm_factory``;
* :func:`check_plugin` (from :mod:`crmkit.plugin_check`), contract checks any plugin gets for free: its
  migrations build a fresh database, a valid value of every field it declares round-trips, an activity
  of each of its kinds is logged and each of its reports renders;
* :func:`run_in_processes`, for concurrency tests with real processes started together, and
  :func:`database_of`, which opens a test's database from another process.

If ``CRMKIT_TEST_DATABASE_URL`` is set and the database cannot be reached, the test run fails at start:
it never silently falls back to SQLite.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crmkit.app import CRM
from crmkit.plugin_check import check_plugin as check_plugin

ENV_VAR = "CRMKIT_TEST_DATABASE_URL"


def database_url() -> str | None:
    """The database the tests should run on, or ``None`` for SQLite."""
    return os.environ.get(ENV_VAR) or None


@contextmanager
def fresh_database_url(folder: Path, prefix: str = "crmkit_db", filename: str = "crm.db") -> Iterator[str]:
    """The URL of a fresh, empty database another process can be given: a SQLite file in ``folder`` that
    does not exist yet, or on PostgreSQL a schema of its own named ``<prefix>_<random>`` (named in the URL,
    so a separate process finds it), dropped afterwards."""
    url = database_url()
    if url is None:
        yield f"sqlite:///{folder / filename}"
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def pytest_report_header(config: Any) -> str:
    return f"crmkit test database: {database_url() or 'sqlite (per-test file)'}"


def pytest_sessionstart(session: Any) -> None:
    url = database_url()
    if url is None:
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise pytest.UsageError(f"{ENV_VAR}={url} is set but the database cannot be reached: {exc}") from exc
    finally:
        engine.dispose()


class _Databases:
    """Hands out isolated databases: a SQLite file each, or a PostgreSQL schema each."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp = tmp_path
        self._schemas: list[str] = []
        self._crms: list[CRM] = []

    def new(self, **options: Any) -> tuple[str | None, dict[str, Any]]:
        url = database_url()
        if url is None:
            path = self._tmp / f"crm-{uuid.uuid4().hex[:8]}.db"
            return f"sqlite:///{path}", {}
        schema = f"crmkit_t_{uuid.uuid4().hex[:12]}"
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        self._schemas.append(schema)
        return url, {"connect_args": {"options": f"-csearch_path={schema}"}}

    def close(self) -> None:
        for crm in self._crms:
            crm.close()
        url = database_url()
        if url is None or not self._schemas:
            return
        engine = create_engine(url)
        with engine.begin() as conn:
            for schema in self._schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def crm_factory(tmp_path: Path) -> Iterator[Callable[..., CRM]]:
    """``crm_factory(plugins=[...], **kwargs)`` -> a CRM with its schema created on a fresh database.

    Installed entry-point plugins are not loaded unless ``load_entry_points=True`` is passed, so tests
    see exactly the plugins they name. Pass ``create_schema=False`` to get an empty database.
    """
    dbs = _Databases(tmp_path)

    def make(plugins: Iterable[object] = (), *, create_schema: bool = True, **kwargs: Any) -> CRM:
        url, engine_options = dbs.new()
        kwargs.setdefault("load_entry_points", False)
        crm = CRM(url, plugins=plugins, engine_options=engine_options, **kwargs)
        assert url is not None
        dbs._crms.append(crm)
        if create_schema:
            crm.create_schema()
        return crm

    yield make
    dbs.close()


@pytest.fixture
def crm(crm_factory: Callable[..., CRM]) -> CRM:
    """A CRM with the core only, on a fresh database."""
    return crm_factory()


def database_of(crm: CRM) -> tuple[str, dict[str, Any]]:
    """The URL and engine options that open ``crm``'s database from another process: the SQLite file, or
    the test's own PostgreSQL schema (through ``search_path``). Plain data, so they can be passed to a
    process: ``CRM(url, engine_options=options)``."""
    url = crm.engine.url.render_as_string(hide_password=False)
    if crm.engine.dialect.name != "postgresql":
        return url, {}
    with crm.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return url, {"connect_args": {"options": f"-csearch_path={schema}"}}


def run_in_processes(
    target: Callable[..., Any], crm: CRM, jobs: Sequence[tuple[Any, ...]], *, timeout: float = 120
) -> list[Any]:
    """Run ``target(database, start, *job)`` for every job in a process of its own and return what each
    returned, in the order of ``jobs``.

    The processes are real ("spawn": nothing is inherited but the arguments, so ``target`` must be a
    module-level function). ``database`` is :func:`database_of` ``crm``; ``target`` opens its own CRM on it
    and calls ``start()`` when it is ready: every process waits there until all are, so the racing part
    begins at the same moment. A worker that raises fails the test with its traceback; every wait is
    bounded by ``timeout`` seconds, so a hang fails instead of stalling the suite.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(jobs)), ctx.Queue()
    database = database_of(crm)
    procs = [
        ctx.Process(target=_worker, args=(target, database, barrier, out, n, job, timeout))
        for n, job in enumerate(jobs)
    ]
    for proc in procs:
        proc.start()
    outcomes = dict(out.get(timeout=timeout) for _ in procs)
    for proc in procs:
        proc.join(timeout)
    failures = [value for ok, value in outcomes.values() if not ok]
    assert not failures, "a worker process failed:\n" + "\n".join(failures)
    return [outcomes[n][1] for n in range(len(jobs))]


def _worker(
    target: Callable[..., Any],
    database: tuple[str, dict[str, Any]],
    barrier: Any,
    out: Any,
    n: int,
    job: tuple[Any, ...],
    timeout: float,
) -> None:
    try:
        out.put((n, (True, target(database, functools.partial(barrier.wait, timeout), *job))))
    except BaseException:
        barrier.abort()  # the others must not wait for a worker that will never arrive
        out.put((n, (False, traceback.format_exc())))
