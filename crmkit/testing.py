"""A pytest kit for crmkit and for plugin authors.

Add ``pytest_plugins = ["crmkit.testing"]`` to your ``conftest.py`` and you get:

* ``crm_factory``: builds a fresh CRM with an empty schema per call, on SQLite in ``tmp_path`` by default,
  or on the database named by the ``CRMKIT_TEST_DATABASE_URL`` environment variable (each test gets its
  own PostgreSQL schema, dropped afterwards);
* ``crm``: a CRM without plugins, from ``crm_factory``;
* :func:`check_plugin`, contract checks any plugin gets for free;
* :func:`database_of`, the URL and engine options of a factory-built CRM, so that another process (a
  concurrency test's workers) can open the same database: ``CRM(url, engine_options=options)``.

If ``CRMKIT_TEST_DATABASE_URL`` is set and the database cannot be reached, the test run fails at start:
it never silently falls back to SQLite.
"""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from crmkit.app import CRM

ENV_VAR = "CRMKIT_TEST_DATABASE_URL"

# what crm_factory opened each CRM with; weak so a CRM closed and dropped by a test does not linger
_OPENED_WITH: weakref.WeakKeyDictionary[CRM, tuple[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def database_url() -> str | None:
    """The database the tests should run on, or ``None`` for SQLite."""
    return os.environ.get(ENV_VAR) or None


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
        _OPENED_WITH[crm] = (url, engine_options)
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
    """The URL and engine options ``crm_factory`` built ``crm`` with.

    A child process (``multiprocessing`` with the "spawn" context, say) opens the very same database, the
    test's own PostgreSQL schema included, with ``CRM(url, engine_options=options)``. Both are plain data,
    so they can be passed to a process. Raises ``KeyError`` for a CRM the factory did not build.
    """
    url, options = _OPENED_WITH[crm]
    return url, {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.items()}


def check_plugin(crm: CRM, name: str) -> None:
    """Contract checks for a loaded plugin: it is registered, its declarations are stamped with its
    name, its tables follow the naming rule and exist in the database, and a customer can be created
    and read back with its fields."""
    from sqlalchemy import inspect

    assert name in crm.plugins, f"plugin {name!r} is not loaded (loaded: {crm.plugins})"
    reg = crm.registry
    for spec in [*reg.fields.values(), *reg.stages.values(), *reg.activity_kinds.values()]:
        assert spec.owner, f"{spec!r} was not stamped with its plugin"
    existing = set(inspect(crm.engine).get_table_names())
    for table_name, (owner, _table) in reg.tables.items():
        if owner == name:
            assert table_name in existing, f"table {table_name} was not created"
    if name in crm.extension_tables:
        assert crm.extension_tables[name].name in existing
    initial = next(s.name for s in reg.stages.values() if s.initial)
    required = {f.name: _sample(f.type, f.choices) for f in reg.fields.values() if f.required and f.owner == name}
    record = crm.customers.create({"name": "Contract check", "stage": initial, **required}, allow_duplicate=True)
    for field in reg.fields_of(name):
        assert field.name in record, f"field {field.name!r} is missing from the customer record"


def _sample(kind: str, choices: tuple[str, ...]) -> Any:
    if choices:
        return choices[0]
    return {
        "string": "x",
        "text": "x",
        "integer": 1,
        "decimal": "1.00",
        "boolean": True,
        "date": "2020-01-01",
        "datetime": "2020-01-01T00:00:00+00:00",
    }[kind]
