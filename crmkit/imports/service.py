"""``crm.imports``: run a customer import, list the imports, revert one.

An import without ``tx`` commits every ``chunk_size`` lines in a transaction of its own, so a long
import never holds the database for its whole run (on SQLite, the front desk's writes go in between
chunks). What an interrupted import leaves is every chunk that committed, complete, each line's change
recorded: ``revert`` takes those back, and running the same file again with the same match keys creates
nothing twice (the lines already stored match their customers and are ``unchanged``). With ``tx`` the
whole import is part of the caller's unit of work. A dry run does the same work in a transaction that is
rolled back, so what it reports is exactly what the real run would do, the file's own duplicates included.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import IO, Any, BinaryIO

import attrs
from sqlalchemy import delete, func, select, update

from crmkit.access import Access
from crmkit.activities import Activities
from crmkit.audit import Audit
from crmkit.customers import DERIVED_FIELDS, Customers
from crmkit.db import statistics
from crmkit.db.models import Activity, Customer, CustomerClaim, ImportChange, ImportRun
from crmkit.db.types import utcnow
from crmkit.errors import CRMError, NotFound, ValidationError
from crmkit.fastrows import dumper
from crmkit.hooks import Hooks
from crmkit.imports import collector, sources
from crmkit.imports.activities import ActivityLines, resolve_columns
from crmkit.imports.chunk import Reading
from crmkit.imports.customers import MODES, CustomerLines, Settings
from crmkit.imports.mapping import EXTERNAL_ID, MATCH_KEYS, Target, resolve, targets
from crmkit.imports.report import ImportReport, LineOutcome, Tally, reject_writer
from crmkit.imports.sources import SourceLine, open_source
from crmkit.imports.values import ParseOptions
from crmkit.limits import require_id
from crmkit.merge import customer_references
from crmkit.phones import Phones
from crmkit.plugins import Registry
from crmkit.runtime_fields import RuntimeFields
from crmkit.schemas import Schemas
from crmkit.specs import ImportContext, ImporterSpec
from crmkit.unit import Transaction, Units

Source = str | os.PathLike[str] | BinaryIO
#: customers a revert checks and changes at a time
_BATCH = 5000
#: tables whose rows about a customer are part of the customer itself (or of the import): a revert
#: removes them with the customer without calling them "later changes"
_PART_OF_CUSTOMER = {"crm_stage_history", "crm_import_changes", "crm_customer_keys", "crm_customer_claims"}


class ImportRevertError(CRMError):
    """An import cannot be reverted: later changes would be lost. ``problems`` says which, per customer."""

    def __init__(self, import_id: int, problems: Sequence[str]) -> None:
        self.import_id = import_id
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"import {import_id} cannot be reverted, later changes would be lost: {shown}{more}")


class _DryRun(Exception):
    """Raised at the end of a dry run so that its unit of work rolls back."""


class Imports:
    """Customer imports and the record of every import (``crm.imports``)."""

    def __init__(
        self,
        *,
        customers: Customers,
        activities: Activities,
        hooks: Hooks,
        registry: Registry,
        fields: RuntimeFields,
        phones: Phones,
        schemas: Schemas,
        units: Units,
        extension_tables: Mapping[str, Any],
        referencing_tables: Callable[[], list[Any]],
        access: Access,
        audit: Audit,
    ) -> None:
        self._access = access
        self._audit = audit
        self._customers = customers
        self._activities = activities
        self._hooks = hooks
        self._registry = registry
        self._fields = fields
        self._phones = phones
        self._schemas = schemas
        self._units = units
        self._extension_tables = extension_tables
        self._referencing_tables = referencing_tables

    def targets(self) -> dict[str, Target]:
        """What a customer import's columns can map to: the core's fields, the plugins', the run-time ones
        and the import's own (``external_id``, ``created_at``, ``stage``, ``stage_changed_at``)."""
        return targets(self._fields.all(), self._registry.stages.values())

    # -- customer import -------------------------------------------------------------------------

    def customers(
        self,
        source: Source,
        *,
        mapping: Mapping[str, str | None] | None = None,
        match: Sequence[str] | None = None,
        mode: str = "upsert",
        options: ParseOptions | None = None,
        system: str = "import",
        dry_run: bool = False,
        preview: int = 20,
        rejects: str | os.PathLike[str] | IO[str] | None = None,
        source_name: str | None = None,
        format: str | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
        chunk_size: int = 1000,
        progress: Callable[[int], object] | None = None,
        actor_id: int | None = None,
        tx: Transaction | None = None,
    ) -> ImportReport:
        """Import customers from a CSV, XLSX or JSON lines file (a path or a binary file object).

        Columns map onto fields by header (see :mod:`crmkit.imports.mapping`; ``mapping`` overrides, column
        by column). Each line is matched on the keys of ``match`` (``email``, ``phone``, ``external_id``
        within ``system``; by default, those of the three the file has a column for), then, by ``mode``:
        ``create`` creates customers no key matches and skips the others; ``upsert`` also updates the
        matched ones; ``update`` only updates. ``options`` says how values are written in the file (date
        format, decimal comma, choice labels, phone region...).

        Every rejected line goes to ``rejects`` (a path or a text file) with its line number, every reason
        and the line as it was. Returns the totals, the first ``preview`` lines' outcomes and the first
        rejects; with ``dry_run`` nothing is written and ``import_id`` is ``None``. ``progress`` is called
        with the number of lines done after each chunk (a progress bar's update).
        """
        self._access.require("customers:import", tx)
        self._check_run(options or ParseOptions(), chunk_size, preview)
        settings, known = self._settings(mapping or {}, match, mode, options or ParseOptions(), system)
        with (
            open_source(
                source, format=format, encoding=encoding, delimiter=delimiter, sheet=sheet, name=source_name
            ) as src,
            reject_writer(rejects) as writer,
        ):
            columns, ignored = resolve(src.header, known, settings.mapping)
            keys = settings.match if match is not None else tuple(k for k in MATCH_KEYS if k in columns.values())
            settings = Settings(columns, keys, settings.mode, settings.system, settings.options)
            self._check_columns(settings)
            tally = Tally(preview, writer)
            record = {"importer": "customers", "source_name": src.name[:300], "format": src.format,
                      "mode": mode, "settings": settings.to_dict()}  # fmt: skip
            run = _Run(self._units, self._audit, record, actor_id, tx, dry_run, _customers_written)
            dump = dumper(self._schemas.customer_out)

            def work(t: Transaction | None, import_id: int) -> dict[str, int]:
                lines = CustomerLines(
                    customers=self._customers, phones=self._phones, units=self._units, targets=known,
                    settings=settings, dump=dump, customer_in=lambda: self._schemas.customer_in, import_id=import_id,
                    actor_id=actor_id, csv=src.format == "csv",
                )  # fmt: skip
                return _apply_all(lines.apply_chunk, t, src, chunk_size, tally, run, progress, lines.read_chunk)

            import_id = run.execute(work)
        return ImportReport(
            import_id=None if dry_run else import_id,
            dry_run=dry_run,
            counts=dict(tally.counts),
            preview=tuple(tally.preview),
            rejected=tuple(tally.rejected),
            mapping=dict(settings.mapping),
            ignored_columns=ignored,
        )

    # -- integrations --------------------------------------------------------------------------

    def importers(self) -> dict[str, ImporterSpec]:
        """The importers the core and the plugins declare (``crmkit_register_importers``), by name."""
        return dict(self._registry.importers)

    def run(
        self,
        name: str,
        source: Source,
        *,
        settings: Mapping[str, Any] | None = None,
        options: ParseOptions | None = None,
        columns: Mapping[str, str] | None = None,
        dry_run: bool = False,
        preview: int = 20,
        rejects: str | os.PathLike[str] | IO[str] | None = None,
        source_name: str | None = None,
        format: str | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
        chunk_size: int = 5000,
        progress: Callable[[int], object] | None = None,
        actor_id: int | None = None,
        tx: Transaction | None = None,
    ) -> ImportReport:
        """Run importer ``name`` on a file: each line becomes an activity of the importer's kind (see
        :class:`~crmkit.ImporterSpec`), stored once however often the file is imported.

        ``settings`` are the importer's own (``create_unknown=True`` lets ``telephony`` create a lead for
        an unknown caller), ``columns`` names file columns the importer does not recognise by itself
        (importer column -> file column). Everything else is as :meth:`customers`: streamed, a chunk per
        transaction, dry run, reject file, record and :meth:`revert` (which removes the activities it
        stored and the customers it created).
        """
        self._access.require("customers:import", tx)
        spec = self._registry.importers.get(name) if isinstance(name, str) else None
        if spec is None:
            known = ", ".join(sorted(self._registry.importers)) or "none"
            raise ValidationError(
                {"importer": [f"unknown importer {name!r}: expected one of {known}"]}, "invalid import"
            )
        options = options or ParseOptions()
        own = dict(settings or {})
        self._check_run(options, chunk_size, preview)
        with (
            open_source(
                source, format=format, encoding=encoding, delimiter=delimiter, sheet=sheet, name=source_name
            ) as src,
            reject_writer(rejects) as writer,
        ):
            if src.format not in spec.formats:
                problem = f"importer {name} reads {', '.join(spec.formats)}, not {src.format}"
                raise ValidationError({"format": [problem]}, "invalid import")
            found = resolve_columns(spec, src.header, columns)
            tally = Tally(preview, writer)
            recorded = {"columns": found, "settings": _jsonable(own), "options": _options(options)}
            record = {"importer": name, "source_name": src.name[:300], "format": src.format, "mode": "create",
                      "settings": recorded}  # fmt: skip
            run = _Run(self._units, self._audit, record, actor_id, tx, dry_run, _activities_written)
            context = ImportContext(options=options, settings=own)

            def work(t: Transaction | None, import_id: int) -> dict[str, int]:
                lines = ActivityLines(
                    spec=spec, columns=found, context=context, activities=self._activities,
                    customers=self._customers, phones=self._phones, units=self._units, import_id=import_id,
                    actor_id=actor_id,
                )  # fmt: skip
                return _apply_all(lines.apply, t, src, chunk_size, tally, run, progress)

            import_id = run.execute(work)
        return ImportReport(
            import_id=None if dry_run else import_id,
            dry_run=dry_run,
            counts=dict(tally.counts),
            preview=tuple(tally.preview),
            rejected=tuple(tally.rejected),
            mapping={file_column: column for column, file_column in found.items()},
            ignored_columns=tuple(h for h in src.header if h not in found.values()),
        )

    @staticmethod
    def _check_run(options: Any, chunk_size: Any, preview: Any) -> None:
        errors: dict[str, list[str]] = {}
        if not isinstance(options, ParseOptions):
            errors["options"] = ["must be a crmkit.imports.values.ParseOptions"]
        if not isinstance(chunk_size, int) or chunk_size < 1:
            errors["chunk_size"] = ["must be a positive integer"]
        if not isinstance(preview, int) or preview < 0:
            errors["preview"] = ["must be zero or more"]
        if errors:
            raise ValidationError(errors, "invalid import")

    def _settings(
        self,
        mapping: Mapping[str, str | None],
        match: Sequence[str] | None,
        mode: str,
        options: ParseOptions,
        system: str,
    ) -> tuple[Settings, dict[str, Target]]:
        errors: dict[str, list[str]] = {}
        if mode not in MODES:
            errors["mode"] = [f"unknown mode {mode!r}: expected one of {', '.join(MODES)}"]
        keys = MATCH_KEYS if match is None else (match,) if isinstance(match, str) else tuple(match)
        if not keys or any(k not in MATCH_KEYS for k in keys):
            errors["match"] = [f"match keys must be some of {', '.join(MATCH_KEYS)}, got {list(keys)}"]
        if not isinstance(system, str) or not system.strip() or len(system) > 100:
            errors["system"] = ["must be a name of 1 to 100 characters"]
        if errors:
            raise ValidationError(errors, "invalid import")
        return Settings(dict(mapping), keys, mode, system.strip(), options), self.targets()  # type: ignore[arg-type]

    @staticmethod
    def _check_columns(settings: Settings) -> None:
        mapped = set(settings.mapping.values())
        errors: dict[str, list[str]] = {}
        if "name" not in mapped and settings.mode != "update":
            errors["name"] = ["no column maps to name, which every new customer needs"]
        for key in settings.match:
            if key not in mapped:
                errors[key] = [f"the match key {key} has no column in the file"]
        if errors:
            raise ValidationError(errors, "invalid column mapping")

    # -- the record ------------------------------------------------------------------------------

    def get(self, import_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        """One import's record: who ran it, when, on what, how, and what it did."""
        self._access.require("customers:import", tx)
        import_id = require_id(import_id, "import", bits=64)
        with self._units.read(tx) as s:
            run = s.get(ImportRun, import_id)
            if run is None:
                raise NotFound("import", import_id)
            return _record(run)

    def list(self, *, limit: int = 50, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """The most recent imports first."""
        self._access.require("customers:import", tx)
        with self._units.read(tx) as s:
            runs = s.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(max(1, min(limit, 1000))))
            return [_record(r) for r in runs]

    # -- revert ----------------------------------------------------------------------------------

    def revert(self, import_id: int, *, actor_id: int | None = None, tx: Transaction | None = None) -> dict[str, int]:
        """Take an import back: the customers it created are deleted with everything that hangs off them,
        the fields it changed get the values they had before, the activities it stored are deleted.

        Refused, with nothing changed, when that would lose later changes: a created customer changed or
        given activities, tasks or other rows since, or an updated field changed again since.
        ``ImportRevertError`` lists every such customer. Returns how many customers were removed and
        restored and how many activities removed.
        """
        self._access.require("customers:import", tx)
        import_id = require_id(import_id, "import", bits=64)
        with self._units.write(tx, actor_id) as t:
            session = t.session
            run = session.get(ImportRun, import_id, with_for_update=True)
            if run is None:
                raise NotFound("import", import_id)
            if run.status == "reverted":
                raise CRMError(f"import {import_id} was reverted already, at {run.reverted_at:%Y-%m-%d %H:%M} UTC")
            problems: builtins.list[str] = []
            for changes, current in self._ledger(t, import_id):
                created = [c for c in changes if c.action == "created"]
                updated = [c for c in changes if c.action == "updated"]
                problems.extend(self._later_changes(t, import_id, created, updated, current))
            if problems:
                raise ImportRevertError(import_id, problems)
            restored = 0
            for changes, _ in self._ledger(t, import_id, action="updated"):
                for change in changes:
                    if change.before:
                        self._customers.update(change.customer_id, dict(change.before), actor_id=actor_id, tx=t,
                                               allow_duplicate=True)  # fmt: skip
                    restored += 1
            if self._hooks.implemented("activities_removed"):
                self._tell_removed(t, import_id)
            removed = session.execute(delete(Activity).where(Activity.import_id == import_id))
            activities = getattr(removed, "rowcount", 0)
            customers = 0
            for changes, current in self._ledger(t, import_id, action="created"):
                chunk = [c.customer_id for c in changes if c.customer_id in current]
                session.execute(delete(CustomerClaim).where(CustomerClaim.customer_id.in_(chunk)))
                session.execute(delete(Customer).where(Customer.id.in_(chunk)))
                customers += len(chunk)
            session.execute(
                update(ImportRun)
                .where(ImportRun.id == import_id)
                .values(status="reverted", reverted_at=utcnow(), reverted_by=actor_id or t.actor_id)
            )
            session.expire_all()
            result = {"removed": customers, "restored": restored, "activities_removed": int(activities or 0)}
            self._audit.record(t, "import.reverted", "import", entity_id=import_id, changes=result, user_id=actor_id)
            return result

    def _ledger(
        self, t: Transaction, import_id: int, *, action: str | None = None
    ) -> Iterator[tuple[builtins.list[ImportChange], dict[int, dict[str, Any]]]]:
        """The import's changes (but the ``unchanged`` ones), 5,000 customers at a time in customer order,
        with those customers' records as they are now: memory stays flat however big the import was."""
        query = select(ImportChange).where(ImportChange.import_id == import_id)
        query = (
            query.where(ImportChange.action == action) if action else query.where(ImportChange.action != "unchanged")
        )
        after = 0
        while True:
            batch = list(t.session.scalars(query.where(ImportChange.customer_id > after)
                                           .order_by(ImportChange.customer_id).limit(_BATCH)))  # fmt: skip
            if not batch:
                return
            yield batch, self._customers.get_many([c.customer_id for c in batch], tx=t)
            after = batch[-1].customer_id
            for change in batch:
                if change in t.session:
                    t.session.expunge(change)

    def _tell_removed(self, t: Transaction, import_id: int) -> None:
        """Hand the import's activities to ``crmkit_activities_removed`` before they go, 5,000 at a time."""
        query = select(Activity).where(Activity.import_id == import_id).order_by(Activity.id)
        dump = self._schemas.activity_out.dump
        after = 0
        while True:
            batch = list(t.session.scalars(query.where(Activity.id > after).limit(5000)))
            if not batch:
                return
            self._hooks.activities_removed(t, [dump(a) for a in batch])
            after = batch[-1].id

    def _later_changes(
        self,
        t: Transaction,
        import_id: int,
        created: builtins.list[ImportChange],
        updated: builtins.list[ImportChange],
        current: Mapping[int, Mapping[str, Any]],
    ) -> builtins.list[str]:
        problems: builtins.list[str] = []
        for change in created:
            now = current.get(change.customer_id)
            if now is None:
                continue  # deleted (or merged away) since: nothing left to take back
            # the ledger keeps a created customer's fields that had a value: the others were empty (those the
            # CRM derives change with the fields they come from; an older ledger may hold them too)
            fields = (change.after.keys() | {k for k, v in now.items() if v is not None}) - DERIVED_FIELDS
            differ = sorted(k for k in fields if now.get(k) != change.after.get(k))
            if differ:
                problems.append(f"{_who(change)} changed since: {', '.join(differ)}")
        for change in updated:
            now = current.get(change.customer_id)
            if now is None:
                problems.append(f"{_who(change)} was deleted or merged since")
                continue
            differ = sorted(k for k, v in change.after.items() if now.get(k) != v)
            if differ:
                problems.append(f"{_who(change)} changed since: {', '.join(differ)}")
        ids = [c.customer_id for c in created if c.customer_id in current]
        if ids:
            problems.extend(self._rows_since(t, import_id, ids))
        return problems

    def _rows_since(self, t: Transaction, import_id: int, ids: builtins.list[int]) -> builtins.list[str]:
        """Rows in other tables that point at customers the import created (an activity logged, a task
        opened): deleting the customer would delete them."""
        found: builtins.list[str] = []
        skip = _PART_OF_CUSTOMER | {table.name for table in self._extension_tables.values()}
        for table, column in customer_references(self._referencing_tables(), skip):
            col = table.c[column]
            query = select(col, func.count()).where(col.in_(ids)).group_by(col)
            if table.name == Activity.__tablename__:
                query = query.where((table.c.import_id.is_(None)) | (table.c.import_id != import_id))
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000]
                for customer_id, count in t.session.execute(query.where(col.in_(chunk))):
                    found.append(f"customer {customer_id} has {count} row(s) in {table.name} since the import")
        return sorted(found)


