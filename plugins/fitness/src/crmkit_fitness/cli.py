"""``crmkit fitness ...``: the club's commands, added to the ``crmkit`` command line by the plugin
(hook ``crmkit_cli_commands``).

    crmkit fitness import-turnstile export.csv --url postgresql+psycopg://... --tz Europe/Berlin

prints how many check-ins were stored, how many lines were already imported and every rejected line; it
exits with status 1 when a line was rejected (the good lines are stored all the same), so a nightly job
notices.
"""

from __future__ import annotations

import click

from crmkit import CRM
from crmkit.cli import CommandError, crm_options
from crmkit_fitness.turnstile import import_turnstile


@click.group("fitness")
def fitness_group() -> None:
    """The fitness edition: memberships, check-ins, the club's operations."""


@fitness_group.command("import-turnstile")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--tz", default="UTC", show_default=True, help="Time zone of times written without one.")
@click.option("--club", default=None, help="Club of lines without a club column (default: the plugin's).")
@crm_options
def import_turnstile_cmd(crm: CRM, path: str, tz: str, club: str | None) -> None:
    """Import a turnstile export (card, time[, door, club]) as check-ins, committed a chunk at a time."""
    if "fitness" not in crm.plugins:
        raise CommandError("the fitness plugin is not loaded (drop --no-plugins)")
    report = import_turnstile(crm, path, club=club, tz=tz)
    click.echo(
        f"stored {report.imported} check-ins, skipped {report.duplicates} already imported, "
        f"rejected {len(report.rejected)} lines"
    )
    for problem in report.rejected:
        click.echo(f"  line {problem.line}: {problem.reason}")
    if report.rejected:
        raise click.exceptions.Exit(1)
