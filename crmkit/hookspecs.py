"""The plugin contract: every hook crmkit calls, documented one by one.

A plugin is any object or module with functions marked ``@crmkit.hookimpl`` whose names match the hooks
below. A plugin implements only the hooks it needs and may accept any subset of a hook's arguments.

There are three families:

* **Declarations** (``crmkit_register_*``) are called once while a :class:`~crmkit.CRM` is built. They
  return frozen attrs specs; the core builds tables, schemas and rules from them. They must not touch the
  database or keep state. Every spec is stamped with the name of the plugin that returned it, and two
  plugins declaring the same name fail at load with a :class:`~crmkit.errors.PluginError` naming both.
* **Events** (``crmkit_customer_created``, ``crmkit_stage_changed``, ...) are notifications called
  *inside* the write's transaction, after the row is flushed. A plugin may write more rows through
  ``tx.session``; if it raises, the whole write is rolled back and the exception reaches the caller.
  Anything that leaves the database (an email, a webhook) must be registered with
  ``tx.after_commit(callback)`` so nothing is sent for a write that did not happen. Never call
  ``commit()`` or ``rollback()`` on ``tx.session``.
* **Decisions** (``firstresult=True``) return a value; the first plugin that returns something other than
  ``None`` wins, and the core's default implementation runs last.

Hook names are listed in :data:`HOOK_NAMES`; the hook reference in ``docs/hooks.md`` is generated from the
docstrings below; a test fails if a hook is undocumented or a parameter has no ``:param:`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from sqlalchemy import Table

    from crmkit.access import PermissionSpec, RoleSpec
    from crmkit.reports import Headline, Report
    from crmkit.specs import ActivityKindSpec, ActivityStatusSpec, FieldSpec, ImporterSpec, StageSpec, TransitionSpec
    from crmkit.triggers import Firing, Trigger
    from crmkit.unit import Transaction

PROJECT = "crmkit"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's function or method as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- declarations -------------------------------------------------------------------------------------


@hookspec
def crmkit_register_fields() -> Iterable[FieldSpec]:
    """Declare customer fields that this plugin adds.

    Called once, when the CRM is built. Return :class:`~crmkit.FieldSpec` objects. Each becomes a real,
    typed column of the plugin's extension table ``<plugin>_customer`` (one row per customer), so triggers
    and reports can filter and index it in SQL. The fields join the customer's flat input and output: a
    ``card_number`` field is passed as ``crm.customers.create({"name": ..., "card_number": "A-17"})``.

    A field name must be unique across the core and every loaded plugin.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_models() -> Iterable[Table | type]:
    """Declare the plugin's own tables (memberships, listings, bookings...).

    Return SQLAlchemy ``Table`` objects or declarative classes (build them on ``crmkit.db.Base`` so
    relationships to ``Customer`` resolve). Table names must start with ``<plugin>_``. The tables are
    created by ``crm.create_schema()`` only when the plugin is loaded, and any foreign key to
    ``crm_customers.id`` is re-pointed to the survivor when two customers are merged.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_stages() -> Iterable[StageSpec]:
    """Declare lifecycle stages.

    Core stages are ``lead``, ``active``, ``loyal`` and ``lost``. A plugin adds sub-stages whose
    ``parent`` is one of them (fitness: ``trial`` under ``lead``, ``at_risk`` under ``active``). A stage
    with ``initial=True`` may be given when a customer is created. Pair with
    :func:`crmkit_register_transitions` to say how customers move in and out of the new stages.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_transitions() -> Iterable[TransitionSpec]:
    """Declare allowed moves between stages.

    Only declared moves are allowed; anything else raises :class:`~crmkit.errors.TransitionError`.
    Mark backward moves (``lost -> active``, a win-back) with ``requires_reason=True``: they must be
    given a cause. Both ends must be stages declared by the core or a loaded plugin.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_activity_kinds() -> Iterable[ActivityKindSpec]:
    """Declare kinds of activity (a salon ``appointment``, a real-estate ``showing``...).

    Each kind names the activity columns and data fields it requires (a meeting needs a time, a contact,
    a subject and a result), its default channel, and whether it occupies its owner's calendar (checked
    for overlaps when booked). The core declares call, email, sms, chat, meeting, visit, purchase,
    payment and note.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_activity_statuses() -> Iterable[ActivityStatusSpec]:
    """Declare statuses an activity can have beyond the core's (a gym's ``no_show``, a salon's
    ``late_cancel``).

    Each status says whether it counts as **happened** (then triggers' activity helpers, goals and KPIs count
    it, as they count ``done``) and whether it **frees the calendar** (as ``cancelled`` and ``missed`` do).
    The core declares ``planned``, ``in_progress``, ``done`` (the only one that happened), ``cancelled`` and
    ``missed``. A name declared twice fails at load time, naming both plugins.

    .. versionadded:: 0.2
    """


