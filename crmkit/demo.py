"""A short demo: a SQLite CRM with a small plugin, some customers, and where each stands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from crmkit.app import CRM
from crmkit.hookspecs import hookimpl
from crmkit.specs import FieldSpec, StageSpec, TransitionSpec


class StudioPlugin:
    """A tiny vertical for the demo: a yoga studio with a membership level and a trial stage."""

    plugin_name = "studio"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("membership", choices=("drop_in", "monthly", "annual"), default="drop_in"),
            FieldSpec("classes_left", "integer"),
        ]

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [StageSpec("trial", "Trial class", parent="lead", initial=True)]

    @hookimpl
    def crmkit_register_transitions(self) -> list[TransitionSpec]:
        return [TransitionSpec("trial", "active"), TransitionSpec("trial", "lost")]


PEOPLE = [
    ("Anna Berg", "anna@example.com", "+1 415 555 0101", "trial", "monthly"),
    ("Ben Ortiz", "ben@example.com", "+1 415 555 0102", "lead", "drop_in"),
    ("Chen Wu", "chen@example.com", "+1 415 555 0103", "trial", "annual"),
    ("Dana Kim", "dana@example.com", "+1 415 555 0104", "lead", "drop_in"),
]


def run(url: str, echo: Callable[[str], None] = print) -> CRM:
    crm = CRM(url, plugins=[StudioPlugin()], load_entry_points=False)
    crm.create_schema()
    coach = crm.users.create({"name": "Maya (coach)", "role": "manager", "branch": "downtown"})
    ids = []
    for name, email, phone, stage, membership in PEOPLE:
        record = crm.customers.create(
            {
                "name": name,
                "email": email,
                "phone": phone,
                "stage": stage,
                "membership": membership,
                "owner_id": coach["id"],
                "source": "instagram",
            }
        )
        ids.append(record["id"])
        crm.activities.log(
            {
                "customer_id": record["id"],
                "kind": "visit",
                "owner_id": coach["id"],
                "occurred_at": dt.datetime(2026, 1, 5, 18, len(ids) * 10, tzinfo=dt.UTC),
            },
            allow_conflict=True,
        )
    crm.lifecycle.move(ids[0], "active", cause="bought a monthly pass", actor_id=coach["id"])
    crm.tasks.create(
        {
            "title": "Welcome call",
            "reason": "new monthly member",
            "customer_id": ids[0],
            "assignee_id": coach["id"],
            "due_at": "2026-01-06T10:00:00Z",
        }
    )
    echo(f"{'customer':<12} {'stage':<8} {'lifecycle':<10} membership")
    for c in crm.customers.iter():
        echo(f"{c['name']:<12} {c['stage']:<8} {c['lifecycle']:<10} {c['membership']}")
    for task in crm.tasks.open(assignee_id=coach["id"]):
        echo(f"task for {coach['name']}: {task['title']} ({task['reason']}), due {task['due_at']}")
    return crm
