"""The database schema of one CRM: the core tables, plus the tables of the plugins it loaded.

Each ``CRM`` gets its own ``MetaData`` so two CRMs with different plugins in one process never see each
other's tables. Plugin fields become a per-plugin extension table ``<plugin>_customer``: one row per
customer, one real typed column per field, so SQL can filter and index them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ForeignKey, MetaData, Table, insert, update

from crmkit.db.models import CORE_TABLES, NAMING_CONVENTION
from crmkit.fields import column_for
from crmkit.plugins import Registry


def extension_table_name(plugin: str) -> str:
    return f"{plugin}_customer"


def build_metadata(registry: Registry) -> tuple[MetaData, dict[str, Table]]:
    """Return the CRM's metadata and its extension tables keyed by plugin name."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for table in CORE_TABLES:
        table.to_metadata(metadata)
    for _owner, table in registry.tables.values():
        table.to_metadata(metadata)
    extensions: dict[str, Table] = {}
    for plugin in registry.plugins:
        specs = registry.fields_of(plugin)
        if not specs:
            continue
        extensions[plugin] = Table(
            extension_table_name(plugin),
            metadata,
            Column(
                "customer_id",
                ForeignKey("crm_customers.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            *(column_for(spec) for spec in specs),
            comment=f"Customer fields declared by plugin {plugin!r}",
        )
    return metadata, extensions


def write_extension(session: Any, table: Table, customer_id: int, values: dict[str, Any]) -> None:
    """Set plugin field values of one customer, creating the row if the customer predates the plugin."""
    if not values:
        return
    result = session.execute(update(table).where(table.c.customer_id == customer_id).values(**values))
    if result.rowcount == 0:
        session.execute(insert(table).values(customer_id=customer_id, **values))