@hookspec
def crmkit_register_importers() -> Iterable[ImporterSpec]:
    """Declare importers (:class:`~crmkit.ImporterSpec`): the files an integration sends, each line turned
    into an activity of one kind (a turnstile's check-ins, a phone system's calls, a till's receipts).

    The core runs every importer the same way (``crm.imports.run(name, file)``, ``crmkit import NAME FILE``):
    streamed reading of CSV, XLSX and JSON lines, customer matching, idempotent storage, dry run, reject
    file, record and revert. Names are unique across plugins (prefix yours: ``fitness_turnstile``). The
    core declares ``telephony`` and ``receipts``.

    .. versionadded:: 0.2
    """


@hookspec
def crmkit_register_roles() -> Iterable[RoleSpec]:
    """Declare roles (:class:`~crmkit.access.RoleSpec`): a name, the permissions it grants and the customers
    it reaches (``all``, those of the user's ``branches``, or only those the user ``own``\\ s).

    The core declares ``admin`` (every permission, every customer), ``manager``, ``operator`` and ``viewer``
    (see ``docs/access.md``). A role's permissions must be declared, by the core or a plugin. Names are
    unique across plugins.

    .. versionadded:: 0.3
    """


@hookspec
def crmkit_register_permissions() -> Iterable[PermissionSpec]:
    """Declare permissions (:class:`~crmkit.access.PermissionSpec`) that a plugin's own code checks with
    ``crm.access.require(name, tx)``, such as ``fitness_memberships:write``, each with the roles that have it.

    A permission is ``<resource>:<action>``; the core's are ``customers:read``, ``customers:read_personal``,
    ``customers:write`` and the others listed in ``docs/access.md``. Everything not granted is refused.

    .. versionadded:: 0.3
    """


@hookspec
def crmkit_register_triggers() -> Iterable[Trigger]:
    """Declare retention triggers (:class:`crmkit.triggers.Trigger`).

    A trigger's condition is a SQLAlchemy expression built from a :class:`~crmkit.triggers.TriggerQuery`
    (plugin fields, activity counts and recency relative to ``as_of``); ``crm.triggers.run()`` evaluates it
    for all customers in one statement. Names must be unique (``<plugin>.<what>``); stages, the target
    stage, goal kinds and templates are checked when the CRM is built. See ``docs/triggers.md``.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_reports() -> Iterable[Report]:
    """Declare reports (:class:`crmkit.reports.Report`).

    A report has a name (``<plugin>.<what>``), a title, typed parameters (validated with marshmallow,
    defaults may depend on the date), columns, optional charts, and a data function ``data(ctx, params)``
    (``ctx`` a :class:`~crmkit.reports.ReportContext`) that returns rows computed in SQL. The core renders
    it with the first template found for it (``reports/<name>.html``, then ``reports/default.html``) in
    the user's folders, the plugins' and the core's. Names must be unique.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_headlines() -> Iterable[Headline]:
    """Declare headline numbers for the dashboard (:class:`crmkit.reports.Headline`).

    A headline has a name (``<plugin>.<what>``), a label, a type (``integer``, ``money``, ``percent``...)
    and a function ``value(ctx, since, until)`` that computes one number in SQL over the days
    ``[since, until)`` for the customers ``ctx.actor`` reaches. The dashboard shows each for the period so
    far with its change against the same days of the previous period, and links to the ``report`` it
    names. Names must be unique; a named report must exist.

    .. versionadded:: 0.2
    """