class _Run:
    """The transactions an import runs in: a dry run's single rolled-back one, the caller's, or (the
    default) a record committed first and then one transaction per chunk (:class:`crmkit.unit.Chunks`,
    which on SQLite lets the other writers in). Once a real run has committed, the planner's statistics
    of the tables it filled are refreshed (:mod:`crmkit.db.statistics`): ``written`` says which, from the
    import's counts."""

    def __init__(
        self,
        units: Units,
        audit: Audit,
        record: dict[str, Any],
        actor_id: int | None,
        tx: Transaction | None,
        dry_run: bool,
        written: Callable[[Mapping[str, int]], dict[str, int]],
    ) -> None:
        self._units = units
        self._audit = audit
        self._record = record
        self._actor_id = actor_id
        self._tx = tx
        self._dry_run = dry_run
        self._written = written
        self._chunks = units.chunks(actor_id)
        self.import_id = 0

    def execute(self, work: Callable[[Transaction | None, int], dict[str, int]]) -> int:
        if self._dry_run:
            result: list[int] = []
            try:
                with self._units.write(self._tx, self._actor_id) as t:
                    result.append(self._begin(t))
                    work(t, result[0])
                    raise _DryRun
            except _DryRun:
                return result[0]
        if self._tx is not None:
            with self._units.write(self._tx, self._actor_id) as t:
                import_id = self._begin(t)
                counts = work(t, import_id)
                self._finish(t, import_id, "done", counts)
                t.after_commit(lambda: self._refresh(counts))
            return import_id
        with self._units.open(self._actor_id) as t:
            import_id = self._begin(t)
        try:
            counts = work(None, import_id)
        except BaseException:
            with self._units.open(self._actor_id) as t:
                self._finish(t, import_id, "failed", None)
            raise
        with self._units.open(self._actor_id) as t:
            self._finish(t, import_id, "done", counts)
        self._refresh(counts)
        return import_id

    def step_aside(self, t: Transaction | None, work: Callable[[], bool]) -> None:
        """Before the next chunk's unit of work: on SQLite, the pause owed to the other writers, spent on
        ``work`` (:meth:`crmkit.unit.Chunks.step_aside`); nothing in the caller's or a dry run's
        transaction."""
        if t is None:
            self._chunks.step_aside(work)

    def chunk(self, t: Transaction | None) -> AbstractContextManager[Transaction]:
        """The unit of work one chunk runs in."""
        if t is not None:
            return nullcontext(t)
        return self._chunks.unit()

    def _refresh(self, counts: Mapping[str, int]) -> None:
        statistics.after_bulk_write(self._units.write_engine, self._written(counts))

    def _begin(self, t: Transaction) -> int:
        run = ImportRun(**self._record, actor_id=self._actor_id or t.actor_id, status="running", counts={})
        t.session.add(run)
        t.session.flush()
        self.import_id = run.id
        return run.id

    def _finish(self, t: Transaction, import_id: int, status: str, counts: dict[str, int] | None) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
        if counts is not None:
            values["counts"] = counts
        t.session.execute(update(ImportRun).where(ImportRun.id == import_id).values(**values))
        told = {"importer": self._record.get("importer"), "source": self._record.get("source_name"), **(counts or {})}
        self._audit.record(t, f"import.{status}", "import", entity_id=import_id, changes=told, user_id=self._actor_id)


