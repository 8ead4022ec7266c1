"""A club's settings. Every default below is documented in the plugin's README and can be overridden:
``CRM(url, plugins=[FitnessPlugin(FitnessConfig(expiring_days=21))])``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from crmkit.errors import CRMError

if TYPE_CHECKING:
    from crmkit import CRM


@attrs.frozen
class FitnessConfig:
    #: "Sessions balance low": a task when a membership with a session count has this many or fewer left.
    low_balance_sessions: int = 2
    #: "Membership expiring": days before the end of a membership without a renewal.
    expiring_days: int = 14
    #: "Visit frequency dropped": recent window, the baseline before it, and the share that counts as a drop.
    frequency_recent_days: int = 14
    frequency_baseline_days: int = 42
    frequency_drop_share: float = 0.5
    #: "No visit during adaptation" and "no visit when active", in days.
    adaptation_absent_days: int = 10
    active_absent_days: int = 21
    #: "Freeze ending": days before a freeze ends.
    freeze_ending_days: int = 3
    #: "Birthday": days ahead.
    birthday_days: int = 7
    #: How long the adaptation period lasts after joining, and the visits that make a member "active".
    adaptation_days: int = 30
    adaptation_visits: int = 4
    #: A member with no visit for this long (and no valid membership) is lapsed.
    lapsed_days: int = 45
    #: Share of each trigger's matches held out as a control group (0 = none).
    holdout: float = 0.1
    #: Days after a firing within which a renewal or a visit counts as success.
    goal_window_days: int = 21
    #: Where check-ins with no club in the export are put.
    default_club: str = "main"


def config_of(crm: CRM) -> FitnessConfig:
    """The configuration of the fitness plugin loaded into ``crm``."""
    config = getattr(crm.plugin_manager.get_plugin("fitness"), "config", None)
    if not isinstance(config, FitnessConfig):
        raise CRMError("the fitness plugin is not loaded into this CRM")
    return config
