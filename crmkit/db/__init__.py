"""Storage: the core's models, column types and the per-CRM schema.

**Public and stable** for plugins (see ``docs/plugin-api.md``): build a plugin's tables on :class:`Base`
(so foreign keys to ``crm_customers.id`` resolve), use :class:`UTCDateTime` for timestamps (aware UTC on
both databases), :func:`utcnow` for "now", and read the core's tables (:class:`Customer`, :class:`Activity`,
:class:`StageHistory`, :class:`User`, ...) in reports and trigger queries. Write to the core's tables only
through the CRM's services.
"""

from crmkit.db.models import (
    Activity,
    Base,
    Contact,
    Customer,
    CustomerClaim,
    CustomField,
    Merge,
    StageHistory,
    Task,
    User,
)
from crmkit.db.types import BigId, JSONData, UTCDateTime, utcnow

__all__ = [
    "Activity",
    "Base",
    "BigId",
    "Contact",
    "CustomField",
    "Customer",
    "CustomerClaim",
    "JSONData",
    "Merge",
    "StageHistory",
    "Task",
    "UTCDateTime",
    "User",
    "utcnow",
]
