"""The ``crmkit`` command."""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from crmkit.app import CRM
from crmkit.errors import CRMError

URL_HELP = "SQLAlchemy database URL (env CRMKIT_DATABASE_URL; default sqlite:///crmkit.db)."


def _load(path: str) -> object:
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot import {path!r}: {exc}", param_hint="--plugin") from exc
    return obj() if isinstance(obj, type) else obj


def crm_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--url``, ``--plugin`` and ``--no-plugins``, turned into a ``crm`` argument."""

    @click.option("--url", default=None, help=URL_HELP)
    @click.option(
        "--plugin",
        "plugin_paths",
        multiple=True,
        metavar="MODULE[:OBJECT]",
        help="Also load this plugin (repeatable); a class is instantiated.",
    )
    @click.option("--no-plugins", is_flag=True, help="Do not load installed (entry-point) plugins.")
    def wrapper(url: str | None, plugin_paths: tuple[str, ...], no_plugins: bool, **kwargs: Any) -> Any:
        crm = CRM(
            url or os.environ.get("CRMKIT_DATABASE_URL") or "sqlite:///crmkit.db",
            plugins=[_load(p) for p in plugin_paths],
            load_entry_points=not no_plugins,
        )
        try:
            return fn(crm, **kwargs)
        finally:
            crm.close()

    own = wrapper.__click_params__  # type: ignore[attr-defined]
    functools.update_wrapper(wrapper, fn)  # name and help text; this also copies fn's click options
    wrapper.__click_params__ = [*getattr(fn, "__click_params__", []), *own]  # type: ignore[attr-defined]
    return wrapper


def _as_of(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date or datetime", param_hint="--as-of") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.group()
@click.version_option(package_name="crmkit")
def main() -> None:
    """crmkit: a pluggable CRM library."""


@main.command()
@click.option("--db", "path", default="crmkit-demo.db", show_default=True, help="SQLite file to create.")
@click.option("--size", default=2000, show_default=True, help="How many customers an edition's demo generates.")
@click.option("--no-plugins", is_flag=True, help="Ignore installed plugins: run the core's small demo.")
def demo(path: str, size: int, no_plugins: bool) -> None:
    """Create a demo SQLite database and show what crmkit does with it.

    An installed edition (such as crmkit-fitness) runs its own demo; otherwise the core's small studio
    demo prints customers and their stages.
    """
    from crmkit.plugins import create_plugin_manager

    target = Path(path)
    for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        if stale.exists():
            stale.unlink()
    pm = create_plugin_manager(load_entry_points=not no_plugins)
    pm.hook.crmkit_run_demo(path=target, echo=click.echo, size=size)
    click.echo(f"database written to {target}")


@main.group()
def db() -> None:
    """Schema and migrations."""


@db.command()
@crm_options
@click.option("--revision", default="heads", show_default=True)
def upgrade(crm: CRM, revision: str) -> None:
    """Migrate the database (core and plugin branches) to REVISION."""
    from crmkit import migrate

    migrate.upgrade(crm, revision)
    click.echo(f"at {', '.join(sorted(migrate.current(crm)))}")


@db.command()
@crm_options
def current(crm: CRM) -> None:
    """Show the revisions the database is at, and the heads it could go to."""
    from crmkit import migrate

    click.echo(f"current: {', '.join(sorted(migrate.current(crm))) or '(none)'}")
    click.echo(f"heads:   {', '.join(sorted(migrate.heads(crm)))}")


@db.command()
@crm_options
@click.option("--branch", required=True, help="'crmkit' or a plugin's name.")
@click.option("-m", "--message", required=True)
def revision(crm: CRM, branch: str, message: str) -> None:
    """Write a new migration for BRANCH by comparing the database with the models."""
    from crmkit import migrate

    migrate.revision(crm, message, branch=branch)


@main.command()
@crm_options
def plugins(crm: CRM) -> None:
    """List loaded plugins and what they declare."""
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


@main.group()
def triggers() -> None:
    """Retention triggers."""


@triggers.command("list")
@crm_options
def triggers_list(crm: CRM) -> None:
    """List triggers, highest priority first."""
    for t in crm.triggers.all():
        stages = ",".join(t.stages) or "all"
        click.echo(f"{t.name:<32} prio {t.priority:>3}  cooldown {t.cooldown.days}d  stages {stages}")
        if t.description:
            click.echo(f"    {t.description}")


@triggers.command("run")
@crm_options
@click.option("--as-of", "as_of", default=None, help="ISO date/time to evaluate at (default: now, UTC).")
@click.option("--dry-run", is_flag=True, help="Only count who would fire; write nothing.")
@click.option("--trigger", "names", multiple=True, help="Run only this trigger (repeatable).")
def triggers_run(crm: CRM, as_of: str | None, dry_run: bool, names: tuple[str, ...]) -> None:
    """Evaluate the triggers and act on new matches; print a summary per trigger."""
    selected = [crm.triggers.get(n) for n in names] if names else crm.triggers.all()
    with click.progressbar(length=len(selected), label="triggers", file=sys.stderr) as bar:
        report = crm.triggers.run(
            _as_of(as_of), names=[t.name for t in selected], dry_run=dry_run, progress=lambda *_: bar.update(1)
        )
    header = "would fire" if dry_run else "fired"
    click.echo(f"as of {report.as_of.isoformat()}{' (dry run)' if dry_run else ''}")
    click.echo(f"{'trigger':<32} {header:>10} {'held out':>9} {'failed':>7}")
    for r in report.results:
        count = r.matched if dry_run else r.fired
        click.echo(f"{r.trigger:<32} {count:>10} {r.held_out:>9} {r.failed:>7}")
        for error in r.errors:
            click.echo(f"    ! {error}")
    if any(r.failed for r in report.results):
        sys.exit(1)


@triggers.command("effectiveness")
@crm_options
@click.option("--since", default=None, help="Only firings at or after this ISO date.")
@click.option("--until", default=None, help="Only firings before this ISO date.")
def triggers_effectiveness(crm: CRM, since: str | None, until: str | None) -> None:
    """Conversion of contacted customers against the held-out control group, per trigger."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f}%"

    click.echo(f"{'trigger':<32} {'fired':>6} {'conv':>7} {'held':>6} {'conv':>7} {'uplift':>8}")
    for e in crm.triggers.effectiveness(since=_as_of(since), until=_as_of(until)):
        uplift = "-" if e.uplift is None else f"{e.uplift * 100:+.1f}pp"
        click.echo(
            f"{e.trigger:<32} {e.fired:>6} {pct(e.conversion_rate):>7} {e.held_out:>6} {pct(e.held_out_rate):>7}"
            f" {uplift:>8}"
        )


