"""The ``CRM`` object: the composition root, the one place where crmkit keeps state.

It builds the engine, the plugin manager and the registry, then hands each service what it uses (the
registry, the schemas, the typed hooks, the unit-of-work factory) and nothing more. Only this module, the
command line, ``crmkit.testing`` and the demo import it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pluggy
from sqlalchemy import Engine, MetaData, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crmkit.access import Access, Actor, ActorContext
from crmkit.activities import Activities
from crmkit.audit import Audit
from crmkit.consent import Consents
from crmkit.contact_policy import ContactPolicy, ContactRules
from crmkit.customers import Customers
from crmkit.db import statistics
from crmkit.db.schema import build_metadata
from crmkit.errors import DatabaseBusyError, NotFound, ValidationError
from crmkit.exports import Exports
from crmkit.hooks import Hooks
from crmkit.imports.service import Imports
from crmkit.lifecycle import Lifecycle
from crmkit.messages import Messages
from crmkit.outbox import Outbox
from crmkit.phones import Phones
from crmkit.plugins import Registry, collect, create_plugin_manager
from crmkit.privacy import Privacy
from crmkit.reports.engine import Reports
from crmkit.reports.formats import Formats, label_lookup
from crmkit.reports.spec import ReportContext
from crmkit.runtime_fields import RuntimeFields
from crmkit.schemas import Schemas
from crmkit.tables import TableService
from crmkit.targets import Targets
from crmkit.tasks import Tasks
from crmkit.triggers.engine import Triggers
from crmkit.unit import Transaction, Units
from crmkit.users import Users
from crmkit.zones import TimeZones

DEFAULT_URL = "sqlite:///crmkit.db"
#: Seconds a SQLite writer waits for another writer's lock before :class:`DatabaseBusyError` (Python's
#: default of 5 s is short for a busy club's imports running next to the front desk).
SQLITE_BUSY_TIMEOUT = 30.0


class CRM:
    """A CRM on one database with one set of plugins.

    ``CRM(url="sqlite:///crm.db", plugins=[my_plugin])`` builds the engine, loads the plugins (those
    installed under the ``crmkit.plugins`` entry point too, unless ``load_entry_points=False``),
    validates their declarations and assembles the schema. Nothing touches the database until
    :meth:`create_schema` or the first call of a service.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        plugins: Iterable[object] = (),
        load_entry_points: bool = True,
        disabled_plugins: Iterable[str] = (),
        region: str = "US",
        branch_regions: Mapping[str, str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        template_dirs: Iterable[str | Path] = (),
        related_tables: Iterable[Table] = (),
        require_user: bool = False,
        privacy_key: str | bytes | None = None,
        time_zone: str = "UTC",
        branch_time_zones: Mapping[str, str] | None = None,
        contact_policy: ContactPolicy | None = None,
        locale: str = "en_US",
        currency: str = "USD",
    ) -> None:
        if engine is not None and url is not None:
            raise TypeError("pass either url or engine, not both")
        self.plugin_manager: pluggy.PluginManager = create_plugin_manager(
            plugins, load_entry_points=load_entry_points, disabled=disabled_plugins
        )
        #: The typed facade over the plugins' hooks: ``crm.hooks.customer_created(tx, record)``.
        self.hooks = Hooks(self.plugin_manager)
        #: How phone numbers are read: ``region`` (ISO 3166 alpha-2) for numbers written without ``+``
        #: unless the customer's ``country`` or their branch's region (``branch_regions``) says otherwise.
        self.phones = Phones(self.hooks, region, branch_regions)
        self.engine: Engine = engine or _create_engine(url or DEFAULT_URL, engine_options)
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
        _driver_errors(self.engine)
        #: The app's own tables with a foreign key to ``crm_customers.id``: a merge re-points them too.
        self.related_tables = tuple(related_tables)
        self.template_dirs = tuple(Path(p) for p in template_dirs)
        self.registry: Registry = collect(self.plugin_manager)
        self.metadata: MetaData
        self.extension_tables: dict[str, Table]
        self.metadata, self.extension_tables = build_metadata(self.registry)
        self.session_factory: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        #: Units of work on this database: ``write(tx)`` joins or opens one, ``read(tx)`` reads in it.
        self.units = Units(self.session_factory, self.engine.execution_options(crmkit_write=True))

        registry, units, hooks = self.registry, self.units, self.hooks
        #: The CRM's time zone and its branches': what "10 a.m." and quiet hours mean for a customer.
        self.zones = TimeZones(time_zone, branch_time_zones or {})
        #: The rules every message is judged by (consent, caps, quiet hours); ``ContactPolicy.off()`` for none.
        self.contact_policy = contact_policy if contact_policy is not None else ContactPolicy()
        rules = ContactRules(self.contact_policy, self.zones)
        #: Roles, permissions and who a call runs as (``as_user``, ``as_system``); with ``require_user`` a
        #: call that names no user is refused.
        self.access = Access(
            roles=registry.roles, permissions=registry.permissions, require_user=require_user, context=ActorContext()
        )
        #: The audit log: every write with its actor, in the write's transaction; chained by hashes.
        self.audit = Audit(units=units, access=self.access, personal=lambda: self.fields.personal())
        self.fields = RuntimeFields(registry, units, self.access, self.audit)
        self.schemas = Schemas(
            registry.activity_kinds,
            self.fields.all,
            lambda: [s.name for s in registry.stages.values() if s.initial],
            self.phones.normalize,
            self.phones.region_of,
            statuses=registry.activity_statuses,
        )
        self.fields.on_change(self.schemas.invalidate)
        self.lifecycle = Lifecycle(registry, units, hooks, self.access, self.audit)
        key = privacy_key if privacy_key is not None else os.environ.get("CRMKIT_PRIVACY_KEY") or None
        #: A person's data: ``export`` (one JSON document), ``erase`` (anonymise, suppress). The key hashes
        #: the suppression entries: keep it outside the database and never change it.
        self.privacy = Privacy(
            units=units,
            access=self.access,
            audit=self.audit,
            key=key.encode() if isinstance(key, str) else key,
            personal=lambda: self.fields.personal(),
            extension_tables=self.extension_tables,
            plugin_fields=registry.fields_of,
            kinds=registry.activity_kinds,
            tables=lambda: [*self.metadata.sorted_tables, *self.related_tables],
            read_customer=lambda session, customer_id: self.customers._read(session, customer_id),
        )
        self.customers = Customers(
            access=self.access,
            registry=registry,
            schemas=self.schemas,
            hooks=hooks,
            units=units,
            lifecycle=self.lifecycle,
            fields=self.fields,
            phones=self.phones,
            extension_tables=self.extension_tables,
            referencing_tables=lambda: [*self.metadata.sorted_tables, *self.related_tables],
            audit=self.audit,
            suppressed=self.privacy.check,
        )
        self.activities = Activities(
            kinds=registry.activity_kinds,
            statuses=registry.activity_statuses,
            schemas=self.schemas,
            hooks=hooks,
            units=units,
            access=self.access,
            audit=self.audit,
        )
        self.tasks = Tasks(schemas=self.schemas, units=units, access=self.access, audit=self.audit)
        #: Streamed exports to CSV, XLSX and JSON lines, filtered as the lists are.
        self.exports = Exports(
            customers=self.customers,
            activities=self.activities,
            tasks=self.tasks,
            schemas=self.schemas,
            access=self.access,
        )
        self.users = Users(schemas=self.schemas, units=units, access=self.access, audit=self.audit)
        self.outbox = Outbox(hooks=hooks, units=units)
        #: Consents per customer, channel and purpose, with their history; ``can_contact``.
        self.consents = Consents(units=units, access=self.access, audit=self.audit, opt_in=self.contact_policy.opt_in)
        #: Messages staff send one customer, judged by the contact policy as the triggers' are.
        self.messages = Messages(rules=rules, outbox=self.outbox, units=units, access=self.access, audit=self.audit)
        self.targets = Targets(units=units, audit=self.audit)
        self.imports = Imports(
            customers=self.customers,
            activities=self.activities,
            hooks=hooks,
            registry=registry,
            fields=self.fields,
            phones=self.phones,
            schemas=self.schemas,
            units=units,
            extension_tables=self.extension_tables,
            referencing_tables=lambda: [*self.metadata.sorted_tables, *self.related_tables],
            access=self.access,
            audit=self.audit,
        )
        self.triggers = Triggers(
            registry=registry,
            tables=self.metadata.tables,
            extension_tables=self.extension_tables,
            units=units,
            hooks=hooks,
            customers=self.customers,
            tasks=self.tasks,
            lifecycle=self.lifecycle,
            outbox=self.outbox,
            access=self.access,
            audit=self.audit,
            rules=rules,
        )
        self._tables: dict[str, TableService] = {}
        #: How reports show values to people: ``locale`` (``en_US``, ``de_DE``) for numbers and dates,
        #: ``currency`` (ISO 4217) for money, the time zones for hours, the declarations' labels.
        self.formats = Formats.build(
            locale,
            currency,
            zones=self.zones,
            region=self.phones.region,
            labels=label_lookup(self.registry, lambda: {r.name: r for r in self.reports.all()}),
        )
        self.reports = Reports(
            formats=self.formats,
            registry=self.registry,
            context=ReportContext(
                engine=self.engine,
                registry=self.registry,
                triggers=self.triggers,
                metadata=self.metadata,
                audit=self.audit,
                zones=self.zones,
                currency=self.formats.currency,
            ),
            template_dirs=self.template_dirs,
            access=self.access,
        )

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def region(self) -> str:
        """The default region phone numbers are read in (see :attr:`phones`)."""
        return self.phones.region

    @property
    def branch_regions(self) -> dict[str, str]:
        return self.phones.branch_regions

    @property
    def plugins(self) -> tuple[str, ...]:
        """Names of the loaded plugins, the core excluded."""
        return self.registry.plugins

    def table(self, name: str) -> TableService:
        """The validated CRUD service of ``name``, a table a loaded plugin declared (``crmkit.tables``)."""
        service = self._tables.get(name)
        if service is None:
            if name not in self.registry.tables:
                raise NotFound("plugin table", name)
            table = self.metadata.tables[name]
            service = self._tables[name] = TableService(table, self.units, access=self.access, audit=self.audit)
        return service

    @contextmanager
    def transaction(self, *, actor_id: int | None = None) -> Iterator[Transaction]:
        """Open a unit of work: pass it as ``tx=`` to several calls and they commit (or not) together;
        reads given ``tx=`` see its writes before it commits. With ``actor_id`` every call in it runs as
        that user."""
        actor = self.users.actor(actor_id) if actor_id is not None else None
        with self.units.open(actor_id) as tx:
            tx.actor = actor
            yield tx

    def as_user(self, user_id: int) -> AbstractContextManager[Actor]:
        """Run the calls of a ``with`` block as user ``user_id`` (their role's permissions, over the customers
        of their branches): ``with crm.as_user(7): crm.customers.list()``. The block's context only: other
        threads and tasks are not affected. ``NotFound`` for no such user, ``AccessDenied`` for an inactive one."""
        return self.access.using(self.users.actor(user_id))

    def as_system(self, name: str) -> AbstractContextManager[Actor]:
        """Run the calls of a ``with`` block as the system actor ``name`` (automation: ``"triggers"``, a
        scheduled import), which may do everything and is recorded by that name, never as nobody."""
        return self.access.using(self.access.system(name))

    @property
    def write_engine(self) -> Engine:
        """The engine as used by write transactions (on SQLite they begin with ``BEGIN IMMEDIATE``)."""
        return self.units.write_engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for your own queries against crmkit's tables; the caller commits if it writes."""
        with self.session_factory() as session:
            yield session

    def create_schema(self) -> None:
        """Create every table of the core and the loaded plugins that does not exist yet, and mark the
        database as migrated to the current revisions so ``crmkit db upgrade`` carries on from here."""
        from crmkit import migrate

        with self.engine.begin() as conn:
            self.metadata.create_all(conn)
            migrate.stamp_heads(self, conn)

    def drop_schema(self) -> None:
        from crmkit import migrate

        with self.engine.begin() as conn:
            self.metadata.drop_all(conn)
            migrate.drop_version_table(conn)

    def analyze(self, tables: Iterable[str] | None = None) -> list[str]:
        """Refresh the query planner's statistics of crmkit's tables (the core's and the plugins'; or of
        ``tables``): PostgreSQL's ``ANALYZE``, SQLite's ``PRAGMA optimize``. Imports and ingests do it by
        themselves on PostgreSQL after writing many rows; call it after bulk writes of your own (a restore,
        a ``COPY``). Returns the tables analysed."""
        names = [t.name for t in self.metadata.sorted_tables] if tables is None else list(tables)
        unknown = sorted(set(names) - set(self.metadata.tables))
        if unknown:
            raise ValidationError({"tables": [f"not a table of this CRM: {', '.join(unknown)}"]}, "invalid analyze")
        return statistics.analyze(self.engine, names)

    def normalize_phone(self, raw: str, region: str | None = None) -> str | None:
        """The normalised phone number, as decided by the ``crmkit_normalize_phone`` hook.

        ``raw`` is read in ``region`` (ISO 3166 alpha-2; the CRM's default ``region`` when ``None``)
        unless it is written with ``+`` and a country code. Raises ``ValueError`` with the reason when it
        is not a valid number there.
        """
        return self.phones.normalize(raw, region)

    def phone_region(self, country: str | None = None, branch: str | None = None) -> str:
        """The region a customer's phone is read in: their ``country``, else their branch's region
        (``branch_regions``), else the CRM's default ``region``."""
        return self.phones.region_of(country, branch)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> CRM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CRM(url={self.engine.url.render_as_string(hide_password=True)!r}, plugins={list(self.plugins)})"


