"""Hook ``crmkit_cli_commands``: an installed plugin's commands join ``crmkit``; a clash is one error line."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

import crmkit.plugins
from crmkit import hookimpl
from crmkit.cli import main


class Shouty:
    plugin_name = "shouty"

    def __init__(self, *commands: click.Command) -> None:
        self.commands = commands

    @hookimpl
    def crmkit_cli_commands(self) -> list[click.Command]:
        return list(self.commands)


@click.command("shout")
@click.argument("word")
def shout(word: str) -> None:
    """Say it louder."""
    if word == "boom":
        raise ValueError("cannot shout boom")
    click.echo(word.upper())


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stand in for the entry points: the command line loads exactly these plugins."""
    real = crmkit.plugins.create_plugin_manager

    def install(*plugins: object) -> None:
        def fake(_plugins: Any = (), **_: Any) -> Any:
            return real(plugins, load_entry_points=False)

        monkeypatch.setattr(crmkit.plugins, "create_plugin_manager", fake)

    return install


def test_a_plugin_command_runs_and_its_errors_are_one_line(installed: Any) -> None:
    installed(Shouty(shout))
    assert CliRunner().invoke(main, ["shout", "hi"]).output == "HI\n"
    failed = CliRunner().invoke(main, ["shout", "boom"])
    assert (failed.exit_code, failed.stderr) == (1, "error: cannot shout boom\n")
    assert "shout" in CliRunner().invoke(main, ["--help"]).output


@pytest.mark.parametrize("name", ["db", "import", "shout"])
def test_a_command_name_already_taken_is_one_error_line(installed: Any, name: str) -> None:
    installed(Shouty(shout), type("Other", (Shouty,), {"plugin_name": "other"})(click.Command(name)))
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 1
    assert result.stderr == f"error: plugin 'other': command {name!r} already exists\n"
