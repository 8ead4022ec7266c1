"""Tasks and reminders: what staff should do, by when, and why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, case, func, insert, or_, select

from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.db.models import Customer, Task, User
from crmkit.db.types import utcnow
from crmkit.errors import NotFound, ValidationError
from crmkit.fastrows import dumper, task_fast_load
from crmkit.limits import Moment, check, id_filter, load_each, require_id
from crmkit.listing import Listing, Searchable, customer_scope
from crmkit.personal import TASK_PERSONAL
from crmkit.schemas import Schemas, load
from crmkit.searches import task_listing
from crmkit.unit import Transaction, Units

#: What a row of :meth:`Tasks.create_many` holds for each column its input may leave out.
_TASK_DEFAULTS: dict[str, Any] = {
    "reason": None,
    "customer_id": None,
    "assignee_id": None,
    "due_at": None,
    "remind_at": None,
    "status": "open",
    "source": None,
    "source_id": None,
    "completed_at": None,
}


#: The task's datetime columns: a record gives them in UTC, as the database does.
_MOMENTS = ("due_at", "remind_at", "created_at", "completed_at")


def _stored(row: dict[str, Any], task_id: int) -> dict[str, Any]:
    """The task as the database now holds it: ``row`` with its id, and its datetimes in UTC."""
    record = {**row, "id": task_id}
    for key in _MOMENTS:
        value = record[key]
        if value is not None and value.tzinfo is not dt.UTC:
            record[key] = value.astimezone(dt.UTC)
    return record


class Tasks(Searchable):
    """``crm.tasks``."""

    _read_permission = "tasks:read"

    def __init__(self, *, schemas: Schemas, units: Units, access: Access, audit: Audit) -> None:
        self._access = access
        self._audit = audit
        self._schemas = schemas
        self._units = units

    def create(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        self._access.require("tasks:write", tx)
        values = load(self._schemas.task_in, data, message="invalid task")
        with self._units.write(tx) as t:
            errors: dict[str, list[str]] = {}
            if values.get("customer_id") is not None and t.session.get(Customer, values["customer_id"]) is None:
                errors["customer_id"] = [f"no customer with id {values['customer_id']}"]
            if values.get("assignee_id") is not None and t.session.get(User, values["assignee_id"]) is None:
                errors["assignee_id"] = [f"no user with id {values['assignee_id']}"]
            if errors:
                raise ValidationError(errors, "invalid task")
            task = Task(**values)
            t.session.add(task)
            t.session.flush()
            record = self._schemas.task_out.dump(task)
            told = {k: v for k, v in record.items() if v is not None and k not in ("id", "customer_id")}
            self._audit.record(
                t, "task.created", "task", entity_id=task.id, customer_id=task.customer_id, changes=told
            )  # fmt: skip
            return record

    def complete(self, task_id: int, *, at: dt.datetime | None = None, tx: Transaction | None = None) -> dict[str, Any]:
        self._access.require("tasks:write", tx)
        return self._close(task_id, "done", at, tx)

    def cancel(self, task_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        self._access.require("tasks:write", tx)
        return self._close(task_id, "cancelled", None, tx)

    def get(self, task_id: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        """The task; ``NotFound`` also for one about a customer the acting user does not reach."""
        actor = self._access.require("tasks:read", tx)
        task_id = require_id(task_id, "task", bits=64)
        with self._units.read(tx) as s:
            task = s.scalars(select(Task).where(Task.id == task_id, *self._reached(actor))).one_or_none()
            if task is None:
                raise NotFound("task", task_id)
            return self._shown(actor, [self._schemas.task_out.dump(task)])[0]

    def open(
        self, *, assignee_id: int | None = None, customer_id: int | None = None, tx: Transaction | None = None
    ) -> list[dict[str, Any]]:
        """Open tasks, most urgent first: higher priority, then earlier due time (undated last); those the
        acting user reaches (about a reached customer, or about none)."""
        actor = self._access.require("tasks:read", tx)
        if (assignee_id is not None and id_filter(assignee_id, "assignee") is None) or (
            customer_id is not None and id_filter(customer_id, "customer") is None
        ):
            return []
        query = select(Task).where(Task.status == "open", *self._reached(actor))
        if assignee_id is not None:
            query = query.where(Task.assignee_id == assignee_id)
        if customer_id is not None:
            query = query.where(Task.customer_id == customer_id)
        query = query.order_by(Task.priority.desc(), case((Task.due_at.is_(None), 1), else_=0), Task.due_at, Task.id)
        with self._units.read(tx) as s:
            return self._shown(actor, self._schemas.task_out.dump(s.scalars(query), many=True))

    def next_actions(
        self,
        *,
        as_of: dt.datetime | None = None,
        assignee_id: int | None = None,
        limit: int = 20,
        tx: Transaction | None = None,
    ) -> dict[int | None, list[dict[str, Any]]]:
        """What each member of staff should do today: open tasks due by the end of ``as_of``'s day (overdue
        included) or undated, ranked by priority, then due time; at most ``limit`` per person.

        Ranked and cut by the database (a window function), whatever the number of tasks, among those the
        acting user reaches.
        """
        actor = self._access.require("tasks:read", tx)
        as_of = utcnow() if as_of is None else check(Moment(), as_of, "as_of", "invalid as_of")
        if assignee_id is not None and id_filter(assignee_id, "assignee") is None:
            return {}
        end_of_day = dt.datetime.combine(as_of.date() + dt.timedelta(days=1), dt.time(), tzinfo=as_of.tzinfo or dt.UTC)
        rank = (
            func.row_number()
            .over(
                partition_by=Task.assignee_id,
                order_by=(Task.priority.desc(), case((Task.due_at.is_(None), 1), else_=0), Task.due_at, Task.id),
            )
            .label("rank")
        )
        ranked = (
            select(Task.id, rank)
            .where(Task.status == "open", or_(Task.due_at.is_(None), Task.due_at < end_of_day), *self._reached(actor))
            .subquery()
        )
        query = (
            select(Task, ranked.c.rank)
            .join(ranked, ranked.c.id == Task.id)
            .where(ranked.c.rank <= limit)
            .order_by(Task.assignee_id, ranked.c.rank)
        )
        if assignee_id is not None:
            query = query.where(Task.assignee_id == assignee_id)
        out: dict[int | None, list[dict[str, Any]]] = {}
        with self._units.read(tx) as s:
            for task, _rank in s.execute(query):
                out.setdefault(task.assignee_id, []).extend(self._shown(actor, [self._schemas.task_out.dump(task)]))
        return out

    def reminders_due(self, as_of: dt.datetime | None = None, *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Open tasks whose reminder time has come by ``as_of`` (now by default), of those the acting user
        reaches."""
        actor = self._access.require("tasks:read", tx)
        as_of = utcnow() if as_of is None else check(Moment(), as_of, "as_of", "invalid as_of")
        query = (
            select(Task)
            .where(Task.status == "open", Task.remind_at.is_not(None), Task.remind_at <= as_of, *self._reached(actor))
            .order_by(Task.remind_at, Task.id)
        )
        with self._units.read(tx) as s:
            return self._shown(actor, self._schemas.task_out.dump(s.scalars(query), many=True))

    def _close(self, task_id: int, status: str, at: dt.datetime | None, tx: Transaction | None) -> dict[str, Any]:
        task_id = require_id(task_id, "task", bits=64)
        if at is not None:
            at = check(Moment(), at, "at", "cannot close task")
        with self._units.write(tx) as t:
            task = t.session.get(Task, task_id, with_for_update=True)
            if task is None:
                raise NotFound("task", task_id)
            if task.status != "open":
                raise ValidationError({"status": [f"task is already {task.status}"]}, "cannot close task")
            task.status = status
            task.completed_at = at or utcnow()
            t.session.flush()
            self._audit.record(
                t, f"task.{status}", "task", entity_id=task.id, customer_id=task.customer_id,
                changes={"status": ["open", status]},
            )  # fmt: skip
            return self._schemas.task_out.dump(task)

    def create_many(self, rows: Iterable[Mapping[str, Any]], *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Validate and insert several tasks at once; return the stored records, in the order given.

        Each row is checked as :meth:`create` checks one (the same schema, the customer and the assignee
        must exist) and the rows go in with one multi-row ``INSERT``. All or nothing: ``ValidationError``
        lists every problem as ``"[index].field"`` and writes no task.
        """
        self._access.require("tasks:write", tx)
        schema = self._schemas.task_in

        def load_task(data: Any) -> dict[str, Any]:
            # typed rows skip marshmallow: crmkit.fastrows accepts only what the schema loads unchanged
            fast = task_fast_load(data)
            return fast if fast is not None else load(schema, data, message="invalid task")

        loaded = load_each(rows, load_task, message="invalid tasks")
        if not loaded:
            return []
        with self._units.write(tx) as t:
            errors: dict[str, Any] = {}
            # the existence checks of create(), one query per referenced table for the whole batch
            for key, model in (("customer_id", Customer), ("assignee_id", User)):
                wanted = {v[key] for v in loaded if v.get(key) is not None}
                known = set(t.session.scalars(select(model.id).where(model.id.in_(wanted)))) if wanted else set()
                for i, values in enumerate(loaded):
                    if values.get(key) is not None and values[key] not in known:
                        what = "customer" if model is Customer else "user"
                        errors[f"[{i}].{key}"] = [f"no {what} with id {values[key]}"]
            if errors:
                raise ValidationError(errors, "invalid tasks")
            table: Table = Task.__table__
            now = utcnow()
            # every row names every column, so the dialect can send them as one multi-row statement
            full = [{**_TASK_DEFAULTS, "created_at": now, **values} for values in loaded]
            ids = t.session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), full)
            # the record is what was written, times as the database gives them back (in UTC): only the id
            # is the database's, so it is the only column read back
            dump = dumper(self._schemas.task_out)
            records = [dump(_stored(row, task_id)) for row, task_id in zip(full, ids, strict=True)]
            # a bulk path: one entry for the batch
            counts = {"created": len(records), "customers": len({r["customer_id"] for r in records} - {None})}
            self._audit.record(t, "tasks.created", "task", changes=counts)
            return records

    # -- lists -----------------------------------------------------------------------------------

    def _listing(self) -> Listing:
        return task_listing(record=self._schemas.task_out.dump)

    def _personal(self) -> tuple[str, ...]:
        # a task's text is written about the customer ("Renewal call: Zoe Quintessa"): personal data
        return tuple(TASK_PERSONAL)

    def _scope(self, actor: Actor) -> ColumnElement[bool] | None:
        reached = customer_scope(actor, Customer.__table__)
        if reached is None:
            return None
        return or_(Task.customer_id.is_(None), Task.customer_id.in_(select(Customer.id).where(reached)))

    def _reached(self, actor: Actor) -> list[ColumnElement[bool]]:
        """:meth:`_scope` as conditions to splat into the ``where`` of a read that is not a list."""
        scope = None if actor.unscoped else self._scope(actor)
        return [] if scope is None else [scope]
