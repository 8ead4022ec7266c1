"""Customers: validated writes, one flat record across core, plugin and run-time fields."""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs
from sqlalchemy import ColumnElement, Dialect, Select, Table, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from crmkit import fields as fieldmod
from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.claims import claims_of
from crmkit.db.customer_batch import CustomerBatch
from crmkit.db.customer_rows import CustomerRows
from crmkit.db.driver import Cursor, cursor
from crmkit.db.models import Contact, Customer, CustomerClaim, Merge, StageHistory, User
from crmkit.db.types import utcnow
from crmkit.errors import AccessDenied, DuplicateCustomerError, NotFound, ValidationError
from crmkit.fastpath import CustomerCheck, customer_fast_check, customer_fast_check_many
from crmkit.fastrows import Dumper, JsonDumper, dumper, json_dumper
from crmkit.hooks import Hooks
from crmkit.lifecycle import Lifecycle, move_record
from crmkit.limits import Text, check, id_filter, require_id
from crmkit.listing import Listing, Searchable, customer_scope, mask
from crmkit.merge import merge_customers
from crmkit.phones import Phones
from crmkit.plugins import Registry
from crmkit.runtime_fields import RuntimeFields
from crmkit.schemas import Country, Schemas, load
from crmkit.searches import customer_listing
from crmkit.unit import Transaction, Units

_CORE_INPUT = ("name", "email", "phone", "birthday", "source", "campaign", "owner_id", "branch", "country")
#: the inputs a customer's phone is read from: the number and the two things that decide its region
#: What a text filter may hold: what a column could store (a NUL, say, is a driver error on PostgreSQL).
_TEXT = Text()
_NAME = Text(max_length=48)
_COUNTRY = Country()
_PHONE_INPUTS = frozenset({"phone", "country", "branch"})
#: Ids per ``IN (...)``, well under SQLite's limit of bound parameters.
_IN_CHUNK = 10_000
S = TypeVar("S")


#: (raw number, region) -> its normalised form; ``ValueError`` with the reason when it is not valid there.
PhoneReader = Callable[[str, str], "str | None"]


@attrs.frozen
class Prepared:
    """A new customer's validated input (see :meth:`Customers.prepare`)."""

    values: dict[str, Any]
    phone_normalized: str | None
    stage: str
    created_at: dt.datetime | None
    stage_changed_at: dt.datetime | None
    cause: str


class NewCustomers:
    """The customers :meth:`Customers.insert_many` inserted: their ids, and their records, made when read
    unless a ``customer_created`` hook had them made already (then those very records, as it saw them)."""

    def __init__(
        self,
        ids: list[int],
        flats: list[dict[str, Any]],
        records: list[dict[str, Any]] | None,
        recorder: Callable[[Mapping[str, Any]], dict[str, Any]],
        ledger_writer: JsonDumper,
    ) -> None:
        self.ids = ids
        self._flats = flats
        self._records = records
        self._recorder = recorder
        self._ledger_writer = ledger_writer

    def record(self, index: int) -> dict[str, Any]:
        if self._records is not None:
            return self._records[index]
        return self._recorder(self._flats[index])

    def records(self) -> list[dict[str, Any]]:
        return [self.record(i) for i in range(len(self.ids))]

    def created_jsons(self) -> list[str | None]:
        """Per customer, ``json.dumps`` of its record's fields that have a value (but the derived ones),
        written without making the record; ``None`` when the record must be made to say (a value that is not
        text or a whole number), or was made for a hook, which could have changed it."""
        if self._records is not None:
            return [None] * len(self.ids)
        return list(map(self._ledger_writer, self._flats))


@attrs.frozen
class DuplicateGroup:
    """Customers that share a normalised email or phone."""

    matched_on: str
    value: str
    customer_ids: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"matched_on": self.matched_on, "value": self.value, "customer_ids": list(self.customer_ids)}


def _flat_in_place(
    customer_id: int, row: dict[str, Any], fields: Mapping[str, Sequence[Any]], names: Mapping[str, list[str]]
) -> dict[str, Any]:
    """A new customer's every column, plugin field and id (the input of :meth:`Customers._record`), made of
    ``row`` itself rather than a copy; the id comes last, which no reader of a flat customer minds (records
    and the ledger follow the output schema's order)."""
    for plugin, plugin_values in fields.items():
        row.update(zip(names[plugin], plugin_values, strict=True))
    row["id"] = customer_id
    return row


def normalize_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


#: What the CRM derives from a customer's other fields (their normalised email and phone, the lifecycle of
#: their stage) and the time of the last write: an import's ledger leaves them out of a created customer,
#: and its revert does not compare them.
DERIVED_FIELDS = frozenset({"email_normalized", "phone_normalized", "lifecycle", "updated_at"})

#: The columns of a new customer's row after its input fields, in their order (:meth:`Customers._flat_maker`).
_DERIVED_ORDER = (
    "email_normalized", "phone_normalized", "stage", "lifecycle", "stage_changed_at", "created_at", "updated_at",
    "extra",
)  # fmt: skip

