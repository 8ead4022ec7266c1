from __future__ import annotations

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
