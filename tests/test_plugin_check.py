"""check_plugin checks what a deployment relies on, and names the problem when a plugin breaks it."""

from __future__ import annotations

from typing import Any

import pytest
from probe import Probe, ProbeNote
from probe.unmigrated import Unmigrated
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, select, update
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table

from crmkit import FieldSpec, hookimpl
from crmkit.db import Activity, Customer
from crmkit.reports import Column as ReportColumn
from crmkit.reports import Report
from crmkit.testing import check_plugin

orphans = Table(
    "probe_orphans",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("crm_customers.id", ondelete="CASCADE")),
)


class WithOrphanTable(Probe):
    """Declares a table that its migrations never create."""

    @hookimpl
    def crmkit_register_models(self) -> list[Any]:
        return [ProbeNote, orphans]


class WithUnmigratedField(Probe):
    """Declares a field that no revision adds to probe_customer."""

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [*super().crmkit_register_fields(), FieldSpec("nickname")]


class LosingScore(Probe):
    """Writes back a different score than it was given: the value does not round-trip."""

    @hookimpl
    def crmkit_customer_created(self, tx: Any, customer: Any) -> None:
        ext = sql_table("probe_customer", sql_column("customer_id"), sql_column("score"))
        tx.session.execute(update(ext).where(ext.c.customer_id == customer["id"]).values(score=ext.c.score - 1))


class BrokenReport(Probe):
    @hookimpl
    def crmkit_register_reports(self) -> list[Report]:
        def data(crm: Any, params: Any) -> Any:
            raise KeyError("tier_name")

        return [Report("probe.broken", "Broken", data=data, columns=[ReportColumn("tier")])]

    @hookimpl
    def crmkit_register_headlines(self) -> list[Any]:
        return []  # the probe's headline names the report this plugin replaces


def test_the_probe_passes_in_its_own_stage_with_every_field_type_an_activity_and_its_report(crm_factory: Any) -> None:
    probe = Probe()
    crm = crm_factory([probe], create_schema=False)
    check_plugin(crm, "probe")
    with crm.engine.connect() as conn:
        customers = conn.execute(select(Customer.id, Customer.stage)).all()
        kinds = conn.execute(select(Activity.kind, Activity.customer_id)).all()
    assert len(customers) == 1
    [(customer_id, stage)] = customers
    assert stage == "trial"  # the probe's own initial stage, not the core's lead
    assert kinds == [("session", customer_id)]  # probe's only kind, logged for that customer
    assert probe.of("created") == [customer_id]
    # every field type FieldSpec knows is declared by the probe, so each one was round-tripped
    assert {f.type for f in crm.registry.fields_of("probe")} == {
        "string",
        "text",
        "integer",
        "decimal",
        "boolean",
        "date",
        "datetime",
    }


@pytest.mark.parametrize(
    ("plugin", "problem"),
    [
        (WithOrphanTable(), "table 'probe_orphans' does not exist after the migrations"),
        (WithUnmigratedField(), "table 'probe_customer' lacks columns ['nickname'] after the migrations"),
        (LosingScore(), "field 'score' (integer) did not round-trip: wrote 2147483647, read back 2147483646"),
        (BrokenReport(), "report 'probe.broken' does not render as html: KeyError"),
        (Unmigrated(), "plugin 'nomig' has tables (nomig_customer, nomig_notes) but no migration branch"),
    ],
    ids=["table-missing", "column-missing", "value-lost", "report-broken", "no-branch"],
)
def test_a_broken_plugin_fails_naming_the_problem(crm_factory: Any, plugin: Any, problem: str) -> None:
    crm = crm_factory([plugin], create_schema=False)
    name = plugin.plugin_name
    with pytest.raises(AssertionError) as err:
        check_plugin(crm, name)
    assert str(err.value).startswith(f"check_plugin({name!r}): ")
    assert problem in str(err.value)


def test_a_database_built_by_create_schema_is_refused(crm_factory: Any) -> None:
    crm = crm_factory([Probe()])
    with pytest.raises(AssertionError, match="needs a CRM on an empty database"):
        check_plugin(crm, "probe")
