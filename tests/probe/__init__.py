"""A test plugin that implements every hook of the contract and records what it is told."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from crmkit import (
    ActivityKindSpec,
    ActivityStatusSpec,
    FieldSpec,
    ImportContext,
    ImportedActivity,
    ImporterSpec,
    PermissionSpec,
    RoleSpec,
    StageSpec,
    TransitionSpec,
    hookimpl,
)
from crmkit.db import Base
from crmkit.reports import Chart, Column, Headline, Param, Report, ReportContext
from crmkit.triggers import TaskAction, Trigger

HERE = Path(__file__).parent


class ProbeNote(Base):
    __tablename__ = "probe_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm_customers.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(String(200))


def gold_customers(ctx: ReportContext, since: dt.datetime, until: dt.datetime) -> int:
    """Gold customers created in the period: a headline a test can count by hand."""
    c = ctx.table("crm_customers")
    f = ctx.table("probe_customer")
    query = (
        select(func.count())
        .select_from(c.join(f, f.c.customer_id == c.c.id))
        .where(
            f.c.tier == "gold",
            c.c.created_at >= since,
            c.c.created_at < until,
            ctx.customer_scope(c),
        )
    )
    return _scalar(ctx, query)


def _scalar(ctx: ReportContext, query: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def tiers(ctx: Any, params: Any) -> Any:
    table = ctx.table("probe_customer")
    query = (
        select(table.c.tier, func.count().label("customers"))
        .where(func.coalesce(table.c.score, 0) >= params["min_score"])
        .group_by(table.c.tier)
        .order_by(table.c.tier)
    )
    with ctx.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


class Probe:
    plugin_name = "probe"

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.sent: list[str] = []

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("tier", choices=("bronze", "silver", "gold"), default="bronze"),
            FieldSpec("score", "integer", index=True),
            FieldSpec("joined_on", "date"),
            FieldSpec("vip", "boolean"),
            FieldSpec("medical_notes", "text", personal=True),
            FieldSpec("balance", "decimal"),
            FieldSpec("last_seen", "datetime"),
        ]

    @hookimpl
    def crmkit_register_models(self) -> list[Any]:
        return [ProbeNote]

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [
            StageSpec("trial", parent="lead", initial=True),
            StageSpec("at_risk", parent="active"),
        ]

    @hookimpl
    def crmkit_register_transitions(self) -> list[TransitionSpec]:
        return [
            TransitionSpec("trial", "active"),
            TransitionSpec("active", "at_risk"),
            TransitionSpec("at_risk", "active"),
            TransitionSpec("at_risk", "lost"),
        ]

    @hookimpl
    def crmkit_register_activity_statuses(self) -> list[ActivityStatusSpec]:
        return [ActivityStatusSpec("no_show", "No-show", frees_calendar=True)]

    @hookimpl
    def crmkit_register_activity_kinds(self) -> list[ActivityKindSpec]:
        return [
            ActivityKindSpec(
                "session",
                channel="in_person",
                required=("owner_id", "room"),
                data_fields=(FieldSpec("room", choices=("a", "b"), required=True), FieldSpec("weight", "decimal")),
                calendar=True,
            )
        ]

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:
        return [RoleSpec("probe_auditor", "Probe auditor", {"customers:read", "probe_secrets:read"}, scope="all")]

    @hookimpl
    def crmkit_register_permissions(self) -> list[PermissionSpec]:
        return [PermissionSpec("probe_secrets:read", "read the probe's secrets", roles=("admin", "manager"))]

    @hookimpl
    def crmkit_register_importers(self) -> list[ImporterSpec]:
        return [
            ImporterSpec(
                "probe_notes",
                kind="chat",
                parse=_parse_note,
                columns={"ref": ("reference",), "email": ("mail",), "text": ()},
                required=("ref", "email"),
                label="Probe notes",
            )
        ]

    @hookimpl
    def crmkit_register_triggers(self) -> list[Trigger]:
        return [
            Trigger(
                "probe.ping",
                condition=lambda q: q.field("score") >= 10,
                task=TaskAction("Ping {{ customer.name }}", "score {{ customer.score }}"),
            )
        ]

    @hookimpl
    def crmkit_register_reports(self) -> list[Report]:
        return [
            Report(
                "probe.summary",
                "Customers by tier",
                data=tiers,
                columns=[Column("tier"), Column("customers", type="integer")],
                params=[Param("min_score", "integer", default=0)],
                charts=[Chart("bar", x="tier", y=("customers",), title="Customers by tier")],
                description="How many customers are in each tier.",
                group="members",
                definition="probe-summary",
            )
        ]

    @hookimpl
    def crmkit_register_headlines(self) -> list[Headline]:
        return [Headline("probe.gold", "Gold customers", gold_customers, report="probe.summary", order=5)]

    @hookimpl
    def crmkit_register_definitions(self) -> Path:
        return HERE / "definitions.md"

    @hookimpl
    def crmkit_register_template_dirs(self) -> list[Path]:
        return [HERE / "templates"]

    @hookimpl
    def crmkit_register_migrations(self) -> Path:
        return HERE / "migrations"

    @hookimpl
    def crmkit_customer_created(self, tx: Any, customer: Any) -> None:
        if customer["name"] == "VETO":
            raise RuntimeError("probe vetoed this customer")
        tx.session.add(ProbeNote(customer_id=customer["id"], body=f"welcome {customer['name']}"))
        self.events.append(("created", customer["id"]))
        tx.after_commit(lambda: self.sent.append(f"welcome email to {customer['name']}"))

    @hookimpl
    def crmkit_customer_updated(self, customer: Any, changes: Any) -> None:
        if changes.get("score") == 666:
            raise RuntimeError("probe vetoed this update")
        self.events.append(("updated", (customer["id"], dict(changes))))

    @hookimpl
    def crmkit_stage_changed(self, change: Any) -> None:
        if change["to_stage"] == "lost" and change["cause"] == "VETO":
            raise RuntimeError("probe vetoed this move")
        self.events.append(("stage", (change["from_stage"], change["to_stage"], change["cause"])))

    @hookimpl
    def crmkit_activity_logged(self, activity: Any) -> None:
        if activity.get("subject") == "VETO":
            raise RuntimeError("probe vetoed this activity")
        self.events.append(("activity", activity["id"]))

    @hookimpl
    def crmkit_activities_removed(self, tx: Any, activities: Any) -> None:
        self.events.append(("activities_removed", [a["external_id"] for a in activities]))

    @hookimpl
    def crmkit_activities_ingested(self, count: int, kinds: Any) -> None:
        if "note" in kinds:
            raise RuntimeError("probe refuses notes in bulk")
        self.events.append(("ingested", (count, dict(kinds))))

    @hookimpl
    def crmkit_customers_merged(self, survivor_id: int, merged_id: int) -> None:
        self.events.append(("merged", (survivor_id, merged_id)))

    @hookimpl
    def crmkit_trigger_fired(self, trigger: Any, firings: Any) -> None:
        if any(f["customer"]["name"] == "VETO-TRIGGER" for f in firings):
            raise RuntimeError("probe vetoed this firing")
        self.events.append(("fired", (trigger.name, [f["customer"]["id"] for f in firings])))

    @hookimpl
    def crmkit_send_message(self, message: Any) -> bool | None:
        if message["channel"] != "sms":
            return None
        if "FAIL" in message["body"]:
            raise ConnectionError("sms gateway down")
        self.sent.append(f"sms to {message['customer_id']}: {message['body']}")
        return True

    @hookimpl
    def crmkit_run_demo(self, path: Path, size: int) -> bool | None:
        self.events.append(("demo", (str(path), size)))
        return None  # not this plugin's demo: the next implementation (the core's) runs

    @hookimpl
    def crmkit_cli_commands(self) -> list[Any]:
        return []  # the command line asks installed plugins only; the probe is never installed

    @hookimpl
    def crmkit_normalize_phone(self, raw: str) -> str | None:
        return raw.lower() if raw.lower().startswith("ext-") else None

    def of(self, kind: str) -> list[Any]:
        return [payload for name, payload in self.events if name == kind]


def _parse_note(values: dict[str, Any], context: ImportContext) -> ImportedActivity:
    """A note per line, about the customer with this email; a line whose text says "bad" is refused."""
    text = str(values.get("text") or "")
    if "bad" in text:
        raise ValueError(f"text: {text!r} is refused by the probe")
    return ImportedActivity(key=str(values["ref"]), customer=("email", str(values["email"])), values={"subject": text})
