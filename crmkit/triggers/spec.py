"""Trigger declarations: what to look for, how often, and what to do about it."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import attrs

from crmkit.specs import names_tuple

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from crmkit.triggers.query import TriggerQuery
    from crmkit.unit import Transaction

_TRIGGER_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
#: What the tasks and messages of a trigger name as their ``source`` (a column of 100 characters).
SOURCE_PREFIX = "trigger:"
#: The longest trigger name: one whose ``source`` still fits its column.
MAX_NAME = 100 - len(SOURCE_PREFIX)


def _trigger_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _TRIGGER_NAME.match(value) or len(value) > MAX_NAME:
        raise ValueError(f"trigger name must look like 'plugin.what_happens', got {value!r}")


def _share(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be a share in [0, 1), got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[dt.timedelta], value: dt.timedelta) -> None:
    if value <= dt.timedelta(0):
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class TaskAction:
    """Create a task. ``title`` and ``reason`` are jinja2 templates rendered with ``customer`` (the flat
    record, plugin fields included), the trigger's ``evidence`` values, ``as_of`` and ``trigger``.
    The task goes to the customer's owner unless ``assignee_id`` is given (a customer without an owner
    gets an unassigned task). It is due ``due_in`` after the run's ``as_of`` (not after the wall clock):
    one day by default, so a run at 08:00 makes tasks due at 08:00 the next day. It has no reminder."""

    title: str
    reason: str = ""
    due_in: dt.timedelta = dt.timedelta(days=1)
    assignee_id: int | None = None


@attrs.frozen
class MessageAction:
    """Emit a message on a channel. It is written to the outbox in the firing's transaction and handed
    to the ``crmkit_send_message`` hook after commit; the gateway is the app's or a plugin's.

    The contact policy judges it by its ``purpose`` (``marketing`` by default; ``service``, ``reminders``;
    ``None`` for a message that does not reach the customer, such as a webhook to another system): consent,
    caps, quiet hours (see :mod:`crmkit.contact_policy`). A message the policy refuses is dropped, or, with
    ``refused_task``, becomes that task for staff (a call instead of an SMS the member did not agree to)."""

    channel: str
    body: str
    subject: str = ""
    purpose: str | None = "marketing"
    refused_task: TaskAction | None = None


@attrs.frozen
class Goal:
    """What counts as success after a firing: an activity of one of ``kinds`` within ``window``."""

    kinds: tuple[str, ...] = attrs.field(converter=names_tuple)
    window: dt.timedelta = attrs.field(default=dt.timedelta(days=30), validator=_positive)


@attrs.frozen
class Trigger:
    """A retention trigger.

    ``condition`` receives a :class:`~crmkit.triggers.query.TriggerQuery` and returns a SQLAlchemy boolean
    expression over the customer, its plugin fields and activity aggregates; it is evaluated by the
    database for all customers at once. ``stages`` limits it to customers in those stages: a customer
    matches when its stage or its lifecycle (the core stage above it) is named, so a core stage includes
    its sub-stages. The default, ``()``, applies no stage filter: every customer, ``lost`` ones
    included, is evaluated. A customer fires at most once per ``cooldown``. ``holdout`` keeps that share
    of the matches as a control group: the firing is recorded, no action is taken.

    Actions, all optional: ``task``, ``move_to`` (a stage; customers whose stage cannot move there are
    left alone), ``message``, and ``call`` (a Python callable ``call(tx, firing)`` for anything else).
    ``evidence`` names extra expressions (``q.last("visit")``...) computed for the matched customers and
    passed to the templates, so every task explains itself.
    """

    name: str = attrs.field(validator=_trigger_name)
    condition: Callable[[TriggerQuery], ColumnElement[bool]]
    description: str = ""
    stages: tuple[str, ...] = attrs.field(default=(), converter=names_tuple)
    cooldown: dt.timedelta = attrs.field(default=dt.timedelta(days=7), validator=_positive)
    priority: int = 50
    task: TaskAction | None = None
    move_to: str | None = None
    message: MessageAction | None = None
    call: Callable[[Transaction, Firing], None] | None = None
    evidence: Mapping[str, Callable[[TriggerQuery], Any]] = attrs.field(factory=dict)
    holdout: float = attrs.field(default=0.0, validator=_share)
    goal: Goal | None = None
    owner: str = ""
    #: what a person reads for it in reports ("Trial without a purchase"); its name, made readable, if empty
    label: str = ""


class Firing(TypedDict):
    """One customer matched by one trigger in one run, as the actions, ``call`` and the
    ``crmkit_trigger_fired`` hook see it: a plain, JSON-safe dict.

    ``customer`` is the customer's record as ``crm.customers.get`` returns it (core, plugin and run-time
    fields); ``evidence`` the trigger's evidence values by name, JSON-safe too (datetimes and dates as ISO
    8601 strings, decimals as strings); ``as_of`` the run's moment as an ISO 8601 string in UTC. The other
    keys are those of a row of :meth:`crmkit.triggers.Triggers.firings`.
    """

    id: int
    trigger: str
    customer_id: int
    run_id: int | None
    as_of: str
    window: int
    held_out: bool
    goal_until: str | None
    customer: dict[str, Any]
    evidence: dict[str, Any]


@attrs.frozen
class TriggerResult:
    """What a run did with one trigger."""

    trigger: str
    matched: int = 0
    fired: int = 0
    held_out: int = 0
    failed: int = 0
    errors: tuple[str, ...] = ()
    #: what the contact policy made of the trigger's messages: ``{"sent": 40, "held": 3, "dropped": 2}``
    contacts: Mapping[str, int] = attrs.field(factory=dict)
    #: why messages were held, moved to tasks or dropped, with how many each
    contact_reasons: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen
class RunReport:
    as_of: dt.datetime
    dry_run: bool
    results: tuple[TriggerResult, ...]

    @property
    def fired(self) -> int:
        return sum(r.fired for r in self.results)

    def __getitem__(self, name: str) -> TriggerResult:
        for r in self.results:
            if r.trigger == name:
                return r
        raise KeyError(name)


#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054
#: Below this many firings in either group, an uplift is "not enough data".
MIN_SAMPLE = 30


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (``n`` > 0)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval (his method 10) of the difference ``k1/n1 - k2/n2``; ``None`` when a
    group is empty. It keeps its coverage with small groups and rates near 0 or 1, where the textbook
    normal interval does not."""
    if not n1 or not n2:
        return None
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