@hookspec
def crmkit_register_definitions() -> str | Path | None:
    """Return a Markdown file that defines how this plugin's reports and headlines count, or ``None``.

    The file joins the core's KPI definitions on the definitions page of the dashboard; a section starts
    with ``<a id="anchor"></a>``, and a report links to its section with ``Report(definition="anchor")``.
    The file must exist (checked at load).

    .. versionadded:: 0.2
    """


@hookspec
def crmkit_register_template_dirs() -> Iterable[str | Path]:
    """Return folders of jinja2 templates this plugin ships.

    Templates are searched in the user's folder first, then plugin folders, then the core's, so a vendor
    or a user overrides any template without forking. Each folder must exist (checked at load).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_migrations() -> str | Path | None:
    """Return the folder of the plugin's Alembic revisions, or ``None``.

    The folder joins ``crmkit db upgrade`` as its own branch, labelled with the plugin's name; its first
    revision should ``depends_on`` the core revision it builds on. Resolve the path with
    ``importlib.resources`` so it works from an installed wheel. Must exist (checked at load).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_cli_commands() -> Iterable[click.Command]:
    """Add commands to the ``crmkit`` command line: return click commands or groups.

    Each joins ``crmkit`` under its own name; an edition usually returns one group named after itself
    (``crmkit fitness import-turnstile FILE``). Called when the command line starts, for the installed
    (entry-point) plugins only: a plugin given with ``--plugin`` comes too late to add commands. A name
    that crmkit or another plugin already uses is an error. Decorate a command that needs the database
    with :func:`crmkit.cli.crm_options`, which adds ``--url``, ``--plugin`` and ``--no-plugins`` and passes
    the opened CRM as the first argument; raise :class:`crmkit.cli.CommandError` (or any crmkit error) for
    a user's mistake, which the command line prints as one line ``error: ...`` with a non-zero exit.
    Import click and ``crmkit.cli`` inside the hook, so loading the plugin in an app does not.

    :returns: the commands to add (``click.Command`` or ``click.Group``).

    .. versionadded:: 0.2
    """


# -- events -------------------------------------------------------------------------------------------


