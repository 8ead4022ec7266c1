"""Alembic: the migrations build exactly the schema the models describe, plugin branches included."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from probe import Probe
from sqlalchemy import inspect

from crmkit import CRM, migrate
from crmkit.cli import main

CORE_HEAD = "0004"


def _diff(crm: CRM) -> list[Any]:
    with crm.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [
            d
            for d in compare_metadata(ctx, crm.metadata)
            if d[0] != "remove_table" or d[1].name != migrate.VERSION_TABLE
        ]


def test_core_migrations_match_the_models(crm_factory: Any) -> None:
    crm = crm_factory(create_schema=False)
    migrate.upgrade(crm)
    assert migrate.current(crm) == migrate.heads(crm) == {CORE_HEAD}
    assert _diff(crm) == []


def test_plugin_branch_upgrades_with_the_core_and_matches_its_models(crm_factory: Any) -> None:
    crm = crm_factory([Probe()], create_schema=False)
    migrate.upgrade(crm)
    assert migrate.heads(crm) == {CORE_HEAD, "p0001"}
    assert migrate.up_to_date(crm)
    assert _diff(crm) == []
    crm.customers.create({"name": "Anna", "tier": "gold"})


def test_plugin_branch_downgrades_on_its_own(crm_factory: Any) -> None:
    crm = crm_factory([Probe()], create_schema=False)
    migrate.upgrade(crm)
    migrate.downgrade(crm, "probe@base")
    assert not migrate.up_to_date(crm)
    tables = set(inspect(crm.engine).get_table_names())
    assert "probe_customer" not in tables and "crm_customers" in tables
    assert migrate.current(crm) == {CORE_HEAD}


def test_create_schema_stamps_heads_so_upgrade_is_a_no_op(crm_factory: Any) -> None:
    crm = crm_factory([Probe()])
    assert migrate.up_to_date(crm)
    migrate.upgrade(crm)
    assert _diff(crm) == []


def test_cli_db_upgrade(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--url", url, "--no-plugins"])
    assert result.exit_code == 0, result.output
    assert f"at {CORE_HEAD}" in result.output
    result = CliRunner().invoke(main, ["db", "current", "--url", url, "--no-plugins"])
    assert f"current: {CORE_HEAD}" in result.output


def test_revision_for_a_plugin_whose_name_has_an_underscore(crm_factory: Any, tmp_path: Any) -> None:
    from crmkit import FieldSpec, hookimpl

    folder = tmp_path / "versions"
    folder.mkdir()

    class Dental:
        plugin_name = "dental_clinic"

        @hookimpl
        def crmkit_register_fields(self) -> list[FieldSpec]:
            return [FieldSpec("insurer")]

        @hookimpl
        def crmkit_register_migrations(self) -> Any:
            return folder

    crm = crm_factory([Dental()], create_schema=False)
    migrate.upgrade(crm)  # the core only: the plugin's branch has no revision yet
    migrate.revision(crm, "dental tables", branch="dental_clinic")
    [script] = folder.glob("*.py")
    text = script.read_text()
    assert "create_table('dental_clinic_customer'" in text and "create_table('crm_" not in text
    migrate.upgrade(crm)
    assert migrate.up_to_date(crm) and _diff(crm) == []
