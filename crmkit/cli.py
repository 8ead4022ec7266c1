"""The ``crmkit`` command.

A user's mistake (a bad option, a database that is not there, a file that cannot be written) ends the
command with one line ``error: ...`` on stderr and a non-zero exit code, never a traceback: every command
runs inside :class:`_Main`, which turns crmkit's, SQLAlchemy's and the operating system's errors into that
line. Set ``CRMKIT_TRACEBACK=1`` to see the traceback instead (for a bug report).

Installed plugins add commands with the hook ``crmkit_cli_commands``; :func:`crm_options` and
:class:`CommandError` are **public and stable** for them (see ``docs/plugin-api.md``).

Only ``db upgrade`` (and ``demo``, on its own file) may create a database: every other command refuses a
SQLite file that does not exist, so a typo in ``--url`` does not leave an empty database behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, overload
from urllib.parse import quote

import click
import sqlalchemy.exc
from sqlalchemy.engine import URL, make_url

from crmkit.app import CRM
from crmkit.errors import CRMError
from crmkit.reports.engine import FIRST_DAY, LAST_DAY

DEFAULT_URL = "sqlite:///crmkit.db"
URL_HELP = f"SQLAlchemy database URL (env CRMKIT_DATABASE_URL; default {DEFAULT_URL})."
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CommandError(click.ClickException):
    """A user error, shown as one line ``error: ...``."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {_one_line(self.format_message())}", err=True)


class _OneLineUsageError(click.UsageError):
    """click's usage error (a bad or missing option) in one line, with where to find the help."""

    def show(self, file: IO[Any] | None = None) -> None:
        message = _one_line(self.format_message())
        message = message[:1].lower() + message[1:]
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"error: {message}{hint}", err=True)


