"""``crmkit import``: customers from a file, an integration's file (an importer of the core or a plugin),
the list of imports, and revert.

``crmkit import customers FILE`` and ``crmkit import NAME FILE`` print what the import did: a line per
action with its count, the import's id, where the rejected lines went. A dry run also prints what each of
the first lines would do, and writes nothing. The exit code is 0 when the import ran, rejected lines or
not (the reject file has them: a file with a few bad lines is a normal day), and 1 with ``--strict`` when
any line was rejected (what a script that must stop on bad data wants). A user's mistake (a file that
cannot be read, a bad ``--map``, an unknown field or importer, a bad ``--date-format``) is one line
``error: ...`` with a non-zero exit code and nothing written, as everywhere in ``crmkit``.

The rejected lines of a real run go to ``--rejects PATH``, or, when there are any, to
``<FILE's stem>.rejects.csv`` next to FILE. The file is written under a temporary name and renamed once the
import ends, so a run without rejects never overwrites the rejects of the run before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import click
import phonenumbers

from crmkit.cli import CommandError, crm_options
from crmkit.imports.report import ACTIONS, ImportReport, LineOutcome
from crmkit.imports.values import ParseOptions

if TYPE_CHECKING:
    from crmkit.app import CRM

#: how many rejected lines a real run prints (the reject file has them all)
REJECTS_SHOWN = 5


class _ImportGroup(click.Group):
    """``crmkit import``: its own commands, and any other name runs the importer of that name."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        if own is not None or cmd_name.startswith("-"):
            return own
        return _importer_command(cmd_name)


@click.group("import", cls=_ImportGroup)
def imports() -> None:
    """Import customers or an integration's file; list the imports; revert one.

    \b
    crmkit import customers FILE     customers from a CSV, XLSX or JSON lines file
    crmkit import NAME FILE          an importer of the core or of a plugin (a call log, receipts...)
    crmkit import list               the imports, most recent first
    crmkit import revert ID          take an import back

    An unknown NAME is an error that lists the importers there are."""


# -- options both kinds of import take ------------------------------------------------------------


def _apply(decorators: Sequence[Callable[[Any], Any]], fn: Any) -> Any:
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


_READING = [
    click.option("--dry-run", is_flag=True, help="Show what the import would do; write nothing."),
    click.option(
        "--preview",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="Show what the first N lines do (default: 20 on a dry run, none on a real run).",
    ),
    click.option(
        "--rejects",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="PATH",
        help="Write the rejected lines here (default: FILE's name with .rejects.csv, next to it, when any).",
    ),
    click.option("--strict", is_flag=True, help="Exit with status 1 when any line is rejected."),
    click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "jsonl"]), help="Default: FILE's suffix."),
    click.option("--encoding", default=None, help="The text's encoding, e.g. cp1252 (default: UTF-8)."),
    click.option("--delimiter", default=None, help="CSV: the delimiter (default: guessed from the header)."),
    click.option("--sheet", default=None, help="XLSX: the sheet to read (default: the first)."),
    click.option("--date-format", default=None, help="How dates are written, e.g. dd/mm/yyyy (default: yyyy-mm-dd)."),
    click.option("--datetime-format", default=None, help="How times are written, e.g. 'dd/mm/yyyy HH:MM'."),
    click.option("--timezone", default=None, help="The zone of times without an offset, e.g. Europe/Berlin."),
    click.option("--decimal-comma", is_flag=True, help="Numbers are written 1.234,56."),
    click.option("--phone-region", default=None, help="Read numbers without + in this region, e.g. GB."),
    click.option("--chunk-size", type=click.IntRange(min=1), default=None, metavar="N", help="Lines per transaction."),
]


def _reading_options(fn: Any) -> Any:
    return _apply(_READING, fn)


