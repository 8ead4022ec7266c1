"""The ``crmkit`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from crmkit.app import CRM
from crmkit.errors import CRMError

URL_HELP = "SQLAlchemy database URL (env CRMKIT_DATABASE_URL; default sqlite:///crmkit.db)."


def _crm(url: str | None, no_plugins: bool) -> CRM:
    return CRM(url or os.environ.get("CRMKIT_DATABASE_URL") or "sqlite:///crmkit.db", load_entry_points=not no_plugins)


@click.group()
@click.version_option(package_name="crmkit")
def main() -> None:
    """crmkit: a pluggable CRM library."""


@main.command()
@click.option("--db", "path", default="crmkit-demo.db", show_default=True, help="SQLite file to create.")
def demo(path: str) -> None:
    """Create a SQLite CRM with a small studio plugin and print customers and their stages."""
    from crmkit import demo as demo_mod

    target = Path(path)
    if target.exists():
        target.unlink()
    crm = demo_mod.run(f"sqlite:///{target}", echo=click.echo)
    crm.close()
    click.echo(f"database written to {target}")


@main.group()
def db() -> None:
    """Schema and migrations."""


@db.command()
@click.option("--url", default=None, help=URL_HELP)
@click.option("--no-plugins", is_flag=True, help="Ignore installed plugins.")
@click.option("--revision", default="heads", show_default=True)
def upgrade(url: str | None, no_plugins: bool, revision: str) -> None:
    """Migrate the database (core and plugin branches) to REVISION."""
    from crmkit import migrate

    crm = _crm(url, no_plugins)
    migrate.upgrade(crm, revision)
    click.echo(f"at {', '.join(sorted(migrate.current(crm)))}")


@db.command()
@click.option("--url", default=None, help=URL_HELP)
@click.option("--no-plugins", is_flag=True, help="Ignore installed plugins.")
def current(url: str | None, no_plugins: bool) -> None:
    """Show the revisions the database is at, and the heads it could go to."""
    from crmkit import migrate

    crm = _crm(url, no_plugins)
    click.echo(f"current: {', '.join(sorted(migrate.current(crm))) or '(none)'}")
    click.echo(f"heads:   {', '.join(sorted(migrate.heads(crm)))}")


@db.command()
@click.option("--url", default=None, help=URL_HELP)
@click.option("--branch", required=True, help="'crmkit' or a plugin's name.")
@click.option("-m", "--message", required=True)
def revision(url: str | None, branch: str, message: str) -> None:
    """Write a new migration for BRANCH by comparing the database with the models."""
    from crmkit import migrate

    migrate.revision(_crm(url, False), message, branch=branch)


@main.command()
@click.option("--url", default=None, help=URL_HELP)
def plugins(url: str | None) -> None:
    """List loaded plugins and what they declare."""
    crm = _crm(url, False)
    reg = crm.registry
    click.echo(f"plugins: {', '.join(reg.plugins) or '(none)'}")
    for title, specs in (
        ("fields", reg.fields.values()),
        ("stages", reg.stages.values()),
        ("activity kinds", reg.activity_kinds.values()),
    ):
        click.echo(f"{title}:")
        for spec in specs:
            click.echo(f"  {spec.name:<20} ({spec.owner})")


def run() -> None:  # pragma: no cover - console entry point wrapper
    try:
        main(standalone_mode=True)
    except CRMError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