@main.command("report")
@crm_options
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="K=V", help="A report parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "csv", "json"]), default="html", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here, not to stdout.")
def report_cmd(crm: CRM, name: str, params: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Render report NAME, or list the reports with `crmkit report list`."""
    if name == "list":
        for report in crm.reports.all():
            spec = ", ".join(f"{p.name}:{p.type}" for p in report.params) or "no parameters"
            click.echo(f"{report.name:<32} {report.title}  ({spec})")
        return
    values: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not k=v", param_hint="--param")
        values[key.strip()] = value.strip()
    try:
        text = crm.reports.render(name, values, format=fmt)
    except CRMError as exc:
        raise click.ClickException(str(exc)) from exc
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


@main.group()
def tasks() -> None:
    """Tasks and next best actions."""


@tasks.command("next")
@crm_options
@click.option("--as-of", "as_of", default=None, help="The day to plan (ISO date; default today, UTC).")
@click.option("--limit", default=10, show_default=True, help="At most this many tasks per person.")
def tasks_next(crm: CRM, as_of: str | None, limit: int) -> None:
    """What each member of staff should do today, most important first."""
    users = {u["id"]: u["name"] for u in crm.users.list()}
    actions = crm.tasks.next_actions(as_of=_as_of(as_of), limit=limit)
    if not actions:
        click.echo("nothing to do")
    for assignee, items in actions.items():
        click.echo(f"{users.get(assignee, 'unassigned') if assignee else 'unassigned'}:")
        for task in items:
            due = task["due_at"][:16].replace("T", " ") if task["due_at"] else "no due date"
            click.echo(f"  [{task['priority']:>3}] {due}  {task['title']}")
            if task["reason"]:
                click.echo(f"        {task['reason']}")


def run() -> None:  # pragma: no cover - console entry point wrapper
    try:
        main(standalone_mode=True)
    except CRMError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
