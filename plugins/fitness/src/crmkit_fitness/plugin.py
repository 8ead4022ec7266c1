"""The fitness plugin: what a gym or studio adds to the core, declared through the core's hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from crmkit import (
    ActivityKindSpec,
    ActivityStatusSpec,
    FieldSpec,
    ImporterSpec,
    StageSpec,
    Transaction,
    TransitionSpec,
    hookimpl,
)
from crmkit.reports import Headline, Report
from crmkit.triggers import Trigger
from crmkit_fitness.config import FitnessConfig
from crmkit_fitness.headlines import fitness_headlines
from crmkit_fitness.models import MODELS
from crmkit_fitness.sessions import activities_ingested, activities_removed, activity_logged
from crmkit_fitness.triggers import retention_triggers, stage_triggers
from crmkit_fitness.turnstile import TURNSTILE

GOALS = ("weight_loss", "muscle", "endurance", "health", "rehab", "sport")
GOAL_LABELS = {
    "weight_loss": "Weight loss",
    "muscle": "Muscle gain",
    "endurance": "Endurance",
    "health": "Health",
    "rehab": "Rehabilitation",
    "sport": "Sport performance",
}


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("crmkit_fitness") / name))


class FitnessPlugin:
    """``FitnessPlugin(FitnessConfig(...))``; installed as the ``fitness`` entry point with the defaults."""

    plugin_name = "fitness"

    def __init__(self, config: FitnessConfig | None = None) -> None:
        self.config = config or FitnessConfig()

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("card_number", label="Club card", index=True, personal=True, max_length=40),
            FieldSpec("goal", label="Training goal", choices=GOALS, choice_labels=GOAL_LABELS),
            FieldSpec("interests", label="Interests", max_length=255),
            FieldSpec("trial_ends_on", "date", label="Trial ends"),
            FieldSpec("home_club", label="Home club", index=True, max_length=100),
        ]

    @hookimpl
    def crmkit_register_models(self) -> list[Any]:
        return list(MODELS)

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [
            StageSpec("trial", "Trial", parent="lead", order=15, initial=True, description="Trying the club."),
            StageSpec(
                "adaptation",
                "Adaptation",
                parent="active",
                order=21,
                initial=True,
                description="The first weeks after joining, when members most often drop out.",
            ),
            StageSpec("at_risk", "At risk", parent="active", order=25, description="Stopped coming."),
            StageSpec("lapsed", "Lapsed", parent="lost", order=45, description="Membership over, not coming."),
        ]

    @hookimpl
    def crmkit_register_transitions(self) -> list[TransitionSpec]:
        forward = [
            ("lead", "trial"),
            ("lead", "adaptation"),
            ("trial", "adaptation"),
            ("trial", "lost"),
            ("adaptation", "active"),
            ("adaptation", "at_risk"),
            ("active", "at_risk"),
            ("at_risk", "active"),
            ("adaptation", "lapsed"),
            ("active", "lapsed"),
            ("at_risk", "lapsed"),
            ("loyal", "at_risk"),
            ("loyal", "lapsed"),
        ]
        back = [("lapsed", "adaptation"), ("lost", "adaptation"), ("lapsed", "active")]
        return [TransitionSpec(a, b) for a, b in forward] + [
            TransitionSpec(a, b, requires_reason=True) for a, b in back
        ]

    @hookimpl
    def crmkit_register_activity_kinds(self) -> list[ActivityKindSpec]:
        return [
            ActivityKindSpec(
                "checkin",
                "Check-in",
                channel="in_person",
                data_fields=(
                    FieldSpec("club", required=True, max_length=100),
                    FieldSpec("door", max_length=40),
                    FieldSpec("class_id", "integer"),
                ),
                description="A turnstile check-in; the club, the door and the class if it was one.",
            ),
            ActivityKindSpec(
                "pt_session",
                "Personal training",
                channel="in_person",
                required=("owner_id",),
                data_fields=(FieldSpec("package_id", "integer"),),
                calendar=True,
            ),
        ]

    @hookimpl
    def crmkit_register_activity_statuses(self) -> list[ActivityStatusSpec]:
        # a class booked and cancelled inside the club's notice: the place was held, the member did not
        # come; clubs charge it or count it against a pack, and it is not a visit
        return [
            ActivityStatusSpec(
                "late_cancel",
                "Late cancellation",
                happened=False,
                frees_calendar=True,
                description="Cancelled inside the club's notice period: not a visit, may be charged.",
            )
        ]

    @hookimpl
    def crmkit_activity_logged(self, tx: Transaction, activity: Mapping[str, Any]) -> None:
        activity_logged(tx.session, activity)

    @hookimpl
    def crmkit_activities_ingested(
        self, tx: Transaction, count: int, kinds: Mapping[str, int], activities: Sequence[Mapping[str, Any]]
    ) -> None:
        if kinds.get("checkin") or kinds.get("pt_session"):
            activities_ingested(tx.session, activities)

    @hookimpl
    def crmkit_register_importers(self) -> list[ImporterSpec]:
        return [TURNSTILE]

    @hookimpl
    def crmkit_activities_removed(self, tx: Transaction, activities: Sequence[Mapping[str, Any]]) -> None:
        activities_removed(tx.session, activities)

    @hookimpl
    def crmkit_register_triggers(self) -> list[Trigger]:
        return [*stage_triggers(self.config), *retention_triggers(self.config)]

    @hookimpl
    def crmkit_register_reports(self) -> list[Report]:
        from crmkit_fitness.reports import fitness_reports

        return fitness_reports()

    @hookimpl
    def crmkit_register_headlines(self) -> list[Headline]:
        return fitness_headlines()

    @hookimpl
    def crmkit_register_definitions(self) -> Path:
        return _package_dir("kpis.md")

    @hookimpl
    def crmkit_register_template_dirs(self) -> list[Path]:
        return [_package_dir("templates")]

    @hookimpl
    def crmkit_register_migrations(self) -> Path:
        return _package_dir("migrations") / "versions"

    @hookimpl
    def crmkit_cli_commands(self) -> list[Any]:
        from crmkit_fitness.cli import fitness_group

        return [fitness_group]

    @hookimpl
    def crmkit_run_demo(self, path: Path, echo: Callable[[str], None], size: int) -> bool:
        from crmkit_fitness.demo import run_demo

        run_demo(path, echo=echo, members=size, config=self.config)
        return True
