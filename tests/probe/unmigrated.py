"""A plugin with tables and no migration branch: ``crmkit db upgrade`` must refuse it, not skip it."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table

from crmkit import FieldSpec, hookimpl

notes = Table(
    "nomig_notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("crm_customers.id", ondelete="CASCADE")),
    Column("body", String(200)),
)


class Unmigrated:
    plugin_name = "nomig"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [FieldSpec("locker")]

    @hookimpl
    def crmkit_register_models(self) -> list[Table]:
        return [notes]
