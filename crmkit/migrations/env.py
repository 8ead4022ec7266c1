"""Alembic environment for crmkit: the target metadata is the ``CRM``'s own, plugins included."""

from __future__ import annotations

from typing import Any

from alembic import context

from crmkit.migrate import VERSION_TABLE

config = context.config
crm = config.attributes["crm"]
branch = config.attributes.get("branch")


def owner_of(table_name: str) -> str:
    """The branch a table belongs to: the core, or the plugin that declared it (names may hold ``_``)."""
    if table_name.startswith("crm_"):
        return "crmkit"
    for plugin, table in crm.extension_tables.items():
        if table.name == table_name:
            return plugin
    declared = crm.registry.tables.get(table_name)
    return declared[0] if declared else ""


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """When writing a revision for one branch, compare only that branch's tables."""
    if name == VERSION_TABLE:
        return False
    if branch is None or type_ != "table":
        table = getattr(obj, "table", None)
        if branch is not None and table is not None:
            return owner_of(table.name) == branch
        return True
    return owner_of(name or "") == branch


def run() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=crm.metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
