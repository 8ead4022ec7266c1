"""Alembic: the migrations build exactly the schema the models describe, plugin branches included."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from probe import Probe
from probe.unmigrated import Unmigrated
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from crmkit import CRM, migrate
from crmkit.cli import main
from crmkit.errors import MigrationError
from crmkit.testing import database_of

CORE_HEAD = "0010"


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
    with pytest.raises(MigrationError, match="dental_clinic"):
        migrate.upgrade(crm)  # the heads would leave dental_clinic_customer missing
    migrate.upgrade(crm, "crmkit@head")  # the core only: the plugin's branch has no revision yet
    migrate.revision(crm, "dental tables", branch="dental_clinic")
    [script] = folder.glob("*.py")
    text = script.read_text()
    assert "create_table('dental_clinic_customer'" in text and "create_table('crm_" not in text
    migrate.upgrade(crm)
    assert migrate.up_to_date(crm) and _diff(crm) == []


NOMIG_TABLES = ("nomig_customer", "nomig_notes")


def _cli_url(crm: CRM) -> str:
    """The test database as one ``--url`` (on PostgreSQL, the test's own schema in the URL's options)."""
    url, options = database_of(crm)
    search_path = options.get("connect_args", {}).get("options")
    if search_path is None:
        return url
    return make_url(url).update_query_dict({"options": search_path}).render_as_string(hide_password=False)


def test_upgrade_refuses_a_plugin_with_tables_but_no_migration_branch(crm_factory: Any) -> None:
    crm = crm_factory([Unmigrated(), Probe()], create_schema=False)
    with pytest.raises(MigrationError) as err:
        migrate.upgrade(crm)
    assert err.value.tables == {"nomig": NOMIG_TABLES}  # probe has its branch: not named
    message = str(err.value)
    assert "'nomig'" in message and "nomig_customer, nomig_notes" in message
    assert "crmkit_register_migrations" in message and "plugin-guide" in message
    assert "probe" not in message
    assert set(inspect(crm.engine).get_table_names()) == set()  # refused before migrating anything
    with pytest.raises(MigrationError):
        migrate.up_to_date(crm)


def test_the_core_alone_can_still_be_migrated_and_create_schema_still_creates_the_tables(crm_factory: Any) -> None:
    crm = crm_factory([Unmigrated()], create_schema=False)
    migrate.upgrade(crm, "crmkit@head")
    tables = set(inspect(crm.engine).get_table_names())
    assert "crm_customers" in tables and not tables & set(NOMIG_TABLES)
    built = crm_factory([Unmigrated()])  # create_all: every declared table, migrations or not
    assert set(NOMIG_TABLES) <= set(inspect(built.engine).get_table_names())
    assert built.customers.create({"name": "Anna", "locker": "17"})["locker"] == "17"


@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_cli_db_refuses_a_plugin_without_migration_branch(crm_factory: Any, command: str) -> None:
    crm = crm_factory(create_schema=False)
    migrate.upgrade(crm)  # a deployment migrated before the plugin was installed
    url = _cli_url(crm)
    result = CliRunner().invoke(
        main, ["db", command, "--url", url, "--no-plugins", "--plugin", "probe.unmigrated:Unmigrated"]
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "'nomig'" in lines[0] and "nomig_customer, nomig_notes" in lines[0]
    assert "crmkit_register_migrations" in lines[0]
    assert not set(NOMIG_TABLES) & set(inspect(crm.engine).get_table_names())
