"""Retention triggers: declarations, set-based evaluation, firings, holdouts and effectiveness."""

from crmkit.triggers.engine import Triggers
from crmkit.triggers.query import TriggerQuery
from crmkit.triggers.spec import (
    Effectiveness,
    Firing,
    Goal,
    MessageAction,
    RunReport,
    TaskAction,
    Trigger,
    TriggerResult,
)

__all__ = [
    "Effectiveness",
    "Firing",
    "Goal",
    "MessageAction",
    "RunReport",
    "TaskAction",
    "Trigger",
    "TriggerQuery",
    "TriggerResult",
    "Triggers",
]
