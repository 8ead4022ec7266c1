from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from crmkit_fitness import FitnessConfig, FitnessPlugin

from crmkit import CRM

pytest_plugins = ["crmkit.testing"]


@pytest.fixture
def club_factory(crm_factory: Callable[..., CRM]) -> Callable[..., CRM]:
    """``club_factory(**config)`` -> a CRM with the fitness plugin configured so, on a fresh database."""

    def make(**config: Any) -> CRM:
        return crm_factory([FitnessPlugin(FitnessConfig(**config))])

    return make


@pytest.fixture
def club(club_factory: Callable[..., CRM]) -> CRM:
    """A CRM with the fitness plugin and its default configuration (holdout off, so tests are exact)."""
    return club_factory(holdout=0.0)
