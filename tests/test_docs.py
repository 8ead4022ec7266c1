"""The documentation stays true: every hook is documented, the hook reference is regenerated, and the
tutorial's code runs and prints what the page says it prints."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from probe import Probe

from crmkit import FieldSpec, hookimpl, hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def load_generator() -> ModuleType:
    # docs/ is not a package; load the script the way `python docs/gen_hooks.py` would see it
    spec = importlib.util.spec_from_file_location("gen_hooks", DOCS / "gen_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@attrs.frozen
class Example:
    """A python block of a page, and the text block right after it (what it prints), if any."""

    line: int
    code: str
    output: str | None


def python_examples(text: str) -> list[Example]:
    blocks = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]
    examples = []
    for i, (lang, body, line) in enumerate(blocks):
        if lang != "python":
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        output = following[1] if following is not None and following[0] == "text" else None
        examples.append(Example(line, body, output))
    return examples


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_is_documented(name: str) -> None:
    doc = getattr(hookspecs, name).__doc__
    assert doc and doc.strip(), f"hook {name} has no docstring"
    assert "versionadded" in doc, f"hook {name} does not say in which version it was added"
    parameters = list(inspect.signature(getattr(hookspecs, name)).parameters)
    documented = load_generator().documented_params(getattr(hookspecs, name))
    assert documented == parameters, (
        f"hook {name} documents parameters {documented} with :param:, its signature has {parameters}"
    )


def test_hook_reference_is_up_to_date() -> None:
    generator = load_generator()
    assert generator.is_current(), "docs/hooks.md is stale: run python docs/gen_hooks.py"


def test_hook_reference_check_mode_reports_staleness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = load_generator()
    stale = tmp_path / "hooks.md"
    stale.write_text("# Hook reference\n", encoding="utf-8")
    monkeypatch.setattr(generator, "HOOKS_MD", stale)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == generator.render()


def test_every_hook_is_in_the_reference() -> None:
    reference = (DOCS / "hooks.md").read_text(encoding="utf-8")
    for name in hookspecs.HOOK_NAMES:
        assert f"### {name}\n" in reference, f"hook {name} has no section in docs/hooks.md"
        function = getattr(hookspecs, name)
        firstresult = (getattr(function, f"{hookspecs.PROJECT}_spec", None) or {}).get("firstresult")
        assert f"| [`{name}`](#{name}) |" in reference
        section = reference.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        assert f"- firstresult: {'yes' if firstresult else 'no'}" in section


def test_reference_signatures_have_unquoted_annotations() -> None:
    generator = load_generator()
    text = generator.signature("crmkit_customer_updated", hookspecs.crmkit_customer_updated)
    assert text == (
        "crmkit_customer_updated(tx: Transaction, customer: Mapping[str, Any], changes: Mapping[str, Any]) -> None"
    )


def test_tutorial_runs_and_prints_what_it_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exec every python block of the tutorial in one namespace, in a fresh directory, and compare what
    each block prints with the text block that follows it on the page."""
    monkeypatch.chdir(tmp_path)
    examples = python_examples((DOCS / "tutorial.md").read_text(encoding="utf-8"))
    assert len(examples) >= 10
    namespace: dict[str, object] = {"__name__": "tutorial"}
    for example in examples:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(example.code, f"docs/tutorial.md:{example.line}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"the block at docs/tutorial.md line {example.line} raised {exc!r}")
        if example.output is not None:
            assert printed.getvalue().rstrip("\n") == example.output.rstrip("\n"), (
                f"the block at docs/tutorial.md line {example.line} printed something else"
            )
    assert (tmp_path / "tutorial.db").is_file()


@pytest.mark.parametrize("page", ["plugin-guide.md", "architecture.md"])
def test_python_blocks_of_the_guides_compile(page: str) -> None:
    """These pages show fragments that refer to names defined elsewhere, so they are compiled, not run:
    a syntax error still fails here."""
    examples = python_examples((DOCS / page).read_text(encoding="utf-8"))
    assert examples
    for example in examples:
        compile(example.code, f"docs/{page}:{example.line}", "exec")


def migration_recipe() -> Example:
    """The plugin guide's test of a migration branch (the block that defines it)."""
    examples = python_examples((DOCS / "plugin-guide.md").read_text(encoding="utf-8"))
    [recipe] = [e for e in examples if "def test_migrations_build_the_models(" in e.code]
    return recipe


class _NewFieldNoRevision(Probe):
    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [*super().crmkit_register_fields(), FieldSpec("nickname")]


@pytest.mark.parametrize(("plugin", "passes"), [(Probe, True), (_NewFieldNoRevision, False)])
def test_the_guides_migration_recipe_runs_on_a_plugin_with_a_branch(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch, plugin: type[Probe], passes: bool
) -> None:
    """The recipe runs as written, with the guide's salon plugin played by the probe (which ships a
    migration branch): it passes on the probe and catches a field its revisions do not add."""
    recipe = migration_recipe()
    salon = ModuleType("crmkit_salon")
    salon.SalonPlugin = lambda sms: plugin()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "crmkit_salon", salon)
    namespace: dict[str, Any] = {"__name__": "plugin_guide", "FakeSms": object}
    exec(compile(recipe.code, f"docs/plugin-guide.md:{recipe.line}", "exec"), namespace)
    if passes:
        namespace["test_migrations_build_the_models"](crm_factory)
    else:
        with pytest.raises(AssertionError):
            namespace["test_migrations_build_the_models"](crm_factory)


def test_the_reference_lists_each_hooks_parameters() -> None:
    """The :param: entries reach docs/hooks.md as a list under the hook, one item per parameter."""
    generator = load_generator()
    section = generator.render().split("### crmkit_customers_merged\n", 1)[1].split("\n### ", 1)[0]
    assert "Parameters:\n\n- `tx`: " in section
    items = [line.split("`")[1] for line in section.splitlines() if line.startswith("- `")]
    assert items == ["tx", "survivor_id", "merged_id"]
    assert not re.search(r"^\s*:param ", generator.render(), re.MULTILINE)
