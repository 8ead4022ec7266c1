from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from probe import Probe

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
    from crmkit.testing import fresh_database_url  # here: pytest imports (and rewrites) the plugin itself

    with fresh_database_url(tmp_path, "crmkit_cli") as url:
        yield url
