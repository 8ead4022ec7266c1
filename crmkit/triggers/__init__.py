"""Retention triggers: declarations, set-based evaluation, firings, holdouts and effectiveness.

The declarations (``Trigger``, ``TriggerQuery``, actions, ``Goal``) and ``Firing``/``Effectiveness`` are
**public and stable** for plugins (see ``docs/plugin-api.md``)."""

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
