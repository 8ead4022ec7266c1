"""crmkit: a pluggable CRM library.

from crmkit import CRM
crm = CRM("sqlite:///crm.db", plugins=[my_plugin])
crm.create_schema()
anna = crm.customers.create({"name": "Anna", "email": "anna@example.com"})
"""

from crmkit.access import PermissionSpec, RoleSpec
from crmkit.app import CRM
from crmkit.errors import (
    AccessDenied,
    CalendarConflictError,
    CRMError,
    DatabaseBusyError,
    DeliveryError,
    DuplicateCustomerError,
    NotFound,
    PermanentDeliveryError,
    PluginError,
    SuppressedCustomerError,
    TransitionError,
    UserRequired,
    ValidationError,
)
from crmkit.hookspecs import hookimpl
from crmkit.listing import Page
from crmkit.specs import (
    ActivityKindSpec,
    ActivityStatusSpec,
    FieldSpec,
    ImportContext,
    ImportedActivity,
    ImporterSpec,
    StageSpec,
    TransitionSpec,
)
from crmkit.unit import Transaction, Units

__all__ = [
    "CRM",
    "AccessDenied",
    "ActivityKindSpec",
    "ActivityStatusSpec",
    "CRMError",
    "CalendarConflictError",
    "DatabaseBusyError",
    "DeliveryError",
    "DuplicateCustomerError",
    "FieldSpec",
    "ImportContext",
    "ImportedActivity",
    "ImporterSpec",
    "NotFound",
    "Page",
    "PermanentDeliveryError",
    "PermissionSpec",
    "PluginError",
    "RoleSpec",
    "StageSpec",
    "SuppressedCustomerError",
    "Transaction",
    "TransitionError",
    "TransitionSpec",
    "Units",
    "UserRequired",
    "ValidationError",
    "hookimpl",
]