def _apply_all(
    apply: Callable[[Transaction, Sequence[SourceLine]], Sequence[LineOutcome]],
    t: Transaction | None,
    src: Any,
    chunk_size: int,
    tally: Tally,
    run: _Run,
    progress: Callable[[int], object] | None,
    read: Callable[[list[SourceLine]], Reading] | None = None,
) -> dict[str, int]:
    """Each chunk of ``src``'s lines applied in its unit of work; with ``read``, the chunk's reading is begun
    first, while the import steps aside for other writers (``apply`` finishes it), and in what is left of
    that pause the next few chunks are read too."""
    chunks = _Chunks(src, chunk_size)
    while True:
        with collector.paused():  # nothing a chunk keeps is garbage before it ends (see the module)
            chunk = chunks.next()
            if not chunk:
                break
            if read is not None:
                run.step_aside(t, chunks.reader(chunk, read))
            with run.chunk(t) as unit:
                outcomes = apply(unit, chunk)
            tally.add_many(outcomes, [line.raw for line in chunk])  # counted once the chunk is stored
            if progress is not None:
                progress(len(chunk))
            del chunk, outcomes  # freed before the collector is back, so it does not walk them
    return dict(tally.counts)


class _Chunks:
    """A source's lines, a chunk at a time, some read ahead while the import steps aside for other writers
    (:meth:`reader`)."""

    #: Chunks read ahead at most: enough for a pause (a chunk of 5,000 customers is read in about 50 ms),
    #: few enough that memory stays that of a few chunks.
    AHEAD = 3

    def __init__(self, src: Any, size: int) -> None:
        self._rows = iter(src)
        self._size = size
        # what the mapping was made from: a JSON lines key first seen later would be dropped without a word
        self._known = frozenset(src.header) if src.format == "jsonl" else None
        self._ahead: deque[list[SourceLine]] = deque()
        self._error: Exception | None = None  # met reading ahead: raised where the chunk would be taken

    def next(self) -> list[SourceLine]:
        """The next chunk; empty at the end."""
        if self._ahead:
            return self._ahead.popleft()
        if self._error is not None:
            raise self._error
        return self._take()

    def reader(self, chunk: list[SourceLine], read: Callable[[list[SourceLine]], Reading]) -> Callable[[], bool]:
        """The work of a pause (:meth:`_Run.step_aside`): a piece of reading ``chunk``, then of the chunks
        after it (taken from the source); whether there is more to do."""
        readings = [read(chunk), *map(read, self._ahead)]

        def work() -> bool:
            for reading in readings:
                if reading.step():
                    return True
            if len(self._ahead) >= self.AHEAD or self._error is not None:
                return False
            try:
                more = self._take()
            except Exception as error:  # the chunks before it are applied first, as without reading ahead
                self._error = error
                return False
            if not more:
                return False
            self._ahead.append(more)
            readings.append(read(more))
            return True

        return work

    def _take(self) -> list[SourceLine]:
        chunk = list(islice(self._rows, self._size))
        known = self._known
        return chunk if known is None else [_with_unknown_keys(line, known) for line in chunk]