def _create_engine(url: str, engine_options: Mapping[str, Any] | None) -> Engine:
    options = dict(engine_options or {})
    if make_url(url).get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT, **dict(options.get("connect_args") or {})}
    return create_engine(url, **options)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # writers take the write lock up front: two deferred transactions that both read and then write
    # would otherwise deadlock and fail at once instead of waiting for each other
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("crmkit_write") else "BEGIN")


def _sqlite_pragmas(engine: Engine) -> None:
    """Foreign keys on, and let SQLAlchemy own BEGIN so savepoints and transactional DDL work.

    See SQLAlchemy's "Serializable isolation / Savepoints / Transactional DDL" notes for pysqlite. Applied
    to an engine the caller passes in too (once), since crmkit's cascades and savepoints rely on it.
    """
    if not event.contains(engine, "connect", _sqlite_on_connect):
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)


#: PostgreSQL's SQLSTATEs for a transaction aborted because of a concurrent one: deadlock detected,
#: serialization failure. Retrying the unit of work is the answer to both.
_CONCURRENCY_ABORTS = frozenset({"40P01", "40001"})


def _busy(context: Any) -> None:
    """A writer that lost to a concurrent one gets crmkit's error, not the driver's: SQLite's "database is
    locked" after the busy timeout, PostgreSQL's deadlock or serialization failure."""
    error = context.original_exception
    locked = isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
    if locked or getattr(error, "sqlstate", None) in _CONCURRENCY_ABORTS:
        raise DatabaseBusyError(str(error).splitlines()[0]) from context.sqlalchemy_exception


def _driver_errors(engine: Engine) -> None:
    if not event.contains(engine, "handle_error", _busy):
        event.listen(engine, "handle_error", _busy)
