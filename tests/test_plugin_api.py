"""The declared plugin API (crmkit.api): it exists, docs/plugin-api.md describes all of it, and the fitness
edition imports nothing from crmkit outside it."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from crmkit.api import PLUGIN_API

ROOT = Path(__file__).resolve().parent.parent
FITNESS = ROOT / "plugins" / "fitness" / "src"
PAGE = ROOT / "docs" / "plugin-api.md"


def _crmkit(module: str) -> bool:
    return module == "crmkit" or module.startswith("crmkit.")


def imports_outside_the_api(source: str, where: str) -> list[str]:
    """Every import of a crmkit module or name that ``PLUGIN_API`` does not declare, as ``where: what``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _crmkit(alias.name) and alias.name not in PLUGIN_API:
                    problems.append(f"{where}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _crmkit(node.module):
            declared = PLUGIN_API.get(node.module)
            for alias in node.names:
                # "from crmkit import db" imports a module: it must be declared as one
                submodule = f"{node.module}.{alias.name}"
                if declared is None or (alias.name not in declared and submodule not in PLUGIN_API):
                    problems.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
    return problems


def test_the_checker_catches_what_it_must() -> None:
    source = (
        "from crmkit.unit import use_transaction\nimport crmkit.reports.kpis\nfrom crmkit.db import Base, Merge\n"
        "from crmkit import CRM, app\nfrom crmkit_fitness.models import Plan\nfrom .x import y\nimport crmkit.sql\n"
    )
    assert imports_outside_the_api(source, "m") == [
        "m:1: from crmkit.unit import use_transaction",
        "m:2: import crmkit.reports.kpis",
        "m:3: from crmkit.db import Merge",
        "m:4: from crmkit import app",
    ]


def test_every_declared_name_exists() -> None:
    for module, names in PLUGIN_API.items():
        loaded = importlib.import_module(module)
        assert names, module
        assert sorted(n for n in names if not hasattr(loaded, n)) == [], module


def test_the_fitness_edition_and_the_example_plugin_import_only_the_declared_api() -> None:
    files = sorted(FITNESS.rglob("*.py"))
    assert len(files) > 10  # the package, its migrations: not an empty folder by mistake
    files.append(ROOT / "examples" / "custom_plugin.py")
    problems = [p for f in files for p in imports_outside_the_api(f.read_text(), str(f.relative_to(ROOT)))]
    assert problems == []


def test_the_page_describes_every_module_and_name() -> None:
    text = PAGE.read_text()
    headings = re.findall(r"^## `(crmkit[\w.]*)`", text, re.MULTILINE)
    assert sorted(headings) == sorted(PLUGIN_API), "one '## `module`' section per declared module"
    sections = dict(zip(headings, re.split(r"^## `crmkit[\w.]*`.*$", text, flags=re.MULTILINE)[1:], strict=True))
    for module, names in PLUGIN_API.items():
        missing = sorted(n for n in names if f"`{n}`" not in sections[module] and f"`{n}(" not in sections[module])
        assert missing == [], f"docs/plugin-api.md, section {module}: not described"


@pytest.mark.parametrize("page", ["plugin-guide.md", "reports.md"])
def test_the_guides_link_the_api_page(page: str) -> None:
    assert "(plugin-api.md" in (ROOT / "docs" / page).read_text()
