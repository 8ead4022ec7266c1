"""Loading plugins: what a correct plugin contributes, and how a broken one fails at load."""

from __future__ import annotations

import importlib.metadata
import types
from pathlib import Path
from typing import Any

import pytest
from probe import Probe
from sqlalchemy import Column, Integer, MetaData, Table, inspect

from crmkit import CRM, FieldSpec, PluginError, StageSpec, TransitionSpec, hookimpl
from crmkit.hookspecs import HOOK_NAMES
from crmkit.testing import check_plugin
from crmkit.triggers import Trigger


def make(*plugins: object, **kwargs: Any) -> CRM:
    return CRM("sqlite://", plugins=plugins, load_entry_points=False, **kwargs)


def test_probe_implements_every_hook() -> None:
    implemented = {name for name in dir(Probe) if name.startswith("crmkit_")}
    assert implemented == set(HOOK_NAMES)


def test_probe_passes_the_contract_checks(crm_factory: Any) -> None:
    crm = crm_factory([Probe()], create_schema=False)
    check_plugin(crm, "probe")


def test_declarations_are_collected_and_stamped_with_their_plugin() -> None:
    crm = make(Probe())
    reg = crm.registry
    assert reg.plugins == ("probe",)
    assert reg.fields["tier"].owner == "probe"
    assert reg.stages["trial"].owner == "probe" and reg.stages["lead"].owner == "crmkit"
    assert reg.stages["at_risk"].lifecycle == "active"
    assert reg.transitions[("trial", "active")].owner == "probe"
    assert reg.activity_kinds["session"].owner == "probe"
    assert reg.activity_kinds["meeting"].owner == "crmkit"
    assert set(reg.triggers) == {"probe.ping"}
    assert reg.reports["probe.summary"].owner == "probe" and reg.reports["crm.average_check"].owner == "crmkit"
    assert reg.triggers["probe.ping"].owner == "probe"
    assert reg.template_dirs[0][0] == "probe" and reg.template_dirs[0][1].is_dir()
    assert "probe" in reg.migrations
    assert set(crm.extension_tables) == {"probe"}
    assert "probe_notes" in crm.metadata.tables


def test_plugin_fields_are_typed_indexed_columns(crm_factory: Any) -> None:
    crm = crm_factory([Probe()])
    insp = inspect(crm.engine)
    columns = {c["name"]: c for c in insp.get_columns("probe_customer")}
    assert set(columns) == {"customer_id", "tier", "score", "joined_on", "vip", "medical_notes", "balance", "last_seen"}
    assert "INT" in str(columns["score"]["type"]).upper()
    assert "DATE" in str(columns["joined_on"]["type"]).upper()
    indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes("probe_customer")}
    assert ("score",) in indexed


def test_two_crms_in_one_process_do_not_share_plugin_tables() -> None:
    with_probe, without = make(Probe()), make()
    assert "probe_customer" in with_probe.metadata.tables
    assert "probe_customer" not in without.metadata.tables
    assert "probe_notes" not in without.metadata.tables


def test_entry_point_plugins_are_loaded_and_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_vertical")

    @hookimpl
    def crmkit_register_fields() -> list[FieldSpec]:
        return [FieldSpec("badge")]

    module.crmkit_register_fields = crmkit_register_fields  # type: ignore[attr-defined]
    ep = importlib.metadata.EntryPoint("vertical", "fake_vertical", "crmkit.plugins")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep] if group == "crmkit.plugins" else [])
    monkeypatch.setitem(__import__("sys").modules, "fake_vertical", module)

    assert CRM("sqlite://").plugins == ("vertical",)
    assert "badge" in CRM("sqlite://").registry.fields
    assert CRM("sqlite://", load_entry_points=False).plugins == ()
    assert CRM("sqlite://", disabled_plugins=["vertical"]).plugins == ()
    configured = _fields_plugin("vertical", FieldSpec("configured_badge"))
    replaced = CRM("sqlite://", plugins=[configured])  # the app's configured instance wins over the installed one
    assert replaced.plugins == ("vertical",) and "configured_badge" in replaced.registry.fields


def test_entry_point_that_fails_to_import_names_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = importlib.metadata.EntryPoint("broken", "no_such_module_xyz", "crmkit.plugins")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep])
    with pytest.raises(PluginError, match="'broken'.*cannot be loaded"):
        CRM("sqlite://")


# -- malformed plugins fail loudly, naming the plugin ---------------------------------------------------


class Typo:
    plugin_name = "typo"

    @hookimpl
    def crmkit_register_feilds(self) -> list[FieldSpec]:
        return []


class Unmarked:
    plugin_name = "unmarked"

    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [FieldSpec("x")]


class BadSignature:
    plugin_name = "badsig"

    @hookimpl
    def crmkit_customer_created(self, tx: Any, customer: Any, extra_arg: Any) -> None:
        pass


def _fields_plugin(name: str, *specs: FieldSpec) -> object:
    class P:
        plugin_name = name

        @hookimpl
        def crmkit_register_fields(self) -> list[FieldSpec]:
            return list(specs)

    return P()


def test_unknown_hook_fails_with_a_suggestion() -> None:
    with pytest.raises(
        PluginError,
        match=r"plugin 'typo': unknown hook 'crmkit_register_feilds' \(did you mean "
        r"'crmkit_register_fields'\?\)",
    ):
        make(Typo())


def test_unmarked_hook_function_fails() -> None:
    with pytest.raises(PluginError, match="'unmarked'.*not marked with @crmkit.hookimpl"):
        make(Unmarked())