def _with_unknown_keys(line: SourceLine, known: frozenset[str]) -> SourceLine:
    late = [key for key, value in line.values.items() if key not in known and value not in (None, "")]
    if not late:
        return line
    named = f"key {late[0]!r}" if len(late) == 1 else f"keys {', '.join(map(repr, late))}"
    problem = (
        f"has the {named} that the first {sources.JSONL_PEEK:,} lines of the file do not have: its value would be "
        "lost; put the key in an early line (null is enough)"
    )
    return attrs.evolve(line, problems=(*line.problems, problem))


def _customers_written(counts: Mapping[str, int]) -> dict[str, int]:
    created, changed = counts.get("created", 0), counts.get("updated", 0) + counts.get("unchanged", 0)
    return {Customer.__tablename__: created, ImportChange.__tablename__: created + changed}


def _activities_written(counts: Mapping[str, int]) -> dict[str, int]:
    return {Activity.__tablename__: counts.get("created", 0)}


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it (an importer's settings are recorded with the import)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _options(options: ParseOptions) -> dict[str, Any]:
    return dict(_jsonable(attrs.asdict(options, filter=lambda attribute, _: attribute.init)))


def _who(change: ImportChange) -> str:
    return f"customer {change.customer_id} (line {change.line})"


def _record(run: ImportRun) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.astimezone(dt.UTC).isoformat()

    return {
        "id": run.id,
        "importer": run.importer,
        "source_name": run.source_name,
        "format": run.format,
        "mode": run.mode,
        "settings": run.settings,
        "status": run.status,
        "counts": run.counts,
        "actor_id": run.actor_id,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "reverted_at": iso(run.reverted_at),
        "reverted_by": run.reverted_by,
    }


__all__ = ["EXTERNAL_ID", "ImportRevertError", "Imports"]
