"""``crmkit demo`` for the fitness edition: a generated club, today's triggers, next actions and the reports.

``run_demo(path, echo=print)`` builds a SQLite club at ``path`` with a year of generated history ending
yesterday (UTC), runs every trigger as of the start of today, prints what fired and what the first managers
should do, and writes every report as HTML into ``<stem>-reports/`` next to the database.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from crmkit import CRM
from crmkit_fitness.config import FitnessConfig
from crmkit_fitness.generator import GeneratedClub, generate
from crmkit_fitness.plugin import FitnessPlugin

#: The demo's club is always the same club, relative to today.
DEMO_SEED = 42
#: Next actions are shown for this many managers, this many tasks each.
MANAGERS_SHOWN = 3
ACTIONS_SHOWN = 4


def run_demo(
    path: Path, *, echo: Callable[[str], None] = print, members: int = 2000, config: FitnessConfig | None = None
) -> Path:
    """Create the demo club at ``path`` and return the folder the reports were written to."""
    started = time.perf_counter()
    # the generated club sells in euros: the dashboard's revenue is in the CRM's currency
    crm = CRM(f"sqlite:///{path}", plugins=[FitnessPlugin(config)], load_entry_points=False, currency="EUR")
    try:
        crm.create_schema()
        today = dt.datetime.now(dt.UTC).date()
        club = _generate(crm, members, today)
        echo(_summary(club, crm))
        # the nightly run, as of the first moment of today: the generated history ends just before it
        as_of = dt.datetime.combine(today, dt.time(), dt.UTC)
        _run_triggers(crm, as_of, echo)
        _next_actions(crm, as_of, echo)
        folder, written = _write_reports(crm, path)
        dashboard = (folder / "index.html").resolve().as_uri()
        echo(f"\n{written} reports written to {folder}/; open the dashboard: {dashboard}")
        echo(f"or serve them live: crmkit serve --url sqlite:///{path} --currency EUR")
        echo(f"demo built in {time.perf_counter() - started:.1f} s")
        return folder
    finally:
        crm.close()


def _generate(crm: CRM, members: int, today: dt.date) -> GeneratedClub:
    with click.progressbar(length=members, label="generating the club", file=sys.stderr) as bar:

        def progress(step: str, done: int, total: int) -> None:
            bar.label = f"generating the club: {step}"
            bar.update(done - bar.pos)

        return generate(crm, members=members, seed=DEMO_SEED, today=today, progress=progress)


def _summary(club: GeneratedClub, crm: CRM) -> str:
    stages = ", ".join(f"{crm.formats.label('stage', name).lower()} {count:,}" for name, count in club.stages.items())
    return (
        f"A club with {club.members:,} members, {club.managers} managers and {club.trainers} trainers; "
        f"a year to {club.today - dt.timedelta(days=1)}:\n"
        f"  {club.checkins:,} check-ins, {club.memberships:,} memberships ({club.freezes:,} frozen once), "
        f"{club.purchases:,} purchases, {club.pt_sessions:,} PT sessions, {club.calls:,} calls\n"
        f"  stages today: {stages}"
    )


def _run_triggers(crm: CRM, as_of: dt.datetime, echo: Callable[[str], None]) -> None:
    triggers = {t.name: t for t in crm.triggers.all()}
    with click.progressbar(length=len(triggers), label="running the triggers", file=sys.stderr) as bar:
        report = crm.triggers.run(as_of, progress=lambda *_: bar.update(1))
    echo(f"\nTriggers as of {as_of:%Y-%m-%d %H:%M} UTC:")
    for result in report.results:
        trigger = triggers[result.trigger]
        what = "moved" if trigger.move_to else "tasks"
        held = f", {result.held_out} held out" if result.held_out else ""
        failed = f", {result.failed} FAILED" if result.failed else ""
        echo(f"  {trigger.label or result.trigger:<32} {result.fired:>4} {what}{held}{failed}  ({trigger.description})")
        for error in result.errors[:3]:
            echo(f"      ! {error}")


def _next_actions(crm: CRM, as_of: dt.datetime, echo: Callable[[str], None]) -> None:
    """The first managers' lists for today. The run's tasks are due 8 or 24 hours after it, so by the end
    of today; ``next_actions`` keeps a task due exactly at midnight for the next day (``due_at < end of
    day``), so the list is asked for as of tomorrow, which holds nothing but today's run."""
    managers = [u for u in crm.users.list() if u["role"] == "manager"][:MANAGERS_SHOWN]
    actions = crm.tasks.next_actions(as_of=as_of + dt.timedelta(days=1), limit=ACTIONS_SHOWN)
    echo(f"\nNext best actions for today, {as_of.date()}:")
    for manager in managers:
        tasks = actions.get(manager["id"], [])
        echo(f"  {manager['name']} ({manager['branch']}):" + ("" if tasks else " nothing to do"))
        for task in tasks:
            echo(f"    [{task['priority']:>2}] {task['title']}")
            if task["reason"]:
                echo(f"         {task['reason']}")


def _write_reports(crm: CRM, path: Path) -> tuple[Path, int]:
    """The dashboard and every report as linked HTML pages (``crm.reports.write_site``)."""
    folder = path.with_name(f"{path.stem}-reports")
    reports = crm.reports.visible()
    with click.progressbar(length=len(reports), label="writing the reports", file=sys.stderr) as bar:
        crm.reports.write_site(folder, progress=lambda report: bar.update(1))
    return folder, len(reports)
