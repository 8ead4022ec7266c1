"""The typed facade over the plugin manager: one method per hook, used at every call site.

Calling ``pm.hook.crmkit_customer_created(tx=..., customer=...)`` directly is untyped: a misspelt
argument name passes silently and the result type is ``Any``. The core calls hooks only through
:class:`Hooks` (``crm.hooks``), as tox does through its plugin manager, so each call is checked by the
type checker against the hook's specification in :mod:`crmkit.hookspecs`. Declaration hooks
(``crmkit_register_*``) are not here: they are called plugin by plugin while the CRM is built
(:func:`crmkit.plugins.collect`), so each declaration is stamped with its owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pluggy

if TYPE_CHECKING:
    import click

    from crmkit.triggers.spec import Trigger
    from crmkit.unit import Transaction


class Hooks:
    """``crm.hooks``: call the loaded plugins' hooks. Each method's docs are the hook's, in
    :mod:`crmkit.hookspecs`."""

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self._pm = plugin_manager
        self._relay = plugin_manager.hook

    def implemented(self, name: str) -> bool:
        """Whether any loaded plugin (the core included) implements the hook ``crmkit_<name>``."""
        return bool(getattr(self._relay, f"crmkit_{name}").get_hookimpls())

    def takes(self, name: str, argument: str) -> bool:
        """Whether some implementation of ``crmkit_<name>`` accepts ``argument``: an expensive argument
        is built only when someone reads it."""
        return any(argument in impl.argnames for impl in getattr(self._relay, f"crmkit_{name}").get_hookimpls())

    # -- events ------------------------------------------------------------------------------------

    def customer_created(self, tx: Transaction, customer: Mapping[str, Any]) -> None:
        self._relay.crmkit_customer_created(tx=tx, customer=customer)

    def customer_updated(self, tx: Transaction, customer: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        self._relay.crmkit_customer_updated(tx=tx, customer=customer, changes=changes)

    def stage_changed(self, tx: Transaction, change: Mapping[str, Any]) -> None:
        self._relay.crmkit_stage_changed(tx=tx, change=change)

    def activity_logged(self, tx: Transaction, activity: Mapping[str, Any]) -> None:
        self._relay.crmkit_activity_logged(tx=tx, activity=activity)

    def activities_ingested(
        self, tx: Transaction, count: int, kinds: Mapping[str, int], activities: Sequence[Mapping[str, Any]]
    ) -> None:
        self._relay.crmkit_activities_ingested(tx=tx, count=count, kinds=kinds, activities=activities)

    def activities_removed(self, tx: Transaction, activities: Sequence[Mapping[str, Any]]) -> None:
        self._relay.crmkit_activities_removed(tx=tx, activities=activities)

    def customers_merged(self, tx: Transaction, survivor_id: int, merged_id: int) -> None:
        self._relay.crmkit_customers_merged(tx=tx, survivor_id=survivor_id, merged_id=merged_id)

    def trigger_fired(self, tx: Transaction, trigger: Trigger, firings: Sequence[Any]) -> None:
        self._relay.crmkit_trigger_fired(tx=tx, trigger=trigger, firings=firings)

    # -- decisions ---------------------------------------------------------------------------------

    def normalize_phone(self, raw: str, region: str) -> str | None:
        result: str | None = self._relay.crmkit_normalize_phone(raw=raw, region=region)
        return result

    def run_demo(self, path: Path, echo: Callable[[str], None], size: int) -> bool:
        return bool(self._relay.crmkit_run_demo(path=path, echo=echo, size=size))

    def send_message(self, message: Mapping[str, Any]) -> bool:
        return bool(self._relay.crmkit_send_message(message=message))

    # -- the command line --------------------------------------------------------------------------

    def cli_commands(self) -> list[tuple[str, click.Command]]:
        """``crmkit_cli_commands``, plugin by plugin: (plugin name, command) pairs, so the command line can
        name the plugin whose command clashes with another."""
        return [
            (impl.plugin_name, command)
            for impl in self._relay.crmkit_cli_commands.get_hookimpls()
            for command in cast("Iterable[click.Command] | None", impl.function()) or ()
        ]
