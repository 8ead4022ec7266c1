"""Merging two customer records into one.

Every row that points at the duplicate, in core and plugin tables alike, is re-pointed to the survivor
(found from the schema's foreign keys, so a plugin table needs no merge code of its own). A row that would
then clash with one of the survivor's under a unique key that holds the customer column (the same trigger
firing in the same window, the same activity from the same source) is the same fact recorded twice: the
duplicate's copy is dropped and the survivor's kept. The survivor's values win; gaps in its core, plugin
and run-time fields are filled from the duplicate. The duplicate's last state and its stage history are
kept in ``crm_merges``, so the survivor's timeline stays its own and the duplicate's stays readable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Index, Table, UniqueConstraint, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmkit.claims import claims_of, take_claims
from crmkit.db.models import Customer, CustomerClaim, Merge, StageHistory
from crmkit.db.schema import write_extension
from crmkit.errors import CRMError, NotFound, ValidationError
from crmkit.hooks import Hooks
from crmkit.unit import Transaction

_FILLABLE = (
    "email",
    "email_normalized",
    "phone",
    "phone_normalized",
    "birthday",
    "source",
    "campaign",
    "owner_id",
    "branch",
)


def customer_references(tables: list[Table], skip: set[str]) -> list[tuple[Table, str]]:
    """(table, column) pairs holding a foreign key to ``crm_customers.id``."""
    out = []
    for table in tables:
        if table.name in skip:
            continue
        for fk in table.foreign_keys:
            # by name: an app's table may live in a MetaData that does not hold crm_customers
            if fk.target_fullname.rsplit(".", 2)[-2:] == ["crm_customers", "id"]:
                out.append((table, fk.parent.name))
    return out


def unique_keys(table: Table, column: str) -> list[tuple[str, ...]]:
    """The column names of every primary key, unique constraint and unique index of ``table`` that holds
    ``column``. Partial and expression indexes are left out: whether two rows clash there is not a matter
    of equal columns, so a merge does not guess (the move then fails with a ``CRMError`` if they do)."""
    keys: list[tuple[str, ...]] = [tuple(c.name for c in table.primary_key.columns)]
    keys += [tuple(c.name for c in con.columns) for con in table.constraints if isinstance(con, UniqueConstraint)]
    keys += [tuple(c.name for c in ix.columns) for ix in table.indexes if ix.unique and _plain(ix)]
    return sorted({key for key in keys if column in key})


def _plain(index: Index) -> bool:
    partial = any(opts.get("where") is not None for opts in index.dialect_options.values())
    return not partial and len(index.expressions) == len(index.columns)


def merge_customers(
    t: Transaction,
    survivor_id: int,
    duplicate_id: int,
    *,
    actor_id: int | None,
    read: Callable[[Session, int], dict[str, Any]],
    extensions: Mapping[Table, list[str]],
    tables: list[Table],
    hooks: Hooks,
) -> None:
    """Merge ``duplicate_id`` into ``survivor_id`` in ``t``.

    ``read`` gives a customer's record (kept as the merge's snapshot), ``extensions`` the plugin
    extension tables with their field columns, ``tables`` every table that may reference a customer
    (the CRM's and the app's ``related_tables``).
    """
    if survivor_id == duplicate_id:
        raise ValidationError({"duplicate_id": ["cannot merge a customer into itself"]}, "invalid merge")
    session = t.session
    # both rows locked in id order, so two merges of one pair in opposite directions queue, not deadlock
    locked = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(Customer.id.in_([survivor_id, duplicate_id])).order_by(Customer.id).with_for_update()
        )
    }
    for cid in (survivor_id, duplicate_id):
        if cid not in locked:
            raise NotFound("customer", cid)
    survivor, duplicate = locked[survivor_id], locked[duplicate_id]
    snapshot = read(session, duplicate_id)

    _fill_core(session, survivor, duplicate)
    session.flush()
    for table, names in extensions.items():
        _fill_extension(session, table, names, survivor_id, duplicate_id)

    history = _take_history(session, duplicate_id)
    moved = _move_references(session, tables, list(extensions), survivor_id, duplicate_id)
    session.execute(update(Merge).where(Merge.survivor_id == duplicate_id).values(survivor_id=survivor_id))

    session.execute(delete(Customer).where(Customer.id == duplicate_id))
    session.add(
        Merge(
            survivor_id=survivor_id,
            merged_id=duplicate_id,
            snapshot=snapshot,
            moved=moved,
            history=history,
            actor_id=actor_id,
        )
    )
    session.flush()
    hooks.customers_merged(t, survivor_id, duplicate_id)


def _fill_core(session: Any, survivor: Customer, duplicate: Customer) -> None:
    """Fill the survivor's empty core fields and claim the email and phone it gains from the duplicate."""
    held = claims_of(survivor.email_normalized, survivor.phone_normalized)
    # the country decides where the phone is read: it comes along only when the phone does, or when
    # the survivor has no phone that a new region could re-read differently
    if survivor.country is None and survivor.phone is None:
        survivor.country = duplicate.country
    for name in _FILLABLE:
        if getattr(survivor, name) is None and getattr(duplicate, name) is not None:
            setattr(survivor, name, getattr(duplicate, name))
    survivor.extra = {**(duplicate.extra or {}), **{k: v for k, v in (survivor.extra or {}).items() if v is not None}}
    gained = claims_of(survivor.email_normalized, survivor.phone_normalized) - held
    released = claims_of(duplicate.email_normalized, duplicate.phone_normalized)
    take_claims(session, dict.fromkeys(gained, survivor.id), dict.fromkeys(released, duplicate.id))
    # a claim row left naming the duplicate (a value it shared while duplicates were allowed) goes too
    session.execute(delete(CustomerClaim).where(CustomerClaim.customer_id == duplicate.id))


