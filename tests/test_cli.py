"""The ``crmkit`` command: the README's demo, and plugin listing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from crmkit import CRM
from crmkit.cli import main


def test_demo_creates_a_database_and_prints_customers_and_stages(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--db", str(db), "--no-plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["customer", "stage", "lifecycle", "membership"]
    assert lines[1].split() == ["Anna", "Berg", "active", "active", "monthly"]
    assert "Chen Wu      trial    lead" in result.output
    assert "task for Maya (coach): Welcome call" in result.output
    crm = CRM(f"sqlite:///{db}", load_entry_points=False)
    assert crm.customers.count() == 4
    # a second run starts from a fresh file instead of failing on duplicates
    assert CliRunner().invoke(main, ["demo", "--db", str(db), "--no-plugins"]).exit_code == 0


def test_plugins_lists_core_declarations(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plugins", "--url", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0, result.output
    assert "meeting" in result.output and "(crmkit)" in result.output