def test_bad_hook_signature_fails() -> None:
    with pytest.raises(PluginError, match="(?s)'badsig'.*extra_arg"):
        make(BadSignature())


def test_two_plugins_declaring_the_same_field_fail_naming_both() -> None:
    with pytest.raises(PluginError, match="plugin 'second': field 'badge' is already declared by plugin 'first'"):
        make(_fields_plugin("first", FieldSpec("badge")), _fields_plugin("second", FieldSpec("badge")))


def test_plugin_field_may_not_shadow_a_core_field() -> None:
    with pytest.raises(PluginError, match="field 'email' is already declared by plugin 'crmkit'"):
        make(_fields_plugin("shadow", FieldSpec("email")))


def test_two_plugins_with_the_same_name_fail() -> None:
    with pytest.raises(PluginError, match="two plugins are registered under this name"):
        make(_fields_plugin("twin", FieldSpec("a")), _fields_plugin("twin", FieldSpec("b")))


@pytest.mark.parametrize("name", ["crmkit", "Bad-Name", ""])
def test_reserved_or_malformed_plugin_names_fail(name: str) -> None:
    with pytest.raises(PluginError):
        make(_fields_plugin(name, FieldSpec("a")))


def test_declaration_of_the_wrong_type_fails() -> None:
    class Wrong:
        plugin_name = "wrong"

        @hookimpl
        def crmkit_register_stages(self) -> list[Any]:
            return [{"name": "trial"}]

    with pytest.raises(PluginError, match="'wrong': crmkit_register_stages returned .*expected StageSpec"):
        make(Wrong())


def test_a_declaration_hook_that_raises_names_the_plugin() -> None:
    class Raises:
        plugin_name = "raises"

        @hookimpl
        def crmkit_register_fields(self) -> list[FieldSpec]:
            raise KeyError("oops")

    with pytest.raises(PluginError, match="'raises': crmkit_register_fields raised KeyError"):
        make(Raises())


def test_sub_stage_needs_a_core_parent_and_transitions_need_known_stages() -> None:
    class Orphan:
        plugin_name = "orphan"

        @hookimpl
        def crmkit_register_stages(self) -> list[StageSpec]:
            return [StageSpec("limbo", parent="nowhere")]

    class Dangling:
        plugin_name = "dangling"

        @hookimpl
        def crmkit_register_transitions(self) -> list[TransitionSpec]:
            return [TransitionSpec("lead", "vip")]

    with pytest.raises(PluginError, match="'orphan': stage 'limbo' must have a parent"):
        make(Orphan())
    with pytest.raises(PluginError, match="'dangling'.*unknown stage 'vip'"):
        make(Dangling())


def test_plugin_tables_must_carry_the_plugin_prefix() -> None:
    class Tables:
        plugin_name = "tables"

        @hookimpl
        def crmkit_register_models(self) -> list[Table]:
            return [Table("memberships", MetaData(), Column("id", Integer, primary_key=True))]

    with pytest.raises(PluginError, match="'tables': table 'memberships' must be named tables_<something>"):
        make(Tables())


def test_missing_template_folder_fails(tmp_path: Path) -> None:
    class Templates:
        plugin_name = "templates"

        @hookimpl
        def crmkit_register_template_dirs(self) -> list[Path]:
            return [tmp_path / "missing"]

    with pytest.raises(PluginError, match="'templates': template folder .*missing.* does not exist"):
        make(Templates())


def test_duplicate_trigger_names_fail() -> None:
    class A:
        plugin_name = "a"

        @hookimpl
        def crmkit_register_triggers(self) -> list[Any]:
            return [Trigger("probe.ping", condition=lambda q: q.customer.c.id > 0)]

    with pytest.raises(PluginError, match="trigger 'probe.ping' is already declared by plugin 'probe'"):
        make(Probe(), A())


def test_bad_field_declarations_are_caught_when_declared() -> None:
    with pytest.raises(ValueError, match="lowercase identifier"):
        FieldSpec("Card Number")
    with pytest.raises(ValueError):
        FieldSpec("x", "float")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one of its choices"):
        FieldSpec("tier", choices=("a",), default="b")
    with pytest.raises(ValueError, match="only allowed on string"):
        FieldSpec("n", "integer", choices=("1",))


def test_decision_hook_overrides_the_core_default() -> None:
    crm = make(Probe())
    assert crm.normalize_phone("EXT-42") == "ext-42"
    assert crm.normalize_phone("(415) 555-0100") == "+14155550100"
    with pytest.raises(ValueError):
        make().normalize_phone("not a phone")


class NoHooks:
    plugin_name = "nohooks"

    def register_fields(self) -> list[FieldSpec]:
        return [FieldSpec("x")]


def test_an_object_without_a_single_hook_is_refused_as_a_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    # passed in code: an instance, a class, a module
    with pytest.raises(PluginError, match=r"plugin 'nohooks': a .*NoHooks object is not a crmkit plugin: it has no"):
        make(NoHooks())
    with pytest.raises(PluginError, match=r"plugin 'nohooks': class .*NoHooks is not a crmkit plugin"):
        make(NoHooks)
    with pytest.raises(PluginError, match=r"plugin 'json': module 'json' is not a crmkit plugin"):
        make(__import__("json"))
    # installed under the entry point
    ep = importlib.metadata.EntryPoint("empty", "json", "crmkit.plugins")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep])
    with pytest.raises(PluginError, match=r"plugin 'empty': module 'json' is not a crmkit plugin"):
        CRM("sqlite://")


def test_one_hook_is_enough_to_be_a_plugin() -> None:
    assert make(_fields_plugin("one", FieldSpec("badge"))).plugins == ("one",)
