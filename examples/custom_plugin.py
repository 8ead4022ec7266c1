"""A custom plugin for a dental clinic, loaded into a CRM and exercised piece by piece.

    python examples/custom_plugin.py [DATABASE_URL]

DATABASE_URL is any SQLAlchemy URL, e.g. ``sqlite:///dental.db`` or
``postgresql+psycopg://user@localhost/clinic``. Give an empty database: the script creates its own
tables and refuses to run on one that already has customers. Without a URL it uses a temporary SQLite
file that is removed afterwards.

The plugin declares:

* customer fields with choices and personal-data flags (stored as real columns of ``dental_customer``);
* two sub-stages (``new_patient`` under ``lead``, ``recall_due`` under ``active``) and their transitions;
* a ``treatment`` activity kind that requires a dentist, a tooth and a procedure;
* a table of its own, ``dental_chart``, one row per treated tooth;
* event hooks: every treatment writes a chart row in the same transaction, a treatment of a tooth that
  was already extracted is refused (which rolls the whole write back), and letters to patients are
  queued with ``tx.after_commit`` so none is sent for a write that did not happen.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

import crmkit
from crmkit import (
    CRM,
    ActivityKindSpec,
    FieldSpec,
    StageSpec,
    Transaction,
    TransitionError,
    TransitionSpec,
    ValidationError,
    hookimpl,
)
from crmkit.db import Base
from crmkit.db.types import UTCDateTime, utcnow

PROCEDURES = ("check_up", "cleaning", "filling", "root_canal", "crown", "extraction")

#: FDI notation: quadrant 1-4 (permanent teeth), position 1-8.
PERMANENT_TEETH = frozenset(10 * quadrant + position for quadrant in range(1, 5) for position in range(1, 9))


class ChartEntry(Base):
    """The dental chart: what was done to which tooth. Named ``dental_...`` as the plugin contract requires."""

    __tablename__ = "dental_chart"

    id: Mapped[int] = mapped_column(primary_key=True)
    # a foreign key to crm_customers.id is all it takes for a merge to carry these rows to the survivor
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("crm_customers.id", ondelete="CASCADE"), index=True)
    tooth: Mapped[int]
    procedure: Mapped[str] = mapped_column(sa.String(20))
    activity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_activities.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DentalPlugin:
    """The plugin. An instance, so that it can hold the outbox it delivers letters to."""

    plugin_name = "dental"

    def __init__(self, outbox: list[str]) -> None:
        # stands in for an email gateway; only ever written to after a commit
        self.outbox = outbox

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("insurance", label="Insurance", choices=("none", "public", "private"), default="none"),
            FieldSpec("insurance_number", label="Insurance number", max_length=40, personal=True),
            FieldSpec("allergies", "text", label="Allergies", personal=True),
            FieldSpec("recall_months", "integer", label="Recall interval in months", default=6),
            FieldSpec("last_checkup", "date", label="Last check-up", index=True),
        ]

    @hookimpl
    def crmkit_register_models(self) -> list[type]:
        return [ChartEntry]

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [
            StageSpec("new_patient", "New patient", parent="lead", order=15, initial=True),
            StageSpec("recall_due", "Recall due", parent="active", order=25),
        ]

    @hookimpl
    def crmkit_register_transitions(self) -> list[TransitionSpec]:
        return [
            TransitionSpec("new_patient", "active"),
            TransitionSpec("new_patient", "lost"),
            TransitionSpec("active", "recall_due"),
            TransitionSpec("recall_due", "active"),
            TransitionSpec("recall_due", "lost"),
        ]

    @hookimpl
    def crmkit_register_activity_kinds(self) -> list[ActivityKindSpec]:
        return [
            ActivityKindSpec(
                "treatment",
                "Treatment",
                channel="in_person",
                required=("owner_id", "tooth", "procedure"),
                data_fields=(
                    FieldSpec("tooth", "integer"),
                    FieldSpec("procedure", choices=PROCEDURES),
                    FieldSpec("anaesthetic", "boolean"),
                ),
                calendar=True,
                description="A procedure on one tooth, booked in the dentist's calendar.",
            )
        ]

    @hookimpl
    def crmkit_customer_created(self, tx: Transaction, customer: Mapping[str, Any]) -> None:
        name = customer["name"]
        tx.after_commit(lambda: self.outbox.append(f"welcome letter to {name}"))

    @hookimpl
    def crmkit_activity_logged(self, tx: Transaction, activity: Mapping[str, Any]) -> None:
        if activity["kind"] != "treatment":
            return
        customer_id = activity["customer_id"]
        tooth, procedure = activity["data"]["tooth"], activity["data"]["procedure"]
        if tooth not in PERMANENT_TEETH:
            raise ValidationError({"data.tooth": [f"{tooth} is not a tooth number (FDI 11-48)"]}, "invalid treatment")
        extracted = tx.session.scalar(
            sa.select(ChartEntry.at).where(
                ChartEntry.customer_id == customer_id, ChartEntry.tooth == tooth, ChartEntry.procedure == "extraction"
            )
        )
        if extracted is not None:
            # raising here rolls back the activity that was just inserted, not only the chart row
            raise ValidationError({"data.tooth": [f"tooth {tooth} was extracted on {extracted:%Y-%m-%d}"]})
        tx.session.add(
            ChartEntry(
                customer_id=customer_id,
                tooth=tooth,
                procedure=procedure,
                activity_id=activity["id"],
                at=dt.datetime.fromisoformat(activity["occurred_at"]),
            )
        )
        tx.after_commit(lambda: self.outbox.append(f"aftercare leaflet ({procedure}, tooth {tooth})"))


def show(title: str) -> None:
    print(f"\n== {title}")


def run(url: str) -> int:
    outbox: list[str] = []
    # only this plugin: installed crmkit plugins would change what the demo prints
    with CRM(url, plugins=[DentalPlugin(outbox)], load_entry_points=False) as crm:
        crm.create_schema()
        if crm.customers.count():
            print(f"refusing to run: {crm!r} already has customers; give an empty database", file=sys.stderr)
            return 2
        return demo(crm, outbox)


def demo(crm: CRM, outbox: list[str]) -> int:
    show("plugin loaded")
    print(f"plugins: {', '.join(crm.plugins)}")
    fields = crm.fields.declared().values()
    print(f"fields: {', '.join(f.name for f in fields)}")
    print(f"personal data: {', '.join(f.name for f in fields if f.personal)}")
    print(f"dentist's tables: {', '.join(sorted(name for name in crm.metadata.tables if name.startswith('dental_')))}")
    print(f"from new_patient a patient may go to: {', '.join(crm.lifecycle.allowed_targets('new_patient'))}")

    show("patients")
    dentist = crm.users.create({"name": "Dr. Ada Molar", "role": "manager"})
    anna = crm.customers.create(
        {
            "name": "Anna Berg",
            "email": "anna@example.com",
            "stage": "new_patient",
            "insurance": "private",
            "insurance_number": "PRV-1180-22",
            "allergies": "penicillin",
        }
    )
    ben = crm.customers.create({"name": "Ben Ortiz", "phone": "+1 415 555 0102", "stage": "new_patient"})
    for patient in (anna, ben):
        print(
            f"{patient['name']}: stage={patient['stage']} lifecycle={patient['lifecycle']}"
            f" insurance={patient['insurance']} recall_months={patient['recall_months']}"
        )

    show("rejected input")
    try:
        crm.customers.create({"name": "Chen Wu", "insurance": "gold"})
    except ValidationError as exc:
        print(f"insurance 'gold' rejected: {exc.errors['insurance'][0]}")
    try:
        crm.lifecycle.move(ben["id"], "recall_due", cause="six months passed")
    except TransitionError as exc:
        print(f"move rejected: {exc}")
    try:
        crm.activities.log({"customer_id": anna["id"], "kind": "treatment", "owner_id": dentist["id"]})
    except ValidationError as exc:
        print(f"treatment rejected: {', '.join(f'{k}: {v[0]}' for k, v in sorted(exc.errors.items()))}")

    show("treatments (each writes a chart row in the same transaction)")
    monday = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    for hour, tooth, procedure in ((0, 36, "extraction"), (1, 14, "filling")):
        crm.activities.log(
            {
                "customer_id": anna["id"],
                "kind": "treatment",
                "owner_id": dentist["id"],
                "occurred_at": monday + dt.timedelta(hours=hour),
                "duration_min": 45,
                "data": {"tooth": tooth, "procedure": procedure, "anaesthetic": True},
            }
        )
    crm.lifecycle.move(anna["id"], "active", cause="first treatment", actor_id=dentist["id"])
    crm.customers.update(anna["id"], {"last_checkup": "2026-03-02"})
    for entry in chart(crm, anna["id"]):
        print(f"chart: tooth {entry.tooth} {entry.procedure}")

    show("a write the hook refuses is rolled back")
    print(f"activities of Anna before: {len(crm.activities.for_customer(anna['id']))}")
    letters_before = len(outbox)
    try:
        crm.activities.log(
            {
                "customer_id": anna["id"],
                "kind": "treatment",
                "owner_id": dentist["id"],
                "occurred_at": monday + dt.timedelta(days=7),
                "data": {"tooth": 36, "procedure": "crown"},
            }
        )
    except ValidationError as exc:
        print(f"crown on tooth 36 refused: {exc.errors['data.tooth'][0]}")
    print(f"activities of Anna after: {len(crm.activities.for_customer(anna['id']))}")
    print(f"chart rows of Anna: {len(chart(crm, anna['id']))}")
    print(f"letters queued by the refused write: {len(outbox) - letters_before}")

    show("calendar")
    try:
        crm.activities.log(
            {
                "customer_id": ben["id"],
                "kind": "treatment",
                "owner_id": dentist["id"],
                "status": "planned",
                "occurred_at": monday + dt.timedelta(minutes=30),
                "duration_min": 30,
                "data": {"tooth": 21, "procedure": "check_up"},
            }
        )
    except crmkit.CalendarConflictError as exc:
        print(f"booking refused: overlaps {len(exc.conflicting_ids)} treatment(s) of the dentist")

    show("plugin fields are real columns")
    dental = crm.extension_tables["dental"]
    query = crm.customers.select().where(dental.c.insurance == "private", dental.c.last_checkup.is_not(None))
    with crm.session() as session:
        for row in session.execute(query).mappings():
            print(f"private patient checked up: {row['name']} on {row['last_checkup']}")

    show("recall")
    crm.lifecycle.move(anna["id"], "recall_due", cause="recall interval reached")
    for move in crm.lifecycle.history(anna["id"]):
        print(f"history: {move['from_stage']} -> {move['to_stage']} ({move['cause']})")

    show("sent after commit")
    for letter in outbox:
        print(f"outbox: {letter}")
    return 0


def chart(crm: CRM, customer_id: int) -> list[ChartEntry]:
    with crm.session() as session:
        query = sa.select(ChartEntry).where(ChartEntry.customer_id == customer_id).order_by(ChartEntry.id)
        return list(session.scalars(query))


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        return run(argv[1])
    with tempfile.TemporaryDirectory() as folder:
        return run(f"sqlite:///{Path(folder) / 'dental.db'}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
