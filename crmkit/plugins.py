"""Building the plugin manager and collecting what plugins declare.

Nothing here runs at import time: :func:`create_plugin_manager` is called by each ``CRM`` and the result
lives on it. The order follows kedro and tox: block disabled plugins, load entry points, register the
plugins passed in code, register the core's own defaults, then check that every hook implementation
matches a hook, so a typo fails loudly with the plugin's name.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import attrs
import pluggy
from sqlalchemy import Table

from crmkit import hookspecs
from crmkit.access import PermissionSpec, RoleSpec, resolve_roles
from crmkit.errors import PluginError
from crmkit.reports.spec import Headline, Report
from crmkit.specs import (
    CORE_ACTIVITY_STATUSES,
    CORE_STAGES,
    ActivityKindSpec,
    ActivityStatusSpec,
    FieldSpec,
    ImporterSpec,
    StageSpec,
    TransitionSpec,
)
from crmkit.triggers.spec import Trigger

ENTRY_POINT_GROUP = "crmkit.plugins"
CORE_PLUGIN = "crmkit"

#: Customer attributes owned by the core; plugin and run-time fields may not reuse these names.
CORE_CUSTOMER_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "name",
        "email",
        "email_normalized",
        "phone",
        "phone_normalized",
        "birthday",
        "source",
        "campaign",
        "owner_id",
        "branch",
        "country",
        "stage",
        "lifecycle",
        "stage_changed_at",
        "created_at",
        "updated_at",
        "extra",
    }
)


_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
S = TypeVar("S")


@attrs.frozen
class Registry:
    """Everything the loaded plugins declared, keyed by name, each spec stamped with its owner."""

    plugins: tuple[str, ...]
    fields: dict[str, FieldSpec]
    stages: dict[str, StageSpec]
    transitions: dict[tuple[str, str], TransitionSpec]
    activity_kinds: dict[str, ActivityKindSpec]
    importers: dict[str, ImporterSpec]
    tables: dict[str, tuple[str, Table]]
    triggers: dict[str, Trigger]
    reports: dict[str, Report]
    template_dirs: tuple[tuple[str, Path], ...]
    migrations: dict[str, Path]
    roles: dict[str, RoleSpec] = attrs.field(factory=dict)
    permissions: dict[str, PermissionSpec] = attrs.field(factory=dict)
    #: The Markdown files of the plugins' KPI definitions, with their owners.
    definitions: tuple[tuple[str, Path], ...] = ()
    #: The dashboard's headline numbers, by name.
    headlines: dict[str, Headline] = attrs.field(factory=dict)
    #: The activity statuses, the core's and the plugins', by name.
    activity_statuses: dict[str, ActivityStatusSpec] = attrs.field(
        factory=lambda: {s.name: s for s in CORE_ACTIVITY_STATUSES}
    )

    @property
    def happened(self) -> tuple[str, ...]:
        """The activity statuses that count as something that happened: what triggers, goals and KPIs count."""
        return tuple(s.name for s in self.activity_statuses.values() if s.happened)

    @property
    def busy(self) -> tuple[str, ...]:
        """The activity statuses that occupy a calendar kind's owner (those that do not free the calendar)."""
        return tuple(s.name for s in self.activity_statuses.values() if not s.frees_calendar)

    def fields_of(self, plugin: str) -> list[FieldSpec]:
        return [f for f in self.fields.values() if f.owner == plugin]


def plugin_name(plugin: object) -> str:
    """The short name a plugin registered in code goes by: its ``plugin_name`` attribute, else the last
    part of its module's name (or its class name, lower-cased)."""
    explicit = getattr(plugin, "plugin_name", None)
    if isinstance(explicit, str):
        return explicit
    if isinstance(plugin, ModuleType):
        return plugin.__name__.rsplit(".", 1)[-1]
    if inspect.isclass(plugin):
        return plugin.__name__.lower()
    return type(plugin).__name__.lower()


def create_plugin_manager(
    plugins: Iterable[object] = (),
    *,
    load_entry_points: bool = True,
    disabled: Iterable[str] = (),
) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    in_code = list(plugins)
    # a plugin passed in code (configured by the app) replaces the installed one of the same name
    code_names = {plugin_name(obj) for obj in in_code}
    if load_entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name) or ep.name in code_names:
                continue
            try:
                obj = ep.load()
                if inspect.isclass(obj):  # an entry point may name the plugin class: use its defaults
                    obj = obj()
            except Exception as exc:
                raise PluginError(ep.name, f"entry point {ep.value!r} cannot be loaded: {exc}") from exc
            _register(pm, obj, ep.name)
    for obj in in_code:
        name = plugin_name(obj)
        if pm.is_blocked(name) or pm.is_registered(obj):
            continue
        _register(pm, obj, name)

    from crmkit import defaults

    _register(pm, defaults, CORE_PLUGIN, core=True)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:  # pragma: no cover - _check_hook_names catches it first
        raise PluginError(pm.get_name(exc.plugin) or "?", str(exc)) from exc
    return pm