@attrs.frozen
class Effectiveness:
    """Per trigger (and, broken down, per action): how many fired and converted, against the held-out
    control group, with the uplift's 95% interval and whether the groups are big enough to say anything."""

    trigger: str
    fired: int
    converted: int
    held_out: int
    held_out_converted: int
    #: ``all``, or what was done for these firings: ``message sent``, ``message held``, ``message dropped``,
    #: ``message task`` (the contact policy's outcome)
    action: str = "all"
    min_sample: int = MIN_SAMPLE

    @property
    def enough(self) -> bool:
        """Whether both groups have ``min_sample`` firings: below that an uplift says nothing."""
        return self.fired >= self.min_sample and self.held_out >= self.min_sample

    @property
    def uplift_interval(self) -> tuple[float, float] | None:
        """The 95% interval of :attr:`uplift` (Newcombe's hybrid score), ``None`` without both groups."""
        return newcombe(self.converted, self.fired, self.held_out_converted, self.held_out)

    @property
    def verdict(self) -> str:
        """``not enough data``, ``works`` (the interval is above 0), ``backfires`` (below 0) or
        ``no clear effect`` (it spans 0)."""
        interval = self.uplift_interval
        if not self.enough or interval is None:
            return "not enough data"
        if interval[0] > 0:
            return "works"
        if interval[1] < 0:
            return "backfires"
        return "no clear effect"

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.fired if self.fired else None

    @property
    def held_out_rate(self) -> float | None:
        return self.held_out_converted / self.held_out if self.held_out else None

    @property
    def uplift(self) -> float | None:
        """Conversion rate of the contacted minus that of the control group, in percentage points / 100."""
        if self.conversion_rate is None or self.held_out_rate is None:
            return None
        return self.conversion_rate - self.held_out_rate
