"""Plugin code as plugin authors write it, checked by mypy in CI (``[tool.mypy] files`` in pyproject.toml).

Nothing here is called by mypy, and pytest collects it only through ``tests/test_plugin_usage.py``, which
loads the plugin into a CRM. The point is the spellings: tuples and lists literal where the declarations
take sequences (``required=("grams",)``, ``choices=[...]``, ``columns=[Column(...)]``), hooks implemented
with their documented signatures. If a change to crmkit's declarations makes this file fail type checking,
every plugin written like it would fail too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement

from crmkit import (
    ActivityKindSpec,
    FieldSpec,
    StageSpec,
    Transaction,
    TransitionSpec,
    ValidationError,
    hookimpl,
)
from crmkit.reports import Chart, Column, Param, Report, ReportContext
from crmkit.triggers import Goal, TaskAction, Trigger, TriggerQuery

DAY = dt.timedelta(days=1)
DIETS = ("none", "vegetarian", "vegan")


def _no_visit_for_two_weeks(q: TriggerQuery) -> ColumnElement[bool]:
    return sa.or_(q.last("weigh_in").is_(None), q.last("weigh_in") < q.ago(14 * DAY))


def _weigh_ins(ctx: ReportContext, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield {"day": params["since"], "weigh_ins": 0}


class NutritionPlugin:
    plugin_name = "nutrition"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("diet", choices=DIETS, default="none"),
            FieldSpec("goal_weight", "decimal", label="Goal weight (kg)"),
            FieldSpec("coach", choices=["ann", "bo"]),
            FieldSpec("allergies", "text", personal=True),
        ]

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [StageSpec("plan_started", "Plan started", parent="active", order=21)]

    @hookimpl
    def crmkit_register_transitions(self) -> Iterable[TransitionSpec]:
        return (TransitionSpec("active", "plan_started"), TransitionSpec("plan_started", "lost"))

    @hookimpl
    def crmkit_register_activity_kinds(self) -> list[ActivityKindSpec]:
        return [
            ActivityKindSpec(
                "weigh_in",
                "Weigh-in",
                channel="in_person",
                required=("grams",),
                data_fields=(FieldSpec("grams", "integer"), FieldSpec("scale", choices=("home", "clinic"))),
            ),
            ActivityKindSpec("consultation", required=["owner_id"], data_fields=[], calendar=True),
        ]

    @hookimpl
    def crmkit_register_triggers(self) -> list[Trigger]:
        return [
            Trigger(
                "nutrition.no_weigh_in",
                condition=_no_visit_for_two_weeks,
                stages=("plan_started",),
                task=TaskAction("Call {{ customer.name }}", "no weigh-in for two weeks", due_in=2 * DAY),
                goal=Goal(("weigh_in",), window=7 * DAY),
                evidence={"last_weigh_in": lambda q: q.last("weigh_in")},
                holdout=0.1,
            ),
            Trigger("nutrition.lead_went_cold", condition=lambda q: q.in_stage_since(30 * DAY), stages=["lead"]),
        ]

    @hookimpl
    def crmkit_register_reports(self) -> list[Report]:
        return [
            Report(
                "nutrition.weigh_ins",
                "Weigh-ins per day",
                data=_weigh_ins,
                params=[Param("since", "date", required=True), Param("scale", choices=("home", "clinic"))],
                columns=[Column("day", "Day", "date"), Column("weigh_ins", "Weigh-ins", "integer")],
                charts=(Chart("bar", x="day", y=("weigh_ins",)),),
            )
        ]

    @hookimpl
    def crmkit_activity_logged(self, tx: Transaction, activity: Mapping[str, Any]) -> None:
        if activity["kind"] == "weigh_in" and activity["data"]["grams"] <= 0:
            raise ValidationError({"data.grams": ["must be positive"]})
        tx.after_commit(lambda: None)