@hookspec
def crmkit_customer_created(tx: Transaction, customer: Mapping[str, Any]) -> None:
    """Called after a customer is inserted, inside the same transaction.

    ``customer`` is the serialised record (core and plugin fields, ``id`` included). Raise to veto: the
    customer and everything written in this transaction are rolled back. Effects outside the database go
    through ``tx.after_commit``.

    :param tx: the write's unit of work: add rows through ``tx.session`` (never commit or roll it back),
        register effects outside the database with ``tx.after_commit``.
    :param customer: the customer as stored, serialised like ``crm.customers.get()`` returns it (core and
        plugin fields, ``id`` included).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_customer_updated(tx: Transaction, customer: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    """Called after a customer's fields are updated, inside the same transaction.

    ``changes`` holds the validated new values of the fields that were given. Raise to veto the update.

    :param tx: the write's unit of work: add rows through ``tx.session`` (never commit or roll it back),
        register effects outside the database with ``tx.after_commit``.
    :param customer: the customer after the update, serialised like ``crm.customers.get()`` returns it.
    :param changes: the validated new values of the fields the update gave, keyed by field name (only
        those: a field not given is not in it).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_stage_changed(tx: Transaction, change: Mapping[str, Any]) -> None:
    """Called after a customer moved to another stage and the move was written to the history.

    ``change`` is the move as ``crm.lifecycle.history()`` lists it, with the customer: ``customer_id``,
    ``from_stage`` (``None`` on creation), ``to_stage``, ``lifecycle``, ``at`` (ISO 8601, UTC), ``cause``
    and ``actor_id``. Raise to veto the move. Runs inside the transaction of the write that caused it.

    :param tx: the write's unit of work: add rows through ``tx.session`` (never commit or roll it back),
        register effects outside the database with ``tx.after_commit``.
    :param change: the move, a JSON-safe dict: ``customer_id``, ``from_stage`` (the previous stage,
        ``None`` when the customer was just created), ``to_stage``, ``lifecycle`` (the core stage of
        ``to_stage``), ``at`` (ISO 8601, UTC), ``cause`` and ``actor_id`` (the acting user, or ``None``).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_activity_logged(tx: Transaction, activity: Mapping[str, Any]) -> None:
    """Called after one activity is logged with ``crm.activities.log``, inside the same transaction.

    Not called when the activity's idempotency key (``source``, ``external_id``) is already stored: the
    event was recorded before, and ``log()`` returns the stored activity without writing anything. Bulk
    ingestion does not call this per row (it would defeat the set-based insert); it calls
    :func:`crmkit_activities_ingested` once per batch instead.

    :param tx: the write's unit of work: add rows through ``tx.session`` (never commit or roll it back),
        register effects outside the database with ``tx.after_commit``.
    :param activity: the activity as stored, serialised like ``crm.activities.get()`` returns it (``id``,
        ``customer_id``, ``kind``, ``status``, ``occurred_at``, ``data``...).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_activities_ingested(
    tx: Transaction, count: int, kinds: Mapping[str, int], activities: Sequence[Mapping[str, Any]]
) -> None:
    """Called once per inserted batch of ``crm.activities.ingest``, inside the ingest's transaction.

    ``count`` rows were stored; ``kinds`` counts them by kind. Rows skipped because their idempotency key
    was already stored are not among them, so an implementation never acts twice on one event.

    ``activities`` are the stored rows, one read-only mapping each (``crmkit.activities.StoredActivity``)
    with every input column in the read model of ``crm.activities.get`` (``customer_id``, ``kind``,
    ``status``, ``occurred_at`` and ``ends_at`` as ISO 8601 text in UTC, ``amount`` as a string, ``data`` as
    a dict, ``source``, ``external_id``...) but no ``id``; each value is
    converted when it is read. Building them costs time on big ingests, so crmkit builds them only
    when a registered implementation names the ``activities`` argument; otherwise the list is empty.

    Raise to abort the whole ingest.

    :param tx: the ingest's unit of work: add rows through ``tx.session`` (never commit or roll it
        back), register effects outside the database with ``tx.after_commit``.
    :param count: how many rows this batch stored (rows skipped as already stored are not counted).
    :param kinds: the same rows counted by activity kind (``{"checkin": 950, "purchase": 50}``).
    :param activities: the stored rows as described above; empty unless an implementation names this
        parameter.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_activities_removed(tx: Transaction, activities: Sequence[Mapping[str, Any]]) -> None:
    """Called before activities are deleted by ``crm.imports.revert``, inside the revert's transaction, once
    per batch of up to 5,000: undo what your plugin did when they were stored (a check-in's session goes
    back to its membership).

    Raise to refuse the revert; nothing is then changed.

    :param tx: the revert's unit of work: write through ``tx.session`` (never commit or roll it back).
    :param activities: the activities about to be deleted, serialised like ``crm.activities.get()``
        returns them (``id``, ``customer_id``, ``kind``, ``status``, ``occurred_at``, ``data``...).

    .. versionadded:: 0.2
    """


@hookspec
def crmkit_customers_merged(tx: Transaction, survivor_id: int, merged_id: int) -> None:
    """Called after ``merged_id`` was merged into ``survivor_id`` and its row removed.

    By then every activity, task, history row and plugin row pointing at the duplicate points at the
    survivor. Raise to roll back the merge.

    :param tx: the merge's unit of work: add rows through ``tx.session`` (never commit or roll it
        back), register effects outside the database with ``tx.after_commit``.
    :param survivor_id: the id of the customer that remains and now owns everything.
    :param merged_id: the id of the duplicate, whose row no longer exists.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_trigger_fired(tx: Transaction, trigger: Trigger, firings: Sequence[Firing]) -> None:
    """Called after a trigger's actions ran for a batch of firings, inside the run's transaction.

    Each firing is a plain, JSON-safe dict (:class:`crmkit.triggers.Firing`): ``id``, ``trigger``,
    ``customer_id``, ``run_id``, ``as_of``, ``window``, ``held_out``, ``goal_until``, ``customer`` (the
    record as ``crm.customers.get`` returns it, the same shape as ``crmkit_customer_created`` gets) and
    ``evidence`` (the trigger's evidence values, datetimes and dates as ISO 8601 strings, decimals as
    strings). Held-out firings (the control group) are not passed: nothing is done for them. Raise to roll
    back the batch; crmkit then retries the firings one by one and rolls back only those that fail,
    reporting them in the run's errors.

    :param tx: the run's unit of work, in a savepoint for this batch: add rows through ``tx.session``
        (never commit or roll it back); an ``after_commit`` callback registered here is dropped if the
        batch is rolled back.
    :param trigger: the :class:`~crmkit.triggers.Trigger` declaration that fired.
    :param firings: the batch's :class:`~crmkit.triggers.Firing` objects, one per customer: ``id`` (of the
        firing row), ``trigger`` (its name), ``customer`` (the customer record, plugin fields included),
        ``evidence`` (the trigger's evidence values by name), ``as_of`` and ``held_out`` (always false
        here).

    .. versionadded:: 0.1
    """