def _pairs(items: Sequence[str], option: str, shape: str = "COLUMN=FIELD") -> dict[str, str]:
    """``A=B`` options as a dict. A ``COLUMN`` (a file's header) may hold ``=`` and a field's name may
    not, so it splits at the last ``=``; a ``KEY=VALUE`` splits at the first (a value may hold ``=``)."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.rpartition("=") if shape.startswith("COLUMN") else item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"{item!r} is not {shape}", param_hint=f"'{option}'")
        if key in found:
            raise click.BadParameter(f"{key!r} is given twice", param_hint=f"'{option}'")
        found[key] = value.strip()
    return found


def _parse_options(
    *,
    date_format: str | None,
    datetime_format: str | None,
    timezone: str | None,
    decimal_comma: bool,
    phone_region: str | None,
    choices: Mapping[str, Mapping[str, str]] | None = None,
) -> ParseOptions:
    given: dict[str, Any] = {"date_format": date_format, "datetime_format": datetime_format, "timezone": timezone}
    for name, value in given.items():
        if value is not None:
            try:  # one option at a time, so the error names the option the user gave
                ParseOptions(**{name: value})
            except (ValueError, TypeError) as exc:
                raise click.BadParameter(str(exc), param_hint=f"'--{name.replace('_', '-')}'") from None
    if phone_region is not None:
        if phone_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise click.BadParameter(
                f"{phone_region!r} is not a region code such as GB, DE or US", param_hint="'--phone-region'"
            )
        phone_region = phone_region.upper()
    kwargs = {k: v for k, v in given.items() if v is not None}
    try:
        return ParseOptions(
            **kwargs, decimal_comma=decimal_comma, phone_region=phone_region, choices=dict(choices or {})
        )
    except (ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None


@contextlib.contextmanager
def _reject_file(chosen: Path | None, source: Path, dry_run: bool) -> Iterator[IO[str] | None]:
    """Where the rejected lines go: ``chosen``, or on a real run FILE's ``.rejects.csv`` when there are any.

    Written to a temporary file beside the target and renamed at the end, also when the import fails
    half-way: the rejects of the chunks it stored are worth keeping."""
    target = chosen or (None if dry_run else source.with_name(f"{source.stem}.rejects.csv"))
    if target is None:
        yield None
        return
    if target.resolve() == source.resolve():
        raise click.BadParameter("is the file being imported", param_hint="'--rejects'")
    if not target.parent.is_dir():
        raise CommandError(f"--rejects: folder {str(target.parent)!r} does not exist")
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    ran = False
    try:
        with open(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
        ran = True
    finally:
        # a --rejects file is written whenever the import ran (a script may look for it); a failed import
        # or the default file leave nothing behind when no line was rejected
        if (ran and chosen is not None) or _has_rows(temporary):
            os.replace(temporary, target)
        else:
            os.unlink(temporary)


def _has_rows(path: str) -> bool:
    """Whether a reject file holds a rejected line below its header."""
    with open(path, encoding="utf-8") as handle:
        return len(handle.readline()) > 0 and len(handle.read(1)) > 0


@contextlib.contextmanager
def _progress(handle: IO[bytes], size: int, label: str, by_bytes: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar with rows per second on stderr while a person watches; nothing in a pipe or a log.

    A CSV or JSON lines file is read front to back, so how far the reader is in the file says how much is
    done; an XLSX file is a zip read out of order, so it gets a row counter."""
    if not sys.stderr.isatty():
        yield None
        return
    started = time.monotonic()
    rows = 0

    def rate(_: object = None) -> str:
        elapsed = time.monotonic() - started
        return f"{rows:,} rows, {rows / elapsed:,.0f} rows/s" if rows and elapsed > 0 else ""

    if not by_bytes:

        def count(lines: int) -> None:
            nonlocal rows
            rows += lines
            click.echo(f"\r{label}: {rate()}", nl=False, err=True)

        yield count
        click.echo(err=True)
        return
    length = max(size, 1)
    # update_min_steps=0: a chunk read from the reader's buffer moves no byte but its rows still count
    with click.progressbar(length=length, label=label, file=sys.stderr, item_show_func=rate, update_min_steps=0) as bar:

        def advance(lines: int) -> None:
            nonlocal rows
            rows += lines
            # the reader reads ahead: the end of the file is reached before its last lines are stored
            bar.update(max(0, min(handle.tell(), length - 1) - bar.pos), rows)

        yield advance
        bar.update(length - bar.pos, rows)


# -- crmkit import customers ----------------------------------------------------------------------------


@imports.command("customers")
@crm_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD", help="Column COLUMN feeds FIELD (repeatable).")
@click.option("--ignore", "ignored", multiple=True, metavar="COLUMN", help="Leave column COLUMN out (repeatable).")
@click.option(
    "--match",
    default=None,
    metavar="KEYS",
    help="Match on some of email,phone,external_id (default: all the file has).",
)
@click.option("--mode", type=click.Choice(["create", "upsert", "update"]), default="upsert", show_default=True,
              help="create: new customers only; update: known ones only; upsert: both.")  # fmt: skip