_NO_ARGS_IS_HELP: tuple[type[Exception], ...] = tuple(
    filter(None, [getattr(click.exceptions, "NoArgsIsHelpError", None)])
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _as_usage_error(exc: click.UsageError) -> click.UsageError:
    # a group run without a command shows its help, which is not an error message to squeeze
    if isinstance(exc, (_OneLineUsageError, *_NO_ARGS_IS_HELP)):
        return exc
    # the exit code is click's per class (2 for every usage error), so the short form keeps it
    return _OneLineUsageError(exc.format_message(), exc.ctx)


def _describe(exc: BaseException) -> str | None:
    """The one line a user error reads as; ``None`` for an exception that is not a user's error."""
    if isinstance(exc, CRMError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return f"database error: {_driver_message(exc)}"
    if isinstance(exc, (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError, OverflowError)):
        return str(exc) or type(exc).__name__
    return None


#: the core's commands that live in a module of their own, which imports this one (for ``crm_options``):
#: looked up when they are run, so that either module can be imported first
_OWN_MODULES = {
    "import": "crmkit.cli_imports:imports",
    "audit": "crmkit.cli_audit:audit",
    "person": "crmkit.cli_privacy:person",
    "serve": "crmkit.cli_web:serve",
}


def _own_command(name: str) -> click.Command | None:
    if name not in _OWN_MODULES:
        return None
    module, _, attr = _OWN_MODULES[name].partition(":")
    command: click.Command = getattr(importlib.import_module(module), attr)
    return command


class _Main(click.Group):
    """The top-level group: every user error of every command becomes one line. The installed plugins'
    commands (hook ``crmkit_cli_commands``) join it, looked up once per run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_OWN_MODULES, *_plugin_commands(ctx, self)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or _own_command(cmd_name) or _plugin_commands(ctx, self).get(cmd_name)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _as_usage_error(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _as_usage_error(exc) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # the reader went away (`crmkit tasks next | head`): nothing to say, and nobody to say it to
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:
            message = _describe(exc)
            if message is None or os.environ.get("CRMKIT_TRACEBACK"):
                raise
            raise CommandError(message) from exc


def _plugin_commands(ctx: click.Context, group: click.Group) -> dict[str, click.Command]:
    """The commands the installed plugins add, by name; kept for this run in the context's ``meta``."""
    found: dict[str, click.Command] | None = ctx.meta.get("crmkit.plugin_commands")
    if found is not None:
        return found
    from crmkit.hooks import Hooks
    from crmkit.plugins import create_plugin_manager

    found = ctx.meta["crmkit.plugin_commands"] = {}
    try:
        manager = create_plugin_manager(load_entry_points=True)
    except CRMError as exc:
        raise CommandError(str(exc)) from exc
    for plugin, command in Hooks(manager).cli_commands():
        if not isinstance(command, click.Command) or not command.name:
            raise CommandError(f"plugin {plugin!r}: crmkit_cli_commands returned {command!r}")
        if command.name in group.commands or command.name in _OWN_MODULES or command.name in found:
            raise CommandError(f"plugin {plugin!r}: command {command.name!r} already exists")
        found[command.name] = command
    return found


# -- the database --------------------------------------------------------------------------------------


def _driver_message(exc: sqlalchemy.exc.DBAPIError) -> str:
    # the first line says what failed; PostgreSQL's next lines quote the SQL, which a user did not write
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


def _not_migrated(exc: sqlalchemy.exc.DBAPIError) -> bool:
    """A missing table or column: the database was never migrated, or not since a plugin was added."""
    code = getattr(exc.orig, "sqlstate", None)  # psycopg: undefined_table, undefined_column
    if code in ("42P01", "42703"):
        return True
    text = str(exc.orig)
    return text.startswith("no such table") or text.startswith("no such column")


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL opens, or ``None`` for an in-memory database or one given as a URI."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _read_write_url(url: URL, path: Path) -> URL:
    """The same file opened as a SQLite URI in mode ``rw``: SQLite then refuses to create it."""
    uri = f"file:{quote(str(path.resolve()))}"
    return url.set(database=uri, query={**url.query, "mode": "rw", "uri": "true"})


def _open(
    raw: str,
    plugins: list[object],
    load_entry_points: bool,
    *,
    database: str,
    settings: Mapping[str, str] | None = None,
) -> CRM:
    given = dict(settings or {})
    try:
        url = make_url(raw)
    except sqlalchemy.exc.ArgumentError:
        raise click.BadParameter(
            f"{raw!r} is not a database URL (e.g. sqlite:///crm.db or postgresql+psycopg://user@host/db)",
            param_hint="'--url'",
        ) from None
    path = _sqlite_file(url)
    if path is not None:
        if database != "unused" and not path.parent.is_dir():
            raise CommandError(f"--url: folder {str(path.parent)!r} of database file {str(path)!r} does not exist")
        if database != "create":
            if database == "required" and not path.is_file():
                raise CommandError(
                    f"--url: database file {str(path)!r} does not exist"
                    " (pass the --url of an existing database, or create it with 'crmkit db upgrade --url URL')"
                )
            url = _read_write_url(url, path)
    try:
        return CRM(
            url.render_as_string(hide_password=False),
            plugins=plugins,
            load_entry_points=load_entry_points,
            locale=given.get("locale", "en_US"),
            currency=given.get("currency", "USD"),
            time_zone=given.get("time_zone", "UTC"),
        )
    except sqlalchemy.exc.NoSuchModuleError:
        raise CommandError(
            f"--url: no database driver for {url.drivername!r} (use sqlite or postgresql+psycopg)"
        ) from None
    except ImportError as exc:
        raise CommandError(f"--url: the driver for {url.drivername!r} is not installed ({exc})") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise CommandError(f"--url: {_one_line(str(exc))}") from None
    except ValueError as exc:  # a locale, currency or time zone the CRM does not know
        raise CommandError(_one_line(str(exc))) from None


def _database_error(exc: sqlalchemy.exc.DBAPIError, where: str) -> CommandError:
    if exc.statement is None:
        return CommandError(f"cannot connect to {where}: {_driver_message(exc)}")
    if _not_migrated(exc):
        return CommandError(
            f"the database {where} is not migrated ({_driver_message(exc)}): run 'crmkit db upgrade --url URL'"
        )
    return CommandError(f"database error on {where}: {_driver_message(exc)}")


def _shown_url(raw: str) -> str:
    """The URL as the user gave it, without its password."""
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return raw


def _load(path: str) -> object:
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj() if isinstance(obj, type) else obj
    except Exception as exc:  # importing or building someone else's code can raise anything
        raise click.BadParameter(f"cannot load {path!r}: {_one_line(str(exc))}", param_hint="'--plugin'") from None


LOCALE_HELP = "How reports show numbers and dates, e.g. de_DE (default: $CRMKIT_LOCALE, else en_US)."
CURRENCY_HELP = "The CRM's currency, ISO 4217, for revenue and money in reports (default: $CRMKIT_CURRENCY)."
ZONE_HELP = "The CRM's IANA time zone: days, hours and the dashboard's periods (default: $CRMKIT_TIME_ZONE)."


@overload
def crm_options(fn: Callable[..., Any], *, database: str = "required") -> Callable[..., Any]: ...
@overload
def crm_options(
    fn: None = None, *, database: str = "required"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...
def crm_options(fn: Callable[..., Any] | None = None, *, database: str = "required") -> Any:
    """``--url``, ``--plugin``, ``--no-plugins`` and ``--as-user``, turned into a ``crm`` argument (whose
    calls run as that user).

    ``database`` says what the command does with the database: ``"required"`` (an existing one, the
    default), ``"create"`` (the one command that builds it, ``db upgrade``) or ``"unused"`` (it only lists
    what the plugins declare, so it works without one). Only ``"create"`` may make a SQLite file.
    """
    if fn is None:
        return functools.partial(crm_options, database=database)

    @click.option("--url", default=None, help=URL_HELP)
    @click.option(
        "--plugin",
        "plugin_paths",
        multiple=True,
        metavar="MODULE[:OBJECT]",
        help="Also load this plugin (repeatable); a class is instantiated.",
    )
    @click.option("--no-plugins", is_flag=True, help="Do not load installed (entry-point) plugins.")
    @click.option(
        "--as-user",
        "as_user",
        type=click.IntRange(min=1),
        default=None,
        envvar="CRMKIT_USER",
        metavar="ID",
        help="Run as this user, with their role's permissions (default: $CRMKIT_USER, else the application).",
    )
    @click.option("--locale", envvar="CRMKIT_LOCALE", default="en_US", show_default=True, help=LOCALE_HELP)
    @click.option("--currency", envvar="CRMKIT_CURRENCY", default="USD", show_default=True, help=CURRENCY_HELP)
    @click.option("--time-zone", envvar="CRMKIT_TIME_ZONE", default="UTC", show_default=True, help=ZONE_HELP)
    def wrapper(
        url: str | None,
        plugin_paths: tuple[str, ...],
        no_plugins: bool,
        as_user: int | None,
        locale: str,
        currency: str,
        time_zone: str,
        **kwargs: Any,
    ) -> Any:
        # the default (a file in the working folder) is named in the error a read command gives without it
        raw = url or os.environ.get("CRMKIT_DATABASE_URL") or DEFAULT_URL
        settings = {"locale": locale, "currency": currency, "time_zone": time_zone}
        crm = _open(raw, [_load(p) for p in plugin_paths], not no_plugins, database=database, settings=settings)
        try:
            if as_user is None or database == "unused":
                return fn(crm, **kwargs)
            with crm.as_user(as_user):
                return fn(crm, **kwargs)
        except sqlalchemy.exc.DBAPIError as exc:
            if os.environ.get("CRMKIT_TRACEBACK"):
                raise
            raise _database_error(exc, _shown_url(raw)) from exc
        finally:
            crm.close()

    # click keeps a command's options in an attribute of the function that no type declares
    own = wrapper.__click_params__  # type: ignore[attr-defined]
    functools.update_wrapper(wrapper, fn)  # name and help text; this also copies fn's click options
    wrapper.__click_params__ = [*getattr(fn, "__click_params__", []), *own]  # type: ignore[attr-defined]
    return wrapper


# -- values --------------------------------------------------------------------------------------------


def _moment(value: str | None, option: str) -> dt.datetime | None:
    """An ISO date or datetime (UTC unless it says otherwise) within the dates a command accepts."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or datetime", param_hint=f"'{option}'") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if not FIRST_DAY <= moment.date() <= LAST_DAY:
        raise click.BadParameter(
            f"{value!r} is out of range (from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()})",
            param_hint=f"'{option}'",
        )
    return moment


def _period(since: str | None, until: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    start, end = _moment(since, "--since"), _moment(until, "--until")
    if start is not None and end is not None and end < start:
        raise click.BadParameter(f"{until!r} is before --since {since!r}", param_hint="'--until'")
    return start, end


# -- the commands --------------------------------------------------------------------------------------


@click.group(cls=_Main, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="crmkit")
def main() -> None:
    """crmkit: a pluggable CRM library."""


@main.command()
@click.option("--db", "path", default="crmkit-demo.db", show_default=True, help="SQLite file to create.")
@click.option(
    "--size",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many customers an edition's demo generates.",
)
@click.option("--no-plugins", is_flag=True, help="Ignore installed plugins: run the core's small demo.")
def demo(path: str, size: int, no_plugins: bool) -> None:
    """Create a demo SQLite database and show what crmkit does with it.

    An installed edition (such as crmkit-fitness) runs its own demo; otherwise the core's small studio
    demo prints customers and their stages.
    """
    from crmkit.hooks import Hooks
    from crmkit.plugins import create_plugin_manager

    target = Path(path)
    if not target.parent.is_dir():
        raise CommandError(f"--db: folder {str(target.parent)!r} does not exist")
    files = (target, Path(f"{target}-wal"), Path(f"{target}-shm"))
    for stale in files:
        stale.unlink(missing_ok=True)
    pm = create_plugin_manager(load_entry_points=not no_plugins)
    try:
        Hooks(pm).run_demo(target, click.echo, size)
    except BaseException:
        # a half-built demo is worse than none: the next run would start from it
        for partial in files:
            partial.unlink(missing_ok=True)
        raise
    click.echo(f"database written to {target}")


@main.group()
def db() -> None:
    """Schema and migrations."""


@db.command()
@crm_options(database="create")
@click.option("--revision", default="heads", show_default=True)
def upgrade(crm: CRM, revision: str) -> None:
    """Migrate the database (core and plugin branches) to REVISION; creates a SQLite file if missing.

    Refuses, before migrating anything, when a loaded plugin has tables but no migration branch (unless
    REVISION is explicit, such as crmkit@head to write that plugin's first revision)."""
    from crmkit import migrate

    migrate.upgrade(crm, revision)
    click.echo(f"at {', '.join(sorted(migrate.current(crm)))}")


@db.command()
@crm_options
def current(crm: CRM) -> None:
    """Show the revisions the database is at, and the heads it could go to.

    Refuses when a loaded plugin has tables but no migration branch: no revision would create them."""
    from crmkit import migrate

    migrate.check_branches(crm)
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
@crm_options(database="unused")
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
@crm_options(database="unused")
def triggers_list(crm: CRM) -> None:
    """List triggers, highest priority first."""
    for t in crm.triggers.all():
        stages = ",".join(t.stages) or "all"
        click.echo(f"{t.name:<32} prio {t.priority:>3}  cooldown {t.cooldown.days}d  stages {stages}")
        if t.description:
            click.echo(f"    {t.description}")


def _progress(length: int) -> AbstractContextManager[Any]:
    # the bar is for a person watching; in a pipe or a log it would only be a stray line before an error
    if sys.stderr.isatty():
        return click.progressbar(length=length, label="triggers", file=sys.stderr)
    return contextlib.nullcontext(None)


@triggers.command("run")
@crm_options
@click.option("--as-of", "as_of", default=None, help="ISO date/time to evaluate at (default: now, UTC).")
@click.option("--dry-run", is_flag=True, help="Only count who would fire; write nothing.")
@click.option("--trigger", "names", multiple=True, help="Run only this trigger (repeatable).")
def triggers_run(crm: CRM, as_of: str | None, dry_run: bool, names: tuple[str, ...]) -> None:
    """Evaluate the triggers and act on new matches; print a summary per trigger."""
    moment = _moment(as_of, "--as-of")
    selected = [crm.triggers.get(n) for n in names] if names else crm.triggers.all()
    with _progress(len(selected)) as bar:
        report = crm.triggers.run(
            moment, names=[t.name for t in selected], dry_run=dry_run, progress=lambda *_: bar and bar.update(1)
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
    start, end = _period(since, until)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f}%"

    click.echo(f"{'trigger':<32} {'fired':>6} {'conv':>7} {'held':>6} {'conv':>7} {'uplift':>8}")
    for e in crm.triggers.effectiveness(since=start, until=end):
        uplift = "-" if e.uplift is None else f"{e.uplift * 100:+.1f}pp"
        click.echo(
            f"{e.trigger:<32} {e.fired:>6} {pct(e.conversion_rate):>7} {e.held_out:>6} {pct(e.held_out_rate):>7}"
            f" {uplift:>8}"
        )


@main.command("report")
@crm_options
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="K=V", help="A report parameter (repeatable).")
@click.option(
    "--format", "fmt", type=click.Choice(["html", "md", "csv", "json", "xlsx"]), default="html", show_default=True
)
@click.option("-o", "--output", help="Write here, not to stdout (a folder for `crmkit report site`).")
def report_cmd(crm: CRM, name: str, params: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Render report NAME; `crmkit report list` lists the reports, `crmkit report site -o FOLDER` writes the
    dashboard and every report as linked HTML pages."""
    if name == "list":
        for report in crm.reports.all():
            spec = ", ".join(f"{p.name}:{p.type}" for p in report.params) or "no parameters"
            click.echo(f"{report.name:<32} {report.title}  ({spec})")
        return
    if name == "site":
        _write_site(crm, output)
        return
    values: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not k=v", param_hint="'--param'")
        values[key.strip()] = value.strip()
    # checked before the report runs, so a typo in the path does not cost a report's computation
    if output and not Path(output).parent.is_dir():
        raise CommandError(f"-o: folder {str(Path(output).parent)!r} does not exist")
    if output and Path(output).is_dir():
        raise CommandError(f"-o: {output!r} is a folder; name a file")
    if fmt == "xlsx":
        if not output:
            raise CommandError("--format xlsx needs -o FILE: a workbook is not text for the terminal")
        data = crm.reports.xlsx(crm.reports.run(name, values))
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise CommandError(f"-o: cannot write {output!r}: {exc.strerror}") from exc
        click.echo(f"wrote {output}", err=True)
        return
    text = crm.reports.render(name, values, format=fmt)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"-o: cannot write {output!r}: {exc.strerror}") from exc
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


def _write_site(crm: CRM, output: str | None) -> None:
    if not output:
        raise CommandError("crmkit report site needs -o FOLDER")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"-o: {output!r} is a file; name a folder")
    if not folder.parent.is_dir():
        raise CommandError(f"-o: folder {str(folder.parent)!r} does not exist")
    try:
        written = crm.reports.write_site(folder)
    except OSError as exc:
        raise CommandError(f"-o: cannot write into {output!r}: {exc.strerror}") from exc
    click.echo(f"wrote {len(written)} pages to {folder}/; open {(folder / 'index.html').resolve().as_uri()}")


@main.group()
def tasks() -> None:
    """Tasks and next best actions."""


@tasks.command("next")
@crm_options
@click.option("--as-of", "as_of", default=None, help="The day to plan (ISO date; default today, UTC).")
@click.option(
    "--limit", default=10, show_default=True, type=click.IntRange(min=1), help="At most this many tasks per person."
)
def tasks_next(crm: CRM, as_of: str | None, limit: int) -> None:
    """What each member of staff should do today, most important first."""
    moment = _moment(as_of, "--as-of")
    users = {u["id"]: u["name"] for u in crm.users.list()}
    actions = crm.tasks.next_actions(as_of=moment, limit=limit)
    if not actions:
        click.echo("nothing to do")
    for assignee, items in actions.items():
        click.echo(f"{users.get(assignee, 'unassigned') if assignee else 'unassigned'}:")
        for task in items:
            due = task["due_at"][:16].replace("T", " ") if task["due_at"] else "no due date"
            click.echo(f"  [{task['priority']:>3}] {due}  {task['title']}")
            if task["reason"]:
                click.echo(f"        {task['reason']}")


# -- export --------------------------------------------------------------------------------------------

_EXPORTED = {"customers": "customer", "activities": "activity", "tasks": "task"}


def _where(items: tuple[str, ...]) -> dict[str, str]:
    """``--where FIELD=VALUE`` options as the list API's filter; values stay text, which the list API reads
    as a web query string's (``field__in=a,b`` splits at the commas)."""
    where: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="'--where'")
        if key in where:
            raise click.BadParameter(f"{key!r} is given twice", param_hint="'--where'")
        where[key] = value
    return where


@contextlib.contextmanager
def _export_progress(count: Callable[[], int], what: str) -> Iterator[Callable[[int], None] | None]:
    """A bar with records per second on stderr while a person watches; nothing in a pipe or a log."""
    if not sys.stderr.isatty():
        yield None
        return
    total = count()
    started = time.monotonic()
    done = 0

    def rate(_: object) -> str:
        elapsed = time.monotonic() - started
        return f"{done / elapsed:,.0f} rows/s" if elapsed > 0 and done else ""

    with click.progressbar(length=total, label=f"exporting {what}", file=sys.stderr, item_show_func=rate) as bar:

        def advance(rows: int) -> None:
            nonlocal done
            done += rows
            bar.update(rows, done)

        yield advance


@main.command("export")
@crm_options
@click.argument("what", type=click.Choice(list(_EXPORTED)))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx", "jsonl"]), default=None, help="Default: the file's ending."
)
@click.option("--where", "wheres", multiple=True, metavar="FIELD=VALUE", help="A filter of the list API (repeatable).")
@click.option("--columns", default=None, metavar="A,B,C", help="Only these fields, in this order.")
def export_cmd(crm: CRM, what: str, output: str, fmt: str | None, wheres: tuple[str, ...], columns: str | None) -> None:
    """Write customers, activities or tasks to a CSV, XLSX or JSON lines file, a page at a time.

    WHAT is customers, activities or tasks. --where takes the list API's filters (stage=member,
    home_club=North, created_at__gte=2026-01-01, stage__in=lead,trial, phone__isnull=true)."""
    where = _where(wheres)
    picked = [c.strip() for c in columns.split(",")] if columns is not None else None
    service = {"customers": crm.customers, "activities": crm.activities, "tasks": crm.tasks}[what]
    export = {"customers": crm.exports.customers, "activities": crm.exports.activities, "tasks": crm.exports.tasks}
    with _export_progress(lambda: service.count(where), what) as progress:
        report = export[what](output, format=fmt, where=where, columns=picked, progress=progress)
    noun = what if report.rows != 1 else _EXPORTED[what]
    click.echo(f"exported {report.rows} {noun} to {output}")


def run() -> None:  # pragma: no cover - console entry point
    main()