# -- decisions ----------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def crmkit_normalize_phone(raw: str, region: str) -> str | None:
    """Return the normalised form of a phone number, used to find duplicates.

    ``region`` (an upper-case ISO 3166 alpha-2 code) is where a number written without ``+`` is read: for a
    customer's phone, the customer's ``country``, else the region of their ``branch`` (the CRM's
    ``branch_regions``), else the CRM's default ``region``; for ``crm.normalize_phone(raw, region)``, the
    region given, else the default. A number written with ``+`` and a country code is that country's. The
    core returns the E.164 form (``+14155550100``) of a number that is valid there (``phonenumbers``'
    ``is_valid_number``) and raises ``ValueError`` with the reason otherwise ("not a valid phone number in
    TH: ..."); the reason becomes the customer's validation error. Override it for local conventions
    (internal extensions, short codes).

    :param raw: the phone number as the caller gave it.
    :param region: the upper-case ISO 3166 alpha-2 region a number without ``+`` is read in, chosen as
        described above.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crmkit_run_demo(path: Path, echo: Callable[[str], None], size: int) -> bool | None:
    """Run the ``crmkit demo`` command: build a demo database at ``path`` (SQLite) and print with ``echo``.

    An industry edition implements it to show itself off (a gym with a year of check-ins); ``size`` is a
    hint of how many customers to generate. Return ``True`` when you ran it. The first plugin that does
    wins; the core's small studio demo runs when no plugin does.

    :param path: the SQLite file to build (it does not exist yet; its folder does).
    :param echo: prints one line to the command's output (``click.echo``).
    :param size: the number of customers asked for with ``--size``: a hint, scale the demo to it.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crmkit_send_message(message: Mapping[str, Any]) -> bool | None:
    """Deliver one outbox message; return ``True`` when sent, ``None`` when it is not your channel.

    Called after commit by ``crm.outbox.deliver()``, outside any transaction, with ``id``, ``channel``
    (``"sms"``, ``"email"``...), ``customer_id``, ``subject``, ``body``, ``source``, ``source_id`` and
    ``created_at``. Raise on a gateway error. A message that raised, or that no implementation accepted, is
    retried by a later delivery after a backoff (1 minute, doubling), and marked failed after
    ``MAX_ATTEMPTS`` (5) attempts. Raise :class:`~crmkit.errors.DeliveryError` with ``retry_after`` to
    push the next try back further (a gateway's rate limit), or
    :class:`~crmkit.errors.PermanentDeliveryError` when retrying cannot help (the recipient or endpoint is
    gone, the gateway refused the request as invalid): the message is then marked failed at once. The
    exception's type and text become the message's ``error``: keep secrets out of it. Delivery is at least
    once (a deliverer that dies after sending but before recording it leaves the message to be sent again),
    so make the gateway idempotent on ``id``. crmkit ships one gateway, for HTTP webhooks
    (``crmkit.webhooks.WebhookPlugin``); the app or a plugin implements this for the other channels it has.

    :param message: the outbox row as a dict: ``id``, ``channel``, ``customer_id``, ``subject`` (may be
        ``None``), ``body``, ``source``, ``source_id`` and ``created_at`` (ISO 8601, UTC).

    .. versionadded:: 0.1
    """


HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, value in list(globals().items()) if name.startswith("crmkit_") and callable(value)
)
