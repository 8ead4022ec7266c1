"""The declared plugin API: the modules and names a plugin may import, and nothing else.

Everything listed here is public and stable: it changes only with a deprecation, announced in the changelog
one release ahead. Every other module of crmkit (``crmkit.unit``, ``crmkit.customers``, ``crmkit.db.models``
by that path, ``crmkit.db.functions``...) is internal to plugins and may change in any release. ``docs/plugin-api.md``
describes each module; a test checks that the page names every module and name below, and that the fitness
edition imports nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from crmkit import sql

_ERRORS = (
    "AccessDenied",
    "CRMError",
    "CalendarConflictError",
    "DatabaseBusyError",
    "DeliveryError",
    "DuplicateCustomerError",
    "NotFound",
    "PermanentDeliveryError",
    "PluginError",
    "TransitionError",
    "UserRequired",
    "ValidationError",
)

#: Module -> the names a plugin may import from it.
PLUGIN_API: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "crmkit": frozenset(
            {
                "CRM",
                "ActivityKindSpec",
                "ActivityStatusSpec",
                "PermissionSpec",
                "RoleSpec",
                "FieldSpec",
                "ImportContext",
                "ImportedActivity",
                "ImporterSpec",
                "StageSpec",
                "TransitionSpec",
                "Transaction",
                "hookimpl",
                *_ERRORS,
            }
        ),
        "crmkit.errors": frozenset(_ERRORS),
        "crmkit.access": frozenset({"Actor", "PermissionSpec", "RoleSpec", "CORE_PERMISSIONS", "SCOPES"}),
        "crmkit.db": frozenset(
            {
                "Activity",
                "Base",
                "BigId",
                "Contact",
                "Customer",
                "JSONData",
                "StageHistory",
                "Task",
                "User",
                "UTCDateTime",
                "utcnow",
            }
        ),
        # the column types by the path Alembic writes into a plugin's generated migrations
        "crmkit.db.types": frozenset({"BigId", "JSONData", "UTCDateTime", "utcnow"}),
        "crmkit.limits": frozenset(
            {
                "Day",
                "Email",
                "Int",
                "JSONObject",
                "Moment",
                "Money",
                "Text",
                "MAX_DATE",
                "MIN_DATE",
                "MAX_MOMENT",
                "MIN_MOMENT",
                "check",
                "id_filter",
                "load",
                "require_id",
                "text_problem",
            }
        ),
        "crmkit.tables": frozenset({"MAX_PAGE", "TableService", "UnitsOfWork"}),
        # the module exists for plugins: everything it exports is declared
        "crmkit.sql": frozenset(sql.__all__),
        "crmkit.reports": frozenset(
            {
                "Chart",
                "Column",
                "EFFECTIVENESS_CHARTS",
                "EFFECTIVENESS_COLUMNS",
                "EFFECTIVENESS_PARAMS",
                "GROUPS",
                "Headline",
                "PERIOD",
                "Param",
                "Report",
                "ReportContext",
                "effectiveness_rows",
            }
        ),
        "crmkit.triggers": frozenset(
            {
                "Effectiveness",
                "Firing",
                "Goal",
                "MessageAction",
                "TaskAction",
                "Trigger",
                "TriggerQuery",
            }
        ),
        "crmkit.imports.values": frozenset({"ParseOptions", "parse_value"}),
        "crmkit.cli": frozenset({"CommandError", "crm_options"}),
        "crmkit.testing": frozenset({"check_plugin", "database_of", "run_in_processes"}),
    }
)
