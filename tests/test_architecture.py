"""The shape of the code a plugin author and a maintainer rely on: who may import the composition root,
how hooks are called, and that no module reaches into another's private names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import crmkit
from crmkit import hookspecs
from crmkit.hooks import Hooks

PACKAGE = Path(crmkit.__file__).parent
#: The composition root and the edges that assemble a CRM (the command line, the test kit and its plugin
#: check, the demo) or serve one (the web app): only they may import ``crmkit.app``.
EDGES = {
    "crmkit/__init__.py",
    "crmkit/app.py",
    "crmkit/cli.py",
    "crmkit/cli_imports.py",
    "crmkit/cli_audit.py",
    "crmkit/cli_privacy.py",
    "crmkit/cli_web.py",
    "crmkit/web.py",
    "crmkit/testing.py",
    "crmkit/plugin_check.py",
    "crmkit/demo.py",
}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """Every import in the module, ``TYPE_CHECKING`` blocks and function bodies included."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_only_the_composition_root_and_the_edges_import_the_crm() -> None:
    modules = _modules()
    assert len(modules) > 20
    offenders = sorted(
        name
        for name, tree in modules
        if name not in EDGES
        and any(module == "crmkit.app" or (module == "crmkit" and "CRM" in names) for module, names in _imports(tree))
    )
    assert offenders == []


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = sorted(
        f"{name}: from {module} import {imported}"
        for name, tree in _modules()
        for module, names in _imports(tree)
        if module.startswith("crmkit")
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    )
    assert offenders == []


def test_every_hook_has_one_typed_method_on_the_facade_with_the_specs_arguments() -> None:
    assert len(hookspecs.HOOK_NAMES) > 10
    for name in hookspecs.HOOK_NAMES:
        if name.startswith("crmkit_register_"):
            continue  # declarations are collected plugin by plugin while the CRM is built
        method = getattr(Hooks, name.removeprefix("crmkit_"), None)
        assert method is not None, f"crmkit.hooks.Hooks has no method for {name}"
        spec = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert list(inspect.signature(method).parameters)[1:] == spec, name


def test_hooks_are_called_through_the_facade_only() -> None:
    callers = sorted(
        name
        for name, tree in _modules()
        if name != "crmkit/hooks.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("crmkit_")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "hook"
    )
    assert callers == []
