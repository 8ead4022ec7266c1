"""Merging two customer records into one.

Every row that points at the duplicate, in core and plugin tables alike, is re-pointed to the survivor
(found from the schema's foreign keys, so a plugin table needs no merge code of its own). The survivor's
values win; gaps in its core, plugin and run-time fields are filled from the duplicate. The duplicate's
last state is kept in ``crm_merges`` so a merge can be understood later.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError

from crmkit.db.models import Customer, Merge
from crmkit.db.schema import write_extension
from crmkit.errors import CRMError, NotFound, ValidationError
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


def merge_customers(t: Transaction, survivor_id: int, duplicate_id: int, *, actor_id: int | None) -> None:
    crm = t.crm
    if survivor_id == duplicate_id:
        raise ValidationError({"duplicate_id": ["cannot merge a customer into itself"]}, "invalid merge")
    session = t.session
    survivor = session.get(Customer, survivor_id, with_for_update=True)
    duplicate = session.get(Customer, duplicate_id, with_for_update=True)
    for cid, found in ((survivor_id, survivor), (duplicate_id, duplicate)):
        if found is None:
            raise NotFound("customer", cid)
    assert survivor is not None and duplicate is not None
    snapshot = crm.customers._read(session, duplicate_id)

    for name in _FILLABLE:
        if getattr(survivor, name) is None and getattr(duplicate, name) is not None:
            setattr(survivor, name, getattr(duplicate, name))
    survivor.extra = {**(duplicate.extra or {}), **{k: v for k, v in (survivor.extra or {}).items() if v is not None}}
    session.flush()

    for plugin, table in crm.extension_tables.items():
        _fill_extension(session, table, [f.name for f in crm.registry.fields_of(plugin)], survivor_id, duplicate_id)

    moved: dict[str, Any] = {}
    skip = {"crm_customers", "crm_merges", *(t.name for t in crm.extension_tables.values())}
    tables = [*crm.metadata.sorted_tables, *crm.related_tables]
    for table, column in customer_references(tables, skip):
        try:
            with session.begin_nested():
                result = session.execute(
                    update(table).where(table.c[column] == duplicate_id).values({column: survivor_id})
                )
        except IntegrityError as exc:
            raise CRMError(
                f"cannot merge: rows of {table.name}.{column} would clash once moved to customer"
                f" {survivor_id} ({exc.orig})"
            ) from exc
        if result.rowcount:
            moved[f"{table.name}.{column}"] = result.rowcount
    session.execute(update(Merge).where(Merge.survivor_id == duplicate_id).values(survivor_id=survivor_id))

    session.execute(delete(Customer).where(Customer.id == duplicate_id))
    session.add(
        Merge(survivor_id=survivor_id, merged_id=duplicate_id, snapshot=snapshot, moved=moved, actor_id=actor_id)
    )
    session.flush()
    crm.hook.crmkit_customers_merged(tx=t, survivor_id=survivor_id, merged_id=duplicate_id)


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
