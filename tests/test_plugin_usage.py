"""The plugin that tests/typecheck/plugin_usage.py type-checks also loads and runs, so its spellings are real."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typecheck.plugin_usage import NutritionPlugin

from crmkit import ActivityKindSpec, FieldSpec, ValidationError
from crmkit.app import CRM
from crmkit.reports import Chart
from crmkit.triggers import Goal, Trigger


def test_the_typed_plugin_loads_with_its_sequences_as_tuples(crm_factory: Callable[..., CRM]) -> None:
    crm = crm_factory([NutritionPlugin()])
    assert crm.fields.declared()["coach"].choices == ("ann", "bo")
    assert crm.lifecycle.stages["plan_started"].parent == "active"
    trigger = crm.triggers.get("nutrition.lead_went_cold")
    assert trigger.stages == ("lead",)
    goal = crm.triggers.get("nutrition.no_weigh_in").goal
    assert goal is not None and goal.kinds == ("weigh_in",)
    report = crm.reports.get("nutrition.weigh_ins")
    assert [c.name for c in report.columns] == ["day", "weigh_ins"]
    assert [p.name for p in report.params] == ["since", "scale"]


def test_a_required_data_field_declared_as_a_tuple_is_required(crm_factory: Callable[..., CRM]) -> None:
    crm = crm_factory([NutritionPlugin()])
    customer = crm.customers.create({"name": "Ida"})
    with pytest.raises(ValidationError) as info:
        crm.activities.log({"customer_id": customer["id"], "kind": "weigh_in", "data": {}})
    assert list(info.value.errors) == ["grams"]
    logged = crm.activities.log({"customer_id": customer["id"], "kind": "weigh_in", "data": {"grams": 71500}})
    assert logged["data"]["grams"] == 71500


@pytest.mark.parametrize(
    "declare",
    [
        lambda: FieldSpec("diet", choices="vegan"),
        lambda: ActivityKindSpec("weigh_in", required="grams"),
        lambda: Goal("visit"),
        lambda: Trigger("x.y", condition=lambda q: q.customer.c.id > 0, stages="lead"),
        lambda: Chart("bar", x="day", y="weigh_ins"),
    ],
)
def test_a_lone_string_where_names_are_declared_is_refused(declare: Callable[[], Any]) -> None:
    # tuple("vegan") would be five one-letter names, accepted without a word
    with pytest.raises(TypeError, match="expected a tuple of names"):
        declare()
