from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from probe import Probe
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crmkit import CRM

pytest_plugins = ["crmkit.testing"]


@pytest.fixture
def probe() -> Probe:
    """The test plugin that implements every hook; it records the events it is told about."""
    return Probe()


@pytest.fixture
def pcrm(crm_factory: Any, probe: Probe) -> CRM:
    """A CRM with the probe plugin, on a fresh database."""
    return crm_factory([probe])


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database a command can be given: a SQLite file that does not exist yet,
    or a PostgreSQL schema of its own (named in the URL, so a separate process finds it)."""
    from crmkit.testing import database_url  # here: pytest imports (and rewrites) the plugin module itself

    url = database_url()
    if url is None:
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    schema = f"crmkit_cli_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