def _take_history(session: Any, duplicate_id: int) -> list[dict[str, Any]]:
    """The duplicate's stage history as JSON for the merge record, removed from the history table: moved
    into the survivor's, it would interleave two timelines in as-of and cohort queries."""
    rows = session.scalars(
        select(StageHistory).where(StageHistory.customer_id == duplicate_id).order_by(StageHistory.at, StageHistory.id)
    ).all()
    history = [
        {
            "from_stage": r.from_stage,
            "to_stage": r.to_stage,
            "lifecycle": r.to_lifecycle,
            "at": r.at.isoformat(),
            "cause": r.cause,
            "actor_id": r.actor_id,
        }
        for r in rows
    ]
    session.execute(delete(StageHistory).where(StageHistory.customer_id == duplicate_id))
    return history


def _move_references(
    session: Session, tables: list[Table], extensions: list[Table], survivor_id: int, duplicate_id: int
) -> dict[str, Any]:
    """Re-point every reference to the duplicate; return the rows moved (and dropped) per table.column."""
    moved: dict[str, Any] = {}
    dropped: dict[str, int] = {}
    skip = {
        "crm_customers",
        "crm_merges",
        StageHistory.__tablename__,
        *(table.name for table in extensions),
    }
    for table, column in customer_references(tables, skip):
        where = f"{table.name}.{column}"
        gone = sum(
            _drop_clashes(session, table, column, key, survivor_id, duplicate_id) for key in unique_keys(table, column)
        )
        if gone:
            dropped[where] = gone
        try:
            with session.begin_nested():
                result = session.execute(
                    update(table).where(table.c[column] == duplicate_id).values({column: survivor_id})
                )
        except IntegrityError as exc:
            raise CRMError(
                f"cannot merge: rows of {where} would clash once moved to customer {survivor_id} ({exc.orig})"
            ) from exc
        if result.rowcount:
            moved[where] = result.rowcount
    if dropped:
        moved["dropped"] = dropped
    return moved


def _drop_clashes(
    session: Any, table: Table, column: str, key: tuple[str, ...], survivor_id: int, duplicate_id: int
) -> int:
    """Delete the duplicate's rows that equal one of the survivor's on the rest of ``key``: once moved they
    would be the same row twice. NULL equals nothing, as in the unique key itself."""
    kept = table.alias("kept")
    same = [kept.c[name] == table.c[name] for name in key if name != column]
    result = session.execute(
        delete(table).where(table.c[column] == duplicate_id, exists().where(kept.c[column] == survivor_id, *same))
    )
    return int(result.rowcount or 0)


def _fill_extension(session: Any, table: Table, names: list[str], survivor_id: int, duplicate_id: int) -> None:
    rows = {
        r.customer_id: r
        for r in session.execute(select(table).where(table.c.customer_id.in_([survivor_id, duplicate_id])))
    }
    keep, gone = rows.get(survivor_id), rows.get(duplicate_id)
    if gone is None:
        return
    fill = {n: getattr(gone, n) for n in names if (keep is None or getattr(keep, n) is None)}
    write_extension(session, table, survivor_id, {k: v for k, v in fill.items() if v is not None})
