"""Storage: the core's models, column types and the per-CRM schema."""

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

__all__ = [
    "Activity",
    "Base",
    "Contact",
    "CustomField",
    "Customer",
    "CustomerClaim",
    "Merge",
    "StageHistory",
    "Task",
    "User",
]
