"""Exceptions raised by crmkit.

Every error a caller can act on has its own class so an HTTP layer can map it to a status code without
parsing messages. **Public and stable** for plugins and apps (see ``docs/plugin-api.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any


class CRMError(Exception):
    """Base class of every error crmkit raises on purpose."""


class PluginError(CRMError):
    """A plugin is malformed: unknown hook, bad signature, bad or conflicting declaration.

    Raised while the :class:`~crmkit.CRM` is being built, so a broken plugin never serves a request.
    """

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class AccessDenied(CRMError):
    """The acting user's role does not allow the call (``permission``, such as ``customers:write``), or the
    customer is outside the customers their role reaches. Nothing was written."""

    def __init__(self, actor: str, permission: str, detail: str | None = None) -> None:
        self.actor = actor
        self.permission = permission
        super().__init__(detail or f"{actor} may not {permission}")


class UserRequired(CRMError):
    """This CRM refuses calls that do not say which user makes them (``CRM(..., require_user=True)``)."""

    def __init__(self) -> None:
        super().__init__("this CRM needs a user for every call: use crm.as_user(user_id) or crm.transaction(actor_id=)")


class ValidationError(CRMError):
    """Input failed validation. ``errors`` maps each field to its list of problems; nothing was written."""

    def __init__(self, errors: Mapping[str, Any], message: str = "invalid input") -> None:
        self.errors = dict(errors)
        details = "; ".join(f"{field}: {_flatten(problem)}" for field, problem in sorted(self.errors.items()))
        super().__init__(f"{message}: {details}" if details else message)


def _flatten(problem: Any) -> str:
    if isinstance(problem, (list, tuple)):
        return " ".join(_flatten(p) for p in problem)
    if isinstance(problem, Mapping):
        return ", ".join(f"{k}: {_flatten(v)}" for k, v in problem.items())
    return str(problem)


class SuppressedCustomerError(ValidationError):
    """The email or phone of a new customer (or a customer's new value) belongs to a person whose data was
    erased at their request: a suppression entry refuses them (``crm.privacy``)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        errors = {
            name: [f"belongs to a person whose data was erased on {day}; their suppression entry refuses it"]
            for name, day in fields.items()
        }
        super().__init__(errors, "suppressed customer")


class NotFound(CRMError):
    """The record asked for does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class TransitionError(CRMError):
    """A lifecycle move that the declared transitions do not allow."""

    def __init__(self, source: str | None, target: str, reason: str = "transition not allowed") -> None:
        self.source = source
        self.target = target
        super().__init__(f"{reason}: {source!r} -> {target!r}")


class DuplicateCustomerError(CRMError):
    """A customer with the same normalised email or phone already exists."""

    def __init__(self, existing_ids: list[int], matched_on: list[str]) -> None:
        self.existing_ids = existing_ids
        self.matched_on = matched_on
        super().__init__(
            f"duplicate customer: matches {existing_ids} on {', '.join(matched_on)}"
            " (pass allow_duplicate=True to keep both, or merge them)"
        )


class CalendarConflictError(CRMError):
    """A calendar activity overlaps another one of the same owner."""

    def __init__(self, owner_id: int, conflicting_ids: list[int]) -> None:
        self.owner_id = owner_id
        self.conflicting_ids = conflicting_ids
        super().__init__(
            f"calendar conflict for owner {owner_id}: overlaps activities {conflicting_ids}"
            " (pass allow_conflict=True to book anyway)"
        )


class DatabaseBusyError(CRMError):
    """A concurrent writer got in the way; nothing of this call was written. Retry.

    SQLite lets one writer in at a time: the others wait up to the engine's busy timeout (crmkit's
    default is ``crmkit.app.SQLITE_BUSY_TIMEOUT`` seconds) and then get this error instead of the
    driver's "database is locked". PostgreSQL aborts one of two transactions that wait for each other
    (a deadlock, e.g. two units of work of an app claiming the same emails in opposite orders) or that
    cannot be serialised; the aborted one gets this error instead of the driver's.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"the database is busy with another writer; nothing was written, try again ({detail})")


class MigrationError(CRMError):
    """The migrations cannot bring the database to what the loaded plugins declare: some plugin has tables
    that no migration creates (it has no migration branch). ``tables`` maps each such plugin to its
    tables."""

    def __init__(self, tables: Mapping[str, Sequence[str]]) -> None:
        self.tables = {plugin: tuple(names) for plugin, names in tables.items()}
        listed = "; ".join(
            f"plugin {plugin!r} has tables ({', '.join(names)}) but no migration branch"
            for plugin, names in sorted(self.tables.items())
        )
        branch = next(iter(self.tables)) if len(self.tables) == 1 else "NAME"
        super().__init__(
            f"{listed}, so upgrading would leave them missing: declare crmkit_register_migrations returning a"
            " folder whose first revision is labelled with the plugin's name (see docs/plugin-guide.md,"
            " section Migrations); to write that revision, run 'crmkit db upgrade --revision crmkit@head'"
            f" then 'crmkit db revision --branch {branch} -m MESSAGE'"
        )


class DeliveryError(CRMError):
    """A gateway could not deliver an outbox message this time: the outbox tries it again after its backoff.

    A ``crmkit_send_message`` implementation may raise any exception for this; raise this one to say when
    to try again at the earliest. ``retry_after`` (what an HTTP ``Retry-After`` header asks for) pushes the
    next attempt back to at least that long after this one, when it is longer than the backoff. The attempt
    still counts towards the outbox's ``MAX_ATTEMPTS``. The message's recorded error is
    ``"DeliveryError: <reason>"``: keep the reason short and free of secrets.
    """

    def __init__(self, reason: str, *, retry_after: dt.timedelta | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class PermanentDeliveryError(DeliveryError):
    """The gateway refused an outbox message for good (an endpoint that is gone, a recipient that does not
    exist, a request it will never accept): the message is marked ``failed`` at once, never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