@click.option("--system", default="import", show_default=True, help="The system the file's external ids are from.")
@click.option(
    "--choice",
    "choices",
    multiple=True,
    metavar="FIELD:LABEL=VALUE",
    help="The file's LABEL is the choice VALUE of FIELD (repeatable).",
)
@_reading_options
def customers_cmd(
    crm: CRM,
    file: Path,
    maps: tuple[str, ...],
    ignored: tuple[str, ...],
    match: str | None,
    mode: str,
    system: str,
    choices: tuple[str, ...],
    **reading: Any,
) -> None:
    """Create or update customers from FILE (CSV, XLSX or JSON lines).

    Columns map onto fields by their header (the field's name or label, without case, spaces or
    punctuation: "E-mail" is email); --map and --ignore say otherwise. Each line is matched on --match
    (normalised email, normalised phone, external id) and, by --mode, creates or updates a customer,
    leaves it unchanged, or is skipped or rejected. Rejected lines go to the reject file with their line
    number and every reason. Take the import back with `crmkit import revert ID`."""
    mapping: dict[str, str | None] = dict(_pairs(maps, "--map"))
    for column in ignored:
        if column in mapping:
            raise click.BadParameter(f"{column!r} is also given to --map", param_hint="'--ignore'")
        mapping[column] = None
    keys = None if match is None else [k.strip() for k in match.split(",") if k.strip()]
    options = _options_of(reading, _choices(crm, choices))

    def run(source: BinaryIO, **common: Any) -> ImportReport:
        return crm.imports.customers(source, mapping=mapping, match=keys, mode=mode, system=system, **common)

    _import(crm, "customers", file, options, run, reading)