#: Columns an audit entry leaves out: the id is the entry's own, the times are the entry's time.
_NOT_AUDITED = frozenset({"id", "customer_id", "updated_at"})


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field of ``after`` whose value is not the one in ``before``;
    run-time fields (in ``extra``) each under their own name."""
    out: dict[str, list[Any]] = {}
    for key, new in after.items():
        if key in _NOT_AUDITED:
            continue
        old = before.get(key)
        if key == "extra":
            old_extra, new_extra = old or {}, new or {}
            for name in sorted(old_extra.keys() | new_extra.keys()):
                if old_extra.get(name) != new_extra.get(name):
                    out[name] = [old_extra.get(name), new_extra.get(name)]
        elif old != new:
            out[key] = [old, new]
    return out


class Customers(Searchable):
    """``crm.customers``: create, update, read, find duplicates and merge."""

    _read_permission = "customers:read"

    def __init__(
        self,
        *,
        access: Access,
        registry: Registry,
        schemas: Schemas,
        hooks: Hooks,
        units: Units,
        lifecycle: Lifecycle,
        fields: RuntimeFields,
        phones: Phones,
        extension_tables: Mapping[str, Table],
        referencing_tables: Callable[[], list[Table]],
        audit: Audit,
        suppressed: Callable[[Cursor, Iterable[tuple[str, str | None]]], None] = lambda cur, pairs: None,
    ) -> None:
        self._access = access
        self._audit = audit
        # refuses the email and phone of a person whose data was erased (crm.privacy)
        self._suppressed = suppressed
        self._registry = registry
        self._schemas = schemas
        self._hooks = hooks
        self._units = units
        self._lifecycle = lifecycle
        self._fields = fields
        self._phones = phones
        self._extension_tables = dict(extension_tables)
        # every table that may point at a customer (the CRM's and the app's): a merge re-points them
        self._referencing_tables = referencing_tables
        # the listing and the output schema it was built with: a run-time field defined gives a new schema
        self._built_listing: tuple[object, Listing] | None = None
        self._customer_rows: dict[Dialect, CustomerRows] = {}
        self._batches: dict[Dialect, CustomerBatch] = {}
        self._fast_for: object = None
        self._checks: dict[bool, CustomerCheck] = {}
        self._check_many: Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any] | None]] = lambda rows: []
        self._dump_for: object = None
        self._dumper: Dumper = dict
        self._ledger_dumper: JsonDumper = lambda row: None

    # -- writes ----------------------------------------------------------------------------------

    def create(
        self,
        data: Mapping[str, Any],
        *,
        actor_id: int | None = None,
        allow_duplicate: bool = False,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Validate and insert one customer with its plugin fields; return the stored record.

        Raises ``ValidationError`` listing every field problem, ``DuplicateCustomerError`` when the
        normalised email or phone is already known (unless ``allow_duplicate``). The check holds under
        concurrent writers (see :mod:`crmkit.claims`). Nothing is written unless everything, plugin event
        hooks included, succeeds.
        """
        return self.create_prepared(
            data, lambda: self.prepare(data), actor_id=actor_id, allow_duplicate=allow_duplicate, tx=tx
        )

    def create_prepared(
        self,
        data: Mapping[str, Any],
        prepare: Callable[[], Prepared],
        *,
        actor_id: int | None = None,
        allow_duplicate: bool = False,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """:meth:`create` (or :meth:`create_historical`) of ``data`` validated by ``prepare``, a call of
        :meth:`prepare` or :meth:`prepare_historical` on it: the permission and the acting user's reach are
        checked first, then ``prepare`` validates, then the customer is inserted."""
        self._access.require("customers:write", tx)
        self._may_create(tx, data)
        return self._insert(prepare(), actor_id, allow_duplicate, tx)

    def prepare(self, data: Mapping[str, Any], *, normalize: PhoneReader | None = None) -> Prepared:
        """``data`` validated as :meth:`create` validates it (``ValidationError`` otherwise), ready for
        :meth:`create_many`. ``normalize`` reads the phone in place of the CRM's ``normalize_phone`` (a
        caller's memo of it: a file has the same number in several places)."""
        return self._prepare(data, normalize)

    def _prepare(self, data: Mapping[str, Any], normalize: PhoneReader | None, checked: Any = None) -> Prepared:
        values, phone_normalized = self._load_new(data, normalize, checked)
        stage = values.pop("stage", "lead")
        return Prepared(values, phone_normalized, stage, None, None, "created")

    def prepare_many(
        self, data: Sequence[Mapping[str, Any]], *, normalize: PhoneReader | None = None
    ) -> builtins.list[Prepared | ValidationError]:
        """:meth:`prepare` of each of ``data``, with the ``ValidationError`` in place of a customer it refuses:
        the same answers, the input checked a field at a time for all of them
        (:func:`crmkit.fastpath.customer_fast_check_many`), as an import checks a chunk of new customers."""
        out: builtins.list[Prepared | ValidationError] = []
        for one, checked in zip(data, self._fast_many()(data), strict=True):
            try:
                out.append(self._prepare(one, normalize, checked))
            except ValidationError as exc:
                out.append(exc)
        return out

    def create_historical(
        self,
        data: Mapping[str, Any],
        *,
        created_at: dt.datetime,
        stage: str | None = None,
        stage_changed_at: dt.datetime | None = None,
        cause: str = "imported",
        actor_id: int | None = None,
        allow_duplicate: bool = False,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Insert a customer that already existed elsewhere (a migration from another CRM) with its own
        history: created at ``created_at``, in ``stage`` (any declared stage, not only an initial one; the
        first initial stage when ``None``) since ``stage_changed_at`` (``created_at`` when ``None``). Its one
        history row moves it into ``stage`` at that time with ``cause``, so cohorts and funnels count it
        from when it really started. Everything else is as :meth:`create`.

        Both times must be aware datetimes, not in the future, and ``stage_changed_at`` not before
        ``created_at``; anything else is a ``ValidationError``.
        """
        return self.create_prepared(
            data,
            lambda: self.prepare_historical(
                data, created_at=created_at, stage=stage, stage_changed_at=stage_changed_at, cause=cause
            ),
            actor_id=actor_id,
            allow_duplicate=allow_duplicate,
            tx=tx,
        )

    def prepare_historical(
        self,
        data: Mapping[str, Any],
        *,
        created_at: dt.datetime,
        stage: str | None = None,
        stage_changed_at: dt.datetime | None = None,
        cause: str = "imported",
        normalize: PhoneReader | None = None,
    ) -> Prepared:
        """:meth:`prepare` for :meth:`create_historical`: the same checks, the same errors."""
        errors: dict[str, list[str]] = {}
        now = utcnow()
        for name, value in (("created_at", created_at), ("stage_changed_at", stage_changed_at)):
            if value is None and name == "stage_changed_at":
                continue
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                errors[name] = ["must be a datetime with a time zone"]
            elif value > now:
                errors[name] = [f"{value.isoformat()} is in the future"]
        if not errors and stage_changed_at is not None and stage_changed_at < created_at:
            errors["stage_changed_at"] = ["is before created_at"]
        initial = next(s.name for s in self._registry.stages.values() if s.initial)
        stage = initial if stage is None else stage
        if stage not in self._registry.stages:
            errors["stage"] = [f"unknown stage {stage!r}: expected one of {', '.join(self._registry.stages)}"]
        input_data = {k: v for k, v in data.items() if k != "stage"} if isinstance(data, Mapping) else data
        try:
            values, phone_normalized = self._load_new(input_data, normalize)
        except ValidationError as exc:
            raise ValidationError({**exc.errors, **errors}, "invalid customer") from None
        if errors:
            raise ValidationError(errors, "invalid customer")
        return Prepared(values, phone_normalized, stage, created_at, stage_changed_at or created_at, cause)

    def _insert(
        self, prepared: Prepared, actor_id: int | None, allow_duplicate: bool, tx: Transaction | None
    ) -> dict[str, Any]:
        with self._write(tx, actor_id) as (t, cur):
            actor = actor_id or t.actor_id
            rows = self._rows(t)
            names = self._plugin_fields()
            row, fields = self._new_row(prepared, utcnow(), names)
            self._check_owner(cur, row["owner_id"])
            self._suppressed(cur, (("email", row["email_normalized"]), ("phone", prepared.phone_normalized)))
            moved, stage, lifecycle = row["stage_changed_at"], row["stage"], row["lifecycle"]
            history = (None, stage, lifecycle, moved, prepared.cause, actor)
            customer_id = rows.insert_new(cur, row, fields, history)
            gained = claims_of(row["email_normalized"], prepared.phone_normalized)
            self._claim(rows, cur, customer_id, row, gained, set(), allow_duplicate=allow_duplicate)
            record = self._created(t, customer_id, row, fields, prepared.cause, actor, names)
            new = {k: [None, v] for k, v in record.items() if v is not None and k not in _NOT_AUDITED}
            self._audit.record(
                t, "customer.created", "customer", entity_id=customer_id, customer_id=customer_id,
                changes=new, user_id=actor, new=True,
            )  # fmt: skip
            return record

    def _plugin_fields(self) -> dict[str, list[str]]:
        """Each plugin's field names, in declaration order."""
        return {plugin: [f.name for f in self._registry.fields_of(plugin)] for plugin in self._extension_tables}

    def _new_row(
        self, prepared: Prepared, now: dt.datetime, names: Mapping[str, list[str]]
    ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """The customer's column values and its plugins' field values (in declaration order)."""
        return self._row_maker(now, names)(prepared)

    def _row_maker(
        self, now: dt.datetime, names: Mapping[str, list[str]]
    ) -> Callable[[Prepared], tuple[dict[str, Any], dict[str, list[Any]]]]:
        """:meth:`_new_row` for many customers, with what it looks up (run-time fields, lifecycles) looked
        up once."""
        make_flat = self._flat_maker(now, names)

        def make(prepared: Prepared) -> tuple[dict[str, Any], dict[str, list[Any]]]:
            row = make_flat(prepared)
            fields = {plugin: [row.pop(name) for name in plugin_names] for plugin, plugin_names in names.items()}
            return row, fields

        return make

    def _flat_maker(self, now: dt.datetime, names: Mapping[str, list[str]]) -> Callable[[Prepared], dict[str, Any]]:
        """A new customer's every column but its id, and its plugins' fields (``names``), in one mapping: the
        flat customer (:func:`_flat_in_place`) once its id is in."""
        runtime = self._fields.runtime()
        lifecycles: dict[str, str] = {}
        inputs = (*_CORE_INPUT, *(name for plugin_names in names.values() for name in plugin_names))
        known = frozenset(inputs)
        # every key a row has, in its order, the batch's times filled in: a copy is made at its full size
        template = dict.fromkeys((*inputs, *_DERIVED_ORDER))
        template.update(stage_changed_at=now, created_at=now, updated_at=now)

        def make(prepared: Prepared) -> dict[str, Any]:
            values, stage = prepared.values, prepared.stage
            get = values.get
            if values.keys() <= known:  # the usual case: filled in at C speed
                row = template.copy()
                row.update(values)
            else:
                row = template | {key: get(key) for key in inputs}
            row["email_normalized"] = normalize_email(row["email"])
            row["phone_normalized"] = prepared.phone_normalized
            lifecycle = lifecycles.get(stage)
            if lifecycle is None:
                lifecycle = lifecycles[stage] = self._lifecycle.stage(stage).lifecycle
            row["stage"] = stage
            row["lifecycle"] = lifecycle
            if prepared.stage_changed_at is not None:
                row["stage_changed_at"] = prepared.stage_changed_at
            if prepared.created_at is not None:
                row["created_at"] = prepared.created_at
            row["extra"] = (
                {spec.name: fieldmod.to_json_value(spec, get(spec.name)) for spec in runtime} if runtime else {}
            )
            return row

        return make

    def _created(
        self,
        t: Transaction,
        customer_id: int,
        row: dict[str, Any],
        fields: Mapping[str, Sequence[Any]],
        cause: str,
        actor: int | None,
        names: Mapping[str, list[str]],
        recorder: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        listened: tuple[bool, bool] = (True, True),
    ) -> dict[str, Any]:
        """Tell the hooks of a new customer; its record (made by ``recorder``, :meth:`_recorder`'s, when
        given). ``listened``: whether ``stage_changed`` and ``customer_created`` have an implementation
        (:meth:`_listened`); a hook nobody implements is not called, which is all calling it would do."""
        flat = self._created_flat(t, customer_id, row, fields, cause, actor, names, listened[0])
        record = (recorder or self._record)(flat)
        if listened[1]:
            self._hooks.customer_created(t, record)
        return record

    def _created_flat(
        self,
        t: Transaction,
        customer_id: int,
        row: dict[str, Any],
        fields: Mapping[str, Sequence[Any]],
        cause: str,
        actor: int | None,
        names: Mapping[str, list[str]],
        stage_listened: bool,
    ) -> dict[str, Any]:
        """Tell ``stage_changed`` of a new customer (when someone implements it); the customer's every column
        and plugin field, the input of :meth:`_record`."""
        if stage_listened:
            self._tell_first_stage(t, customer_id, row, cause, actor)
        return _flat_in_place(customer_id, row, fields, names)

    def _tell_first_stage(
        self, t: Transaction, customer_id: int, row: Mapping[str, Any], cause: str, actor: int | None
    ) -> None:
        """``stage_changed`` of a new customer, into the stage of its row."""
        moved = move_record(customer_id, None, row["stage"], row["lifecycle"], row["stage_changed_at"], cause, actor)
        self._hooks.stage_changed(t, moved)

    def _listened(self) -> tuple[bool, bool]:
        """Whether some plugin implements ``stage_changed``, ``customer_created``: asked once per batch
        (pluggy's ``get_hookimpls``; wrappers count), so a batch calls no hook that nobody listens to."""
        return self._hooks.implemented("stage_changed"), self._hooks.implemented("customer_created")

    def create_many(
        self, prepared: Sequence[Prepared], *, actor_id: int | None = None, tx: Transaction | None = None
    ) -> list[dict[str, Any]]:
        """Insert customers :meth:`prepare` or :meth:`prepare_historical` validated, with a few statements
        per table for all of them; their records, in order (see :meth:`insert_many`)."""
        return self.insert_many(prepared, actor_id=actor_id, tx=tx).records()

    def insert_many(
        self, prepared: Sequence[Prepared], *, actor_id: int | None = None, tx: Transaction | None = None
    ) -> NewCustomers:
        """Insert customers :meth:`prepare` or :meth:`prepare_historical` validated, with a few statements
        per table for all of them; their ids, and their records, made when read (:class:`NewCustomers`).

        The same rows and hooks as :meth:`create` of each in turn, and the same duplicate rule: their claims
        are taken first (in one global order, so this waits for concurrent writers of the same values),
        then a customer whose email or phone another customer has (one of these included) is a
        ``DuplicateCustomerError``; the caller rolls its savepoint back to keep none of them. Owners are not
        checked here: ``prepared`` must name none (``ValueError``).
        """
        if not self._access.require("customers:write", tx).unscoped:  # else every customer is within reach
            for one in prepared:
                self._may_create(tx, one.values)
        if any(p.values.get("owner_id") is not None for p in prepared):
            raise ValueError("create_many takes customers without an owner; create() checks the owner")
        if not prepared:
            return NewCustomers([], [], None, self._recorder(), self._ledger_writer())
        with self._units.write(tx, actor_id) as t:
            actor = actor_id or t.actor_id
            now = utcnow()
            names = self._plugin_fields()
            make = self._flat_maker(now, names)
            rows = [make(p) for p in prepared]
            pairs = ((kind, row[f"{kind}_normalized"]) for row in rows for kind in ("email", "phone"))
            self._suppressed(cursor(t.session), pairs)
            connection = t.session.connection()
            batch = self._batch(t)
            ids = batch.new_ids(connection, len(rows))
            batch.claim_unique(connection, ids, rows)  # checked before the customers are written
            batch.insert(connection, ids, rows, [(p.cause, actor) for p in prepared])
            for cid, row in zip(ids, rows, strict=True):  # each row is now its flat customer
                row["id"] = cid
            recorder, listened = self._recorder(), self._listened()
            # the records are made here only for customer_created; else when the caller reads them
            records: list[dict[str, Any]] | None = [] if listened[1] else None
            if listened != (False, False):
                for row, p in zip(rows, prepared, strict=True):
                    if listened[0]:
                        self._tell_first_stage(t, row["id"], row, p.cause, actor)
                    if records is not None:
                        record = recorder(row)
                        self._hooks.customer_created(t, record)
                        records.append(record)
            # a bulk path: one entry for the batch, with its counts, not one per customer
            counts = {"created": len(ids), "first_id": min(ids), "last_id": max(ids)}
            self._audit.record(t, "customers.created", "customer", changes=counts, user_id=actor)
            return NewCustomers(ids, rows, records, recorder, self._ledger_writer())

    def _batch(self, t: Transaction) -> CustomerBatch:
        return self._statements(t, self._batches, CustomerBatch)

    def update(
        self,
        customer_id: int,
        data: Mapping[str, Any],
        *,
        actor_id: int | None = None,
        allow_duplicate: bool = False,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Change some fields of a customer. The stage moves only through ``crm.lifecycle.move``.

        The phone is read again when the phone, the country or the branch changes (they decide its
        region). A new normalised email or phone is refused when another customer has it, unless
        ``allow_duplicate``; a value the customer keeps is not checked again.
        """
        self._access.require("customers:write", tx)
        if isinstance(data, Mapping) and "stage" in data:
            raise ValidationError(
                {"stage": ["change the stage with crm.lifecycle.move(), which keeps the history"]},
                "invalid customer",
            )
        customer_id = require_id(customer_id, "customer")
        values = self._load_changes(data)
        with self._write(tx, actor_id) as (t, cur):
            self._reach(t, customer_id)
            rows = self._rows(t)
            current = rows.read(cur, customer_id, lock=True)
            if current is None:
                raise NotFound("customer", customer_id)
            self._check_owner(cur, values.get("owner_id"))
            held = claims_of(current["email_normalized"], current["phone_normalized"])
            after = dict(current)
            after.update((key, values[key]) for key in _CORE_INPUT if key in values)
            runtime = self._runtime_values(values, only_given=True)
            if runtime:
                after["extra"] = {**(current["extra"] or {}), **runtime}
            if "email" in values:
                after["email_normalized"] = normalize_email(after["email"])
            if _PHONE_INPUTS & values.keys():
                after["phone_normalized"] = self._phone_of(after["phone"], after["country"], after["branch"])
            changed = {key: value for key, value in after.items() if value != current[key]}
            if changed:  # as the ORM did: a customer whose columns keep their values is not touched
                changed["updated_at"] = after["updated_at"] = utcnow()
                rows.update(cur, customer_id, changed)
            new_values = [(k, after[f"{k}_normalized"]) for k in ("email", "phone") if f"{k}_normalized" in changed]
            self._suppressed(cur, new_values)
            now = claims_of(after["email_normalized"], after["phone_normalized"])
            self._claim(rows, cur, customer_id, after, now, held, allow_duplicate=allow_duplicate)
            for plugin in self._extension_tables:
                row = {f.name: values[f.name] for f in self._registry.fields_of(plugin) if f.name in values}
                rows.write_extension(cur, plugin, customer_id, row)
                after.update(row)
            audited = field_changes(current, after)
            if audited:
                self._audit.record(
                    t, "customer.updated", "customer", entity_id=customer_id, customer_id=customer_id,
                    changes=audited, user_id=actor_id,
                )  # fmt: skip
            stale = t.session.identity_map.get(identity_key(Customer, customer_id))
            if stale is not None:  # the caller's ORM copy of this customer: read it again when next used
                t.session.expire(stale)
            record = self._record(after)
            self._hooks.customer_updated(t, record, changes=values)
            return record

    def add_contact(
        self, customer_id: int, data: Mapping[str, Any], *, tx: Transaction | None = None
    ) -> dict[str, Any]:
        """Add a person to a customer (the one a meeting was held with, say)."""
        self._access.require("customers:write", tx)
        customer_id = require_id(customer_id, "customer")
        values = load(self._schemas.contact_in, data, message="invalid contact")
        with self._units.write(tx) as t:
            if t.session.get(Customer, customer_id) is None:
                raise NotFound("customer", customer_id)
            self._reach(t, customer_id)
            contact = Contact(customer_id=customer_id, **values)
            t.session.add(contact)
            t.session.flush()
            out = self._schemas.contact_out.dump(contact)
            self._audit.record(
                t, "contact.added", "contact", entity_id=contact.id, customer_id=customer_id,
                changes={k: v for k, v in out.items() if v is not None and k not in _NOT_AUDITED},
            )  # fmt: skip
            return out

    def merge(
        self, survivor_id: int, duplicate_id: int, *, actor_id: int | None = None, tx: Transaction | None = None
    ) -> dict[str, Any]:
        """Merge ``duplicate_id`` into ``survivor_id``; see :func:`crmkit.merge.merge_customers`.

        Rows of the duplicate that the survivor already has under a unique key (the same trigger firing
        in the same window, the same activity from one source) are dropped, the rest move; the
        duplicate's stage history is kept in the merge record (:meth:`merges`), not in the survivor's.
        """
        self._access.require("customers:merge", tx)
        survivor_id = require_id(survivor_id, "customer")
        duplicate_id = require_id(duplicate_id, "customer")
        fields_of = self._registry.fields_of
        extensions = {table: [f.name for f in fields_of(plugin)] for plugin, table in self._extension_tables.items()}
        with self._units.write(tx, actor_id) as t:
            for customer_id in (survivor_id, duplicate_id):
                self._reach(t, customer_id)
            merge_customers(
                t,
                survivor_id,
                duplicate_id,
                actor_id=actor_id or t.actor_id,
                read=self._read,
                extensions=extensions,
                tables=self._referencing_tables(),
                hooks=self._hooks,
            )
            user = actor_id or t.actor_id
            survivor = {"merged_id": duplicate_id}
            self._audit.record(
                t, "customer.merged", "customer", entity_id=survivor_id, customer_id=survivor_id,
                changes=survivor, user_id=user,
            )  # fmt: skip
            self._audit.record(
                t, "customer.merged_into", "customer", entity_id=duplicate_id, customer_id=duplicate_id,
                changes={"survivor_id": survivor_id}, user_id=user,
            )  # fmt: skip
            return self._read(t.session, survivor_id)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, customer_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        """The customer's record: core, plugin and run-time fields, flat and JSON-safe. In a unit of work
        (``tx``) it includes what that unit of work wrote."""
        actor = self._access.require("customers:read", tx)
        customer_id = require_id(customer_id, "customer")
        with self._units.read(tx) as s:
            record = self._read(s, customer_id)
        if not actor.reaches(record.get("branch"), record.get("owner_id")):
            raise NotFound("customer", customer_id)  # out of reach is not there: its existence is not told
        return self._shown(actor, [record])[0]

    def get_many(self, ids: Iterable[int], *, tx: Transaction | None = None) -> dict[int, dict[str, Any]]:
        """The records of the customers of ``ids`` that exist, by id, read in one statement per 10,000."""
        actor = self._access.require("customers:read", tx)
        scope = customer_scope(actor, Customer.__table__)
        wanted = sorted({i for i in (id_filter(i, "customer") for i in ids) if i is not None})
        out: dict[int, dict[str, Any]] = {}
        # marshmallow's exact output without its per-field calls: a trigger run reads a batch at a time
        dump = dumper(self._schemas.customer_out)
        with self._units.read(tx) as s:
            for start in range(0, len(wanted), _IN_CHUNK):
                query = self.select().where(Customer.__table__.c.id.in_(wanted[start : start + _IN_CHUNK]))
                if scope is not None:
                    query = query.where(scope)
                for row in s.execute(query).mappings():
                    out[row["id"]] = dump(self._flat(row))
        hidden = self._hidden(actor)
        return {cid: mask(record, hidden) for cid, record in out.items()} if hidden else out

    def iter(
        self,
        *,
        stage: str | None = None,
        lifecycle: str | None = None,
        batch_size: int = 1000,
        tx: Transaction | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream customers in id order without loading them all into memory."""
        actor = self._access.require("customers:read", tx)
        query = self.select()
        customers = Customer.__table__
        scope = customer_scope(actor, customers)
        if scope is not None:
            query = query.where(scope)
        for name, value in (("stage", stage), ("lifecycle", lifecycle)):
            if value is not None:
                check(_NAME, value, name, "invalid filter")
        if stage is not None:
            query = query.where(customers.c.stage == stage)
        if lifecycle is not None:
            query = query.where(customers.c.lifecycle == lifecycle)
        out = self._schemas.customer_out
        hidden = self._hidden(actor)
        with self._units.read(tx) as s:
            result = s.execute(query.order_by(customers.c.id), execution_options={"yield_per": batch_size})
            for row in result.mappings():
                yield mask(out.dump(self._flat(row)), hidden) if hidden else out.dump(self._flat(row))

    def list(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.iter(**filters))

    def select(self) -> Select[Any]:
        """A ``SELECT`` of every customer column and every plugin field, one row per customer.

        Use it to build your own queries; plugin fields are labelled with their field names.
        """
        customers: Table = Customer.__table__
        columns: list[Any] = [c for c in customers.c if c.name != "extra"] + [customers.c.extra]
        joined: Any = customers
        for plugin, table in self._extension_tables.items():
            joined = joined.outerjoin(table, table.c.customer_id == customers.c.id)
            columns.extend(table.c[f.name].label(f.name) for f in self._registry.fields_of(plugin))
        return select(*columns).select_from(joined)

    def merges(self, customer_id: int, *, tx: Transaction | None = None) -> builtins.list[dict[str, Any]]:
        """The merges whose survivor is this customer, oldest first (a merged survivor's own merges
        included: they follow it into the next survivor).

        Each is ``{"merged_id", "at", "actor_id", "snapshot", "moved", "history"}``: ``snapshot`` is the
        merged customer's last record, ``moved`` the rows moved per ``table.column`` (and under
        ``"dropped"`` the rows dropped as the same fact recorded twice), ``history`` the merged customer's
        stage history (``from_stage``, ``to_stage``, ``lifecycle``, ``at``, ``cause``, ``actor_id``).
        """
        self._access.require("customers:read", tx)
        wanted = id_filter(customer_id, "customer")
        if wanted is None:
            return []
        with self._units.read(tx) as s:
            rows = s.scalars(select(Merge).where(Merge.survivor_id == wanted).order_by(Merge.at, Merge.id))
            return [
                {
                    "merged_id": r.merged_id,
                    "at": r.at.astimezone(dt.UTC).isoformat(),
                    "actor_id": r.actor_id,
                    "snapshot": r.snapshot,
                    "moved": r.moved,
                    "history": list(r.history or []),
                }
                for r in rows
            ]

    def find_duplicates(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        country: str | None = None,
        tx: Transaction | None = None,
    ) -> builtins.list[int]:
        """Ids of customers whose normalised email or phone matches.

        ``phone`` is read in ``country`` (ISO 3166 alpha-2), else in the CRM's default region; a number
        that is not valid there matches nobody.
        """
        self._access.require("customers:read", tx)
        conditions = []
        for name, value in (("email", email), ("phone", phone)):
            if value:
                check(_TEXT, value, name, "invalid search")
        if email:
            conditions.append(Customer.email_normalized == normalize_email(email))
        if phone:
            region = check(_COUNTRY, country, "country", "invalid search") if country else None
            with contextlib.suppress(ValueError):
                conditions.append(Customer.phone_normalized == self._phones.normalize(phone, region))
        if not conditions:
            return []
        with self._units.read(tx) as s:
            return list(s.scalars(select(Customer.id).where(or_(*conditions)).order_by(Customer.id)))

    def duplicate_groups(self, *, tx: Transaction | None = None) -> builtins.list[DuplicateGroup]:
        """Every set of customers sharing a normalised email or phone, found by the database."""
        self._access.require("customers:read", tx)
        groups: list[DuplicateGroup] = []
        with self._units.read(tx) as s:
            for label, column in (("email", Customer.email_normalized), ("phone", Customer.phone_normalized)):
                dupes = (
                    select(column.label("value"))
                    .where(column.is_not(None))
                    .group_by(column)
                    .having(func.count() > 1)
                    .subquery()
                )
                rows = s.execute(
                    select(dupes.c.value, Customer.id)
                    .join(Customer, column == dupes.c.value)
                    .order_by(dupes.c.value, Customer.id)
                )
                members: dict[str, list[int]] = {}
                for value, cid in rows:
                    members.setdefault(value, []).append(cid)
                groups.extend(DuplicateGroup(label, v, tuple(ids)) for v, ids in members.items())
        return groups

    # -- helpers ---------------------------------------------------------------------------------

    def _load_new(
        self, data: Any, normalize: PhoneReader | None = None, checked: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """A new customer's values, validated (see :mod:`crmkit.fastpath`; ``checked``: what the fast check
        of many gave for it, when not ``None``), and its normalised phone."""
        values = checked if checked is not None else self._fast(partial=False)(data)
        if values is None:
            values = load(self._schemas.customer_in, data, message="invalid customer")
        # marshmallow's schema reads the phone too; the fast check leaves it here, refused with its message
        return values, self._phone_of(values.get("phone"), values.get("country"), values.get("branch"), normalize)

    def _load_changes(self, data: Any) -> dict[str, Any]:
        values = self._fast(partial=True)(data)
        if values is None:
            values = load(self._schemas.customer_in, data, partial=True, message="invalid customer")
        return values

    def _fast(self, *, partial: bool) -> CustomerCheck:
        schema = self._schemas.customer_in
        if self._fast_for is not schema:  # a run-time field was added: a new schema, new checks
            initial = [s.name for s in self._registry.stages.values() if s.initial]
            fields = self._fields.all()
            self._checks = {p: customer_fast_check(fields, initial, partial=p) for p in (False, True)}
            self._check_many = customer_fast_check_many(fields, initial)
            self._fast_for = schema
        return self._checks[partial]

    def _fast_many(self) -> Callable[[Sequence[Mapping[str, Any]]], builtins.list[dict[str, Any] | None]]:
        """:meth:`_fast` of many new customers at once (built with it, for the same schema)."""
        self._fast(partial=False)
        return self._check_many

    def _rows(self, t: Transaction) -> CustomerRows:
        return self._statements(t, self._customer_rows, CustomerRows)

    def _statements(self, t: Transaction, cache: dict[Dialect, S], make: Callable[..., S]) -> S:
        """The compiled statements of the customer tables for the dialect of ``t`` (built once per dialect)."""
        dialect = t.session.get_bind().dialect
        found = cache.get(dialect)
        if found is None:
            extensions = {
                plugin: (table, [f.name for f in self._registry.fields_of(plugin)])
                for plugin, table in self._extension_tables.items()
            }
            found = cache[dialect] = make(
                _table(Customer), _table(StageHistory), _table(CustomerClaim), extensions, dialect
            )
        return found

    @contextmanager
    def _write(self, tx: Transaction | None, actor_id: int | None) -> Iterator[tuple[Transaction, Cursor]]:
        with self._units.write(tx, actor_id) as t:
            yield t, cursor(t.session)

    def _record(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """The record of a customer whose every column and plugin field is in ``flat`` (Python values, run-time
        fields in ``extra`` as stored): what reading it back would give, without reading it back."""
        return self._recorder()(flat)

    def _recorder(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """:meth:`_record` for many customers, with the fields and the dumper looked up once."""
        read_back = self._read_back()
        self._dump({})  # the dumper of the current output schema
        dump = self._dumper
        return lambda flat: dump(read_back(flat))

    def _ledger_writer(self) -> JsonDumper:
        """For a flat customer: the JSON text of its record's fields that have a value, but the derived ones
        (what an import's ledger keeps of a created customer, :data:`DERIVED_FIELDS`), or ``None`` when only
        the record itself can say (:func:`crmkit.fastrows.json_dumper`)."""
        read_back = self._read_back()
        self._dump({})
        dump_json = self._ledger_dumper
        reads_extra = any(
            (f.attribute or name) == "extra" for name, f in self._schemas.customer_out.dump_fields.items()
        )
        if not self._fields.runtime() and not self._moments() and not reads_extra:
            return dump_json  # reading back would only copy the row and drop ``extra``, which is not dumped
        return lambda flat: dump_json(read_back(flat))

    def _read_back(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """A flat customer's values as reading it back gives them, before the dump: run-time fields out of
        ``extra``, datetimes of plugin fields in UTC."""
        runtime = self._fields.runtime()
        moments = self._moments()

        def read_back(flat: Mapping[str, Any]) -> dict[str, Any]:
            out = dict(flat)  # as _flat
            extra = out.pop("extra", None) or {}
            for spec in runtime:
                out[spec.name] = fieldmod.from_json_value(spec, extra.get(spec.name))
            for name in moments:
                value = out.get(name)
                if value is not None:
                    out[name] = value.astimezone(dt.UTC)  # stored in UTC, and read back so
            return out

        return read_back

    def _moments(self) -> builtins.list[str]:
        """The plugin fields that hold a datetime."""
        return [spec.name for spec in self._registry.fields.values() if spec.type == "datetime"]

    def _dump(self, record: Mapping[str, Any]) -> dict[str, Any]:
        schema = self._schemas.customer_out
        if self._dump_for is not schema:
            self._dumper = dumper(schema)
            self._ledger_dumper = json_dumper(schema, DERIVED_FIELDS)
            self._dump_for = schema
        return self._dumper(record)

    def _phone_of(
        self, phone: str | None, country: str | None, branch: str | None, normalize: PhoneReader | None = None
    ) -> str | None:
        if not phone:
            return None
        try:
            return (normalize or self._phones.normalize)(phone, self._phones.region_of(country, branch))
        except ValueError as exc:
            raise ValidationError({"phone": [str(exc)]}, "invalid customer") from None

    def _check_owner(self, cur: Cursor, owner_id: int | None) -> None:
        sql = f"SELECT 1 FROM {User.__tablename__} WHERE id = {cur.mark}"
        if owner_id is not None and cur.one(sql, (owner_id,)) is None:
            raise ValidationError({"owner_id": [f"no user with id {owner_id}"]}, "invalid customer")

    def _claim(
        self,
        rows: CustomerRows,
        cur: Cursor,
        customer_id: int,
        customer: Mapping[str, Any],
        now: set[tuple[str, str]],
        held: set[tuple[str, str]],
        *,
        allow_duplicate: bool,
    ) -> None:
        """Claim the values the customer gains and release those it lost, then, unless duplicates are
        allowed, refuse a value another customer has. The claim comes first: it waits for any concurrent
        writer of the same value, so the check that follows sees that writer's customer."""
        gained, lost = now - held, held - now
        if not gained and not lost:
            return
        rows.claim(cur, dict.fromkeys(gained, customer_id), dict.fromkeys(lost, customer_id))
        if not gained or allow_duplicate:
            return
        kinds = {kind for kind, _ in gained}
        email = customer["email_normalized"] if "email" in kinds else None
        phone = customer["phone_normalized"] if "phone" in kinds else None
        found = rows.duplicates(cur, email, phone, customer_id)
        if found:
            pairs = (("email", email), ("phone", phone))
            matched = {label for _, *theirs in found for (label, mine), value in zip(pairs, theirs, strict=True)
                       if mine and mine == value}  # fmt: skip
            raise DuplicateCustomerError([cid for cid, _, _ in found], sorted(matched))

    def _read(self, session: Session, customer_id: int) -> dict[str, Any]:
        row = session.execute(self.select().where(Customer.__table__.c.id == customer_id)).mappings().first()
        if row is None:
            raise NotFound("customer", customer_id)
        return self._dump(self._flat(row))

    def record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The read model of one row of :meth:`select`: the record ``get`` returns (run-time fields taken
        out of ``extra``, dumped JSON-safe). For an app's or a plugin's own queries built on ``select()``."""
        return self._dump(self._flat(row))

    def _flat(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        record = dict(row)
        extra = record.pop("extra", None) or {}
        for spec in self._fields.runtime():
            record[spec.name] = fieldmod.from_json_value(spec, extra.get(spec.name))
        return record

    def _runtime_values(self, values: Mapping[str, Any], *, only_given: bool = False) -> dict[str, Any]:
        return {
            spec.name: fieldmod.to_json_value(spec, values.get(spec.name))
            for spec in self._fields.runtime()
            if not only_given or spec.name in values
        }

    # -- lists -----------------------------------------------------------------------------------

    def _personal(self) -> tuple[str, ...]:
        return tuple(self._fields.personal())

    def _scope(self, actor: Actor) -> ColumnElement[bool] | None:
        return customer_scope(actor, Customer.__table__)

    def _reach(self, t: Transaction, customer_id: Any) -> None:
        """``NotFound`` for a customer the acting user does not reach (as for one that does not exist)."""
        actor = self._access.actor(t)
        if actor.unscoped or not isinstance(customer_id, int):
            return
        c = Customer.__table__.c
        found = t.session.execute(select(c.branch, c.owner_id).where(c.id == customer_id)).first()
        if found is not None and not actor.reaches(found[0], found[1]):
            raise NotFound("customer", customer_id)

    def _may_create(self, t: Transaction | None, data: Mapping[str, Any]) -> None:
        actor = self._access.actor(t)
        if actor.unscoped or not isinstance(data, Mapping):
            return
        branch, owner = data.get("branch"), data.get("owner_id")
        if not actor.reaches(branch if isinstance(branch, str) else None, owner if isinstance(owner, int) else None):
            where = f"of branch {branch!r}" if actor.scope == "branches" else "that they do not own"
            detail = f"{actor.describe()} may not create a customer {where}"
            raise AccessDenied(actor.describe(), "customers:write", detail)

    def _hidden(self, actor: Actor) -> tuple[str, ...]:
        """The personal fields the acting user may not read (none for most)."""
        return () if actor.sees_personal else self._personal()

    def _listing(self) -> Listing:
        out = self._schemas.customer_out
        built = self._built_listing
        if built is not None and built[0] is out:
            return built[1]
        listing = customer_listing(
            customers=Customer.__table__,
            query=self.select(),
            extensions=self._extension_tables,
            fields_of=self._registry.fields_of,
            runtime=self._fields.runtime(),
            stages={name: spec.lifecycle for name, spec in self._registry.stages.items()},
            normalize_phone=self._phones.normalize,
            record=lambda row: self._dump(self._flat(row)),
        )
        self._built_listing = (out, listing)
        return listing


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table