def _register(pm: pluggy.PluginManager, obj: object, name: str, *, core: bool = False) -> None:
    if not _PLUGIN_NAME.match(name):
        raise PluginError(name, "a plugin name must be a short lowercase identifier (a-z, 0-9, _)")
    if name == CORE_PLUGIN and not core:
        raise PluginError(name, "the name 'crmkit' is reserved for the core")
    if pm.has_plugin(name):
        raise PluginError(name, "two plugins are registered under this name")
    _check_hook_names(obj, name)
    try:
        pm.register(obj, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(name, f"bad hook implementation: {exc}") from exc


def _check_hook_names(obj: object, name: str) -> None:
    marker = f"{hookspecs.PROJECT}_impl"
    hooks = 0
    for attr in dir(obj):
        value = getattr(obj, attr, None)
        if not callable(value):
            continue
        marked = hasattr(value, marker)
        if marked and attr not in hookspecs.HOOK_NAMES:
            close = difflib.get_close_matches(attr, hookspecs.HOOK_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginError(name, f"unknown hook {attr!r}{hint}")
        if not marked and attr.startswith("crmkit_"):
            raise PluginError(name, f"{attr!r} looks like a hook but is not marked with @crmkit.hookimpl")
        hooks += marked
    if not hooks:
        # registering it would do nothing, silently: almost always the wrong object (a module, a class
        # that is not the plugin, a typo in an import path)
        raise PluginError(name, f"{_shown(obj)} is not a crmkit plugin: it has no @crmkit.hookimpl hook")


def _shown(obj: object) -> str:
    if isinstance(obj, ModuleType):
        return f"module {obj.__name__!r}"
    kind = obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)
    what = "class" if inspect.isclass(obj) else "function" if inspect.isroutine(obj) else "a"
    label = f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', '?')}"
    return f"{what} {label}" if what != "a" else f"a {label} object"


# -- collecting declarations ----------------------------------------------------------------------------


def _each(pm: pluggy.PluginManager, hook: str) -> Iterable[tuple[str, Any]]:
    """Call a declaration hook plugin by plugin, so every result is attributed to its plugin."""
    caller = getattr(pm.hook, hook)
    impls = caller.get_hookimpls()  # registration order: entry points, code, then the core
    # the core's declarations come first, so a clash is blamed on the plugin, not on the core
    for impl in sorted(impls, key=lambda i: i.plugin_name != CORE_PLUGIN):
        try:
            result = impl.function()
        except Exception as exc:
            raise PluginError(impl.plugin_name, f"{hook} raised {type(exc).__name__}: {exc}") from exc
        if result is not None:
            yield impl.plugin_name, result


def _specs(pm: pluggy.PluginManager, hook: str, kind: type[S]) -> list[tuple[str, S]]:
    out: list[tuple[str, S]] = []
    for owner, result in _each(pm, hook):
        if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
            raise PluginError(owner, f"{hook} must return a list of {kind.__name__}, got {result!r}")
        for item in result:
            if not isinstance(item, kind):
                raise PluginError(owner, f"{hook} returned {item!r}, expected {kind.__name__}")
            out.append((owner, item))
    return out


def _unique(
    items: Iterable[tuple[str, S]], key: Callable[[S], Any], what: str, taken: dict[Any, str] | None = None
) -> dict[Any, S]:
    """Index specs by ``key``; two owners declaring the same key is a load error naming both."""
    owners: dict[Any, str] = dict(taken or {})
    out: dict[Any, S] = {}
    for owner, spec in items:
        k = key(spec)
        if k in owners:
            raise PluginError(owner, f"{what} {k!r} is already declared by plugin {owners[k]!r}")
        owners[k] = owner
        out[k] = spec
    return out


def _stamp(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(owner, attrs.evolve(spec, owner=owner)) for owner, spec in items]


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call every declaration hook and validate the declarations together."""
    names = tuple(n for n, p in pm.list_name_plugin() if p is not None and n != CORE_PLUGIN)

    fields = _unique(
        _stamp(_specs(pm, "crmkit_register_fields", FieldSpec)),
        lambda f: f.name,
        "field",
        taken={n: CORE_PLUGIN for n in CORE_CUSTOMER_FIELDS},
    )

    stage_items = _stamp(_specs(pm, "crmkit_register_stages", StageSpec))
    for owner, stage in stage_items:
        if owner != CORE_PLUGIN and stage.parent not in CORE_STAGES:
            raise PluginError(
                owner, f"stage {stage.name!r} must have a parent among {list(CORE_STAGES)}, got {stage.parent!r}"
            )
    stages = _unique(stage_items, lambda s: s.name, "stage")

    transitions: dict[tuple[str, str], TransitionSpec] = {}
    for owner, tr in _stamp(_specs(pm, "crmkit_register_transitions", TransitionSpec)):
        for end in (tr.source, tr.target):
            if end not in stages:
                raise PluginError(owner, f"transition {tr.source!r} -> {tr.target!r}: unknown stage {end!r}")
        if tr.source == tr.target:
            raise PluginError(owner, f"transition {tr.source!r} -> {tr.target!r} goes nowhere")
        previous = transitions.get((tr.source, tr.target))
        if previous is not None and previous.requires_reason != tr.requires_reason:
            raise PluginError(
                owner,
                f"transition {tr.source!r} -> {tr.target!r} is declared differently by plugin {previous.owner!r}",
            )
        transitions.setdefault((tr.source, tr.target), tr)

    kinds = _unique(
        _stamp(_specs(pm, "crmkit_register_activity_kinds", ActivityKindSpec)), lambda k: k.name, "activity kind"
    )

    statuses = _unique(
        _stamp(_specs(pm, "crmkit_register_activity_statuses", ActivityStatusSpec)), lambda s: s.name, "activity status"
    )

    importers = _unique(_stamp(_specs(pm, "crmkit_register_importers", ImporterSpec)), lambda i: i.name, "importer")
    for owner, importer in ((i.owner, i) for i in importers.values()):
        if importer.kind not in kinds:
            raise PluginError(owner, f"importer {importer.name!r} feeds unknown activity kind {importer.kind!r}")
    tables = _collect_tables(pm)
    triggers = _unique(_stamp(_specs(pm, "crmkit_register_triggers", Trigger)), lambda t: t.name, "trigger")
    reports = _unique(_stamp(_specs(pm, "crmkit_register_reports", Report)), lambda r: r.name, "report")
    headlines = _unique(_stamp(_specs(pm, "crmkit_register_headlines", Headline)), lambda h: h.name, "headline")
    for headline in headlines.values():
        if headline.report is not None and headline.report not in reports:
            raise PluginError(headline.owner, f"headline {headline.name!r} names unknown report {headline.report!r}")
    template_dirs = tuple(
        (owner, _existing_dir(owner, path, "template folder"))
        for owner, path in _paths(pm, "crmkit_register_template_dirs")
    )
    definitions = tuple(
        (owner, _existing_file(owner, path, "definitions file"))
        for owner, path in _paths(pm, "crmkit_register_definitions")
    )
    migrations: dict[str, Path] = {}
    for owner, path in _each(pm, "crmkit_register_migrations"):
        migrations[owner] = _existing_dir(owner, path, "migrations folder")

    permissions = _unique(
        _stamp(_specs(pm, "crmkit_register_permissions", PermissionSpec)), lambda p: p.name, "permission"
    )
    roles = _unique(_stamp(_specs(pm, "crmkit_register_roles", RoleSpec)), lambda r: r.name, "role")
    for role in roles.values():
        unknown = sorted(role.permissions - {"*", *permissions})
        if unknown:
            raise PluginError(role.owner, f"role {role.name!r} grants undeclared permissions {unknown}")
    for permission in permissions.values():
        missing = sorted(set(permission.roles) - set(roles))
        if missing:
            raise PluginError(permission.owner, f"permission {permission.name!r} names unknown roles {missing}")

    return Registry(
        plugins=names,
        fields=fields,
        stages=stages,
        transitions=transitions,
        activity_kinds=kinds,
        importers=importers,
        tables=tables,
        triggers=triggers,
        reports=reports,
        headlines=headlines,
        definitions=definitions,
        template_dirs=template_dirs,
        migrations=migrations,
        roles=resolve_roles(roles, permissions),
        permissions=permissions,
        activity_statuses=statuses,
    )


def _collect_tables(pm: pluggy.PluginManager) -> dict[str, tuple[str, Table]]:
    out: dict[str, tuple[str, Table]] = {}
    for owner, result in _each(pm, "crmkit_register_models"):
        for item in result:
            table = item if isinstance(item, Table) else getattr(item, "__table__", None)
            if not isinstance(table, Table):
                raise PluginError(owner, f"crmkit_register_models returned {item!r}, expected a Table or model")
            if not table.name.startswith(f"{owner}_"):
                raise PluginError(owner, f"table {table.name!r} must be named {owner}_<something>")
            if table.name == f"{owner}_customer":
                raise PluginError(owner, f"table name {table.name!r} is reserved for the plugin's fields")
            if table.name in out:
                raise PluginError(owner, f"table {table.name!r} is declared twice")
            out[table.name] = (owner, table)
    return out


def _paths(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for owner, result in _each(pm, hook):
        items: Sequence[Any] = [result] if isinstance(result, (str, Path)) else list(result)
        out.extend((owner, item) for item in items)
    return out


def _existing_dir(owner: str, path: Any, what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise PluginError(owner, f"{what} {str(folder)!r} does not exist")
    return folder


def _existing_file(owner: str, path: Any, what: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise PluginError(owner, f"{what} {str(file)!r} does not exist")
    return file
