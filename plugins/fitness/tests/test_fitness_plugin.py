"""The fitness plugin passes the core's contract checks and migrates on its own branch."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from crmkit_fitness import FitnessConfig, FitnessPlugin

from crmkit import CRM, migrate
from crmkit.testing import check_plugin


def test_contract(crm_factory: Any) -> None:
    check_plugin(crm_factory([FitnessPlugin(FitnessConfig())], create_schema=False), "fitness")


def test_installed_entry_point_loads_the_plugin() -> None:
    assert "fitness" in CRM("sqlite://").plugins


def test_migrations_build_the_models(crm_factory: Any) -> None:
    crm = crm_factory([FitnessPlugin(FitnessConfig())], create_schema=False)
    migrate.upgrade(crm)
    assert migrate.up_to_date(crm)
    with crm.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), crm.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == migrate.VERSION_TABLE)] == []