def _choices(crm: CRM, items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``--choice FIELD:LABEL=VALUE`` options, checked against the fields there are."""
    targets = crm.imports.targets()
    found: dict[str, dict[str, str]] = {}
    for item in items:
        field, _, rest = item.partition(":")
        label, sep, value = rest.rpartition("=")
        field, label, value = field.strip(), label.strip(), value.strip()
        if not sep or not field or not label or not value:
            raise click.BadParameter(f"{item!r} is not FIELD:LABEL=VALUE", param_hint="'--choice'")
        target = targets.get(field)
        with_choices = sorted(name for name, t in targets.items() if t.choices)
        if target is None or not target.choices:
            known = ", ".join(with_choices) or "none"
            raise click.BadParameter(
                f"{field!r} is not a field with choices (those are: {known})", param_hint="'--choice'"
            )
        if value not in target.choices:
            raise click.BadParameter(
                f"{value!r} is not a choice of {field}: expected one of {', '.join(target.choices)}",
                param_hint="'--choice'",
            )
        found.setdefault(field, {})[label] = value
    return found


def _options_of(reading: Mapping[str, Any], choices: Mapping[str, Mapping[str, str]] | None = None) -> ParseOptions:
    return _parse_options(
        date_format=reading["date_format"],
        datetime_format=reading["datetime_format"],
        timezone=reading["timezone"],
        decimal_comma=reading["decimal_comma"],
        phone_region=reading["phone_region"],
        choices=choices,
    )


# -- crmkit import NAME ---------------------------------------------------------------------------------


def _importer_command(name: str) -> click.Command:
    @click.command(name)
    @crm_options
    @click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
    @click.option(
        "--map",
        "maps",
        multiple=True,
        metavar="COLUMN=FIELD",
        help="Column COLUMN is the importer's FIELD (repeatable).",
    )
    @click.option(
        "--set", "settings", multiple=True, metavar="KEY=VALUE", help="An importer's own setting (repeatable)."
    )
    @_reading_options
    def command(crm: CRM, file: Path | None, maps: tuple[str, ...], settings: tuple[str, ...], **reading: Any) -> None:
        """Run importer NAME (of the core or a plugin) on FILE: each line becomes an activity, stored once
        however often the file is imported. Rejected lines go to the reject file; `crmkit import revert ID`
        takes the import back."""
        known = crm.imports.importers()
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise CommandError(f"unknown importer {name!r}: expected customers, list, revert or an importer: {names}")
        if file is None:
            raise click.UsageError("missing argument 'FILE'")
        columns = {field: column for column, field in _pairs(maps, "--map").items()}
        own = {key: _setting(value) for key, value in _pairs(settings, "--set", "KEY=VALUE").items()}
        options = _options_of(reading)

        def run(source: BinaryIO, **common: Any) -> ImportReport:
            return crm.imports.run(name, source, columns=columns, settings=own, **common)

        _import(crm, name, file, options, run, reading)

    return command


def _setting(text: str) -> Any:
    """A ``--set`` value: JSON where it is (``true``, ``30``, ``["a", "b"]``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- running an import and saying what it did ---------------------------------------------------------


def _import(
    crm: CRM,
    importer: str,
    file: Path,
    options: ParseOptions,
    run: Callable[..., ImportReport],
    reading: Mapping[str, Any],
) -> None:
    dry_run: bool = reading["dry_run"]
    preview = reading["preview"] if reading["preview"] is not None else (20 if dry_run else 0)
    extra = {} if reading["chunk_size"] is None else {"chunk_size": reading["chunk_size"]}
    by_bytes = (reading["fmt"] or file.suffix.lower().lstrip(".")) != "xlsx"
    label = f"importing {file.name}" + (" (dry run)" if dry_run else "")
    with (
        _reject_file(reading["rejects"], file, dry_run) as rejects,
        file.open("rb") as handle,
        _progress(handle, file.stat().st_size, label, by_bytes) as progress,
    ):
        report = run(
            handle,
            options=options,
            dry_run=dry_run,
            preview=preview,
            rejects=rejects,
            source_name=file.name,
            format=reading["fmt"],
            encoding=reading["encoding"],
            delimiter=reading["delimiter"],
            sheet=reading["sheet"],
            progress=progress,
            **extra,
        )
    rejected = report.counts.get("rejected", 0)
    default = file.with_name(f"{file.stem}.rejects.csv") if rejected and not dry_run else None
    written = reading["rejects"] or default
    _summary(report, importer, file)
    if written is not None:
        how = "" if reading["rejects"] else " (next to the file; choose another with --rejects PATH)"
        click.echo(
            f"rejected lines written to {written}{how}" if rejected else f"no rejected lines; {written} has none"
        )
    click.echo(
        "dry run: nothing was written" if dry_run else f"to take it back: crmkit import revert {report.import_id}"
    )
    if reading["strict"] and rejected:
        raise CommandError(f"{rejected} line{'s' if rejected != 1 else ''} rejected (--strict)")


def _summary(report: ImportReport, importer: str, file: Path) -> None:
    if report.dry_run:
        click.echo("dry run: nothing was written")
    else:
        click.echo(f"import {report.import_id}: {importer} from {file.name}")
    mapped = ", ".join(f"{column} -> {field}" for column, field in report.mapping.items())
    click.echo(f"columns: {mapped or '(none)'}")
    if report.ignored_columns:
        click.echo(f"ignored columns: {', '.join(report.ignored_columns)}")
    if report.preview:
        _preview(report.preview, report.dry_run)
    width = max(len(a) for a in ACTIONS)
    for action in ACTIONS:
        click.echo(f"{action:<{width}}  {report.counts.get(action, 0):>9,}")
    click.echo(f"{'total':<{width}}  {report.lines:>9,}")
    # the rejected lines the preview did not show, so that what is wrong with the file is seen at once
    shown = {o.line for o in report.preview}
    rest = [o for o in report.rejected if o.line not in shown][:REJECTS_SHOWN]
    for outcome in rest:
        click.echo(f"  rejected line {outcome.line}: {'; '.join(outcome.reasons)}")
    in_preview = sum(1 for o in report.preview if o.action == "rejected")
    more = report.counts.get("rejected", 0) - in_preview - len(rest)
    if more > 0:
        click.echo(f"  ... and {more:,} more rejected lines")


def _preview(lines: Sequence[LineOutcome], dry_run: bool) -> None:
    # in a dry run the customers it creates were rolled back: their ids mean nothing, "new" says it
    created = {o.customer_id for o in lines if o.action == "created"} if dry_run else set()
    click.echo(f"{'line':>7}  {'action':<9}  {'customer':>8}  fields or reasons")
    for o in lines:
        who = "new" if o.customer_id in created else ("-" if o.customer_id is None else str(o.customer_id))
        what = "; ".join(o.reasons) if o.reasons else ", ".join(o.fields)
        click.echo(f"{o.line:>7}  {o.action:<9}  {who:>8}  {what}")


# -- crmkit import list / revert ------------------------------------------------------------------------


@imports.command("list")
@crm_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="At most this many.")
def list_cmd(crm: CRM, limit: int) -> None:
    """The imports, most recent first: what ran, on what, what it did, when and by whom."""
    records = crm.imports.list(limit=limit)
    if not records:
        click.echo("no imports yet")
        return
    users = {u["id"]: u["name"] for u in crm.users.list()}
    counts = "  ".join(f"{a:>9}" for a in ACTIONS)
    click.echo(f"{'id':>6}  {'importer':<12}  {'source':<24}  {'status':<8}  {counts}  {'started (UTC)':<16}  actor")
    for r in records:
        done = "  ".join(f"{(r['counts'] or {}).get(a, 0):>9,}" for a in ACTIONS)
        actor = "-" if r["actor_id"] is None else users.get(r["actor_id"], f"user {r['actor_id']}")
        started = (r["started_at"] or "")[:16].replace("T", " ")
        click.echo(
            f"{r['id']:>6}  {r['importer']:<12}  {_cut(r['source_name'] or '', 24):<24}  {r['status']:<8}  {done}"
            f"  {started:<16}  {actor}"
        )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@imports.command("revert")
@crm_options
@click.argument("import_id", metavar="ID", type=int)
def revert_cmd(crm: CRM, import_id: int) -> None:
    """Take import ID back: the customers and activities it created are removed, the fields it changed
    get their values back. Refused, with nothing changed, when that would lose later changes."""
    done = crm.imports.revert(import_id)
    click.echo(
        f"import {import_id} reverted: {done['removed']:,} customers removed, {done['restored']:,} restored,"
        f" {done['activities_removed']:,} activities removed"
    )
