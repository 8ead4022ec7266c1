"""The app path: what a web app calls on every request, one validated call at a time, against raw DBAPI code
issuing the same statements one row at a time on the same schema.

Three workloads, each run inside one outer transaction (``with crm.transaction() as tx: ... tx=tx``) and
with one transaction per call:

* ``create``: ``crm.customers.create`` of customers with a fitness field (``goal``, ``card_number``), a
  phone (distinct, valid, written as people type them: ``(212) 200-0001``) and an email. Baseline: a
  duplicate check ``SELECT``, the ``INSERT`` of the customer, of its extension row and of its stage history
  row.
* ``log``: ``crm.activities.log`` of calls. Baseline: the ``INSERT`` of the activity.
* ``update``: ``crm.customers.update`` of a plugin field and the phone. Baseline: the customer's row read
  (``FOR UPDATE`` on PostgreSQL), the ``UPDATE`` of the customer and of its extension row, and the duplicate
  check of the new phone.

Both sides write the audit log's entry of each call (``crm_audit``, chained to the customer's previous
entry): the baseline reads the chain's head, hashes the entry with :func:`crmkit.audit.entry_hash` and
inserts it, as a hand-written audited CRM would.

The baseline validates nothing: it is handed the normalised phone (the E.164 form the bench generated along
with the typed one) and stores what crmkit stores. crmkit validates every value, normalises the phone with
``phonenumbers``, takes its duplicate claims, calls the hooks and returns the record. Each side's result is
what it stored, counted by plain SQL, so a side that skipped work shows as a difference.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import text

from bench.common import Workload

if TYPE_CHECKING:
    from bench.data import Target

GOALS = ("weight_loss", "muscle", "endurance", "health", "rehab", "sport")
#: Where the generated numbers start: a New York exchange with room for tens of thousands of valid numbers.
_EXCHANGE = 200
_OCCURRED = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
_CUSTOMER_COLUMNS = (
    "name", "email", "email_normalized", "phone", "phone_normalized", "stage", "lifecycle",
    "stage_changed_at", "created_at", "updated_at", "extra",
)  # fmt: skip
_ACTIVITY_COLUMNS = ("customer_id", "kind", "channel", "direction", "status", "subject", "occurred_at", "data",
                     "created_at")  # fmt: skip
_STAGE = "lead"
_EXTENSION = "fitness_customer"
_MODES = ("one outer transaction", "a transaction per call")


@attrs.frozen
class AppSizes:
    customers: int = 10_000
    activities: int = 100_000


def phone(i: int) -> tuple[str, str]:
    """The ``i``-th generated number: as typed, and its E.164 form."""
    exchange, line = _EXCHANGE + i // 10_000, i % 10_000
    return f"(212) {exchange:03d}-{line:04d}", f"+1212{exchange:03d}{line:04d}"


@attrs.frozen
class NewCustomer:
    name: str
    email: str
    phone: str
    phone_e164: str
    goal: str
    card_number: str

    def as_input(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "goal": self.goal,
            "card_number": self.card_number,
        }


def new_customers(count: int) -> list[NewCustomer]:
    return [
        NewCustomer(f"Member {i}", f"Member{i}@Example.com", *phone(i), GOALS[i % len(GOALS)], f"C{i:07d}")
        for i in range(count)
    ]


@attrs.frozen
class Change:
    """An update: a customer's new phone (the ``count + i``-th number, so it clashes with nobody) and goal."""

    customer_id: int
    phone: str
    phone_e164: str
    goal: str

    def as_input(self) -> dict[str, Any]:
        return {"phone": self.phone, "goal": self.goal}


class AppPath:
    """The app-path database (fresh, fitness edition) and its workloads."""

    def __init__(self, target: Target, sizes: AppSizes) -> None:
        self.target = target
        self.sizes = sizes
        self.crm = target.fresh("apppath")
        self.sqlite = self.crm.engine.dialect.name == "sqlite"
        self.lifecycle = self.crm.lifecycle.stage(_STAGE).lifecycle
        self.customers = new_customers(sizes.customers)

    def close(self) -> None:
        self.crm.close()
        self.target.drop("apppath")

    # -- the workloads ---------------------------------------------------------------------------

    def workloads(self) -> Iterator[Workload]:
        """Each workload in both transaction modes; the state a workload needs is set up as it is reached."""
        n, m = self.sizes.customers, self.sizes.activities
        for outer, mode in zip((True, False), _MODES, strict=True):
            yield Workload(
                name=f"create {n:,} customers, {mode}",
                crmkit=functools.partial(self.crmkit_create, outer),
                baseline=functools.partial(self.raw_create, outer),
                baseline_kind="raw DBAPI, row by row",
                reset=self.empty,
                calls=n,
            )
        for outer, mode in zip((True, False), _MODES, strict=True):
            yield Workload(
                name=f"update {n:,} customers, {mode}",
                crmkit=functools.partial(self.crmkit_update, outer),
                baseline=functools.partial(self.raw_update, outer),
                baseline_kind="raw DBAPI, row by row",
                reset=self.populate,
                calls=n,
            )
        for outer, mode in zip((True, False), _MODES, strict=True):
            yield Workload(
                name=f"log {m:,} activities, {mode}",
                crmkit=functools.partial(self.crmkit_log, outer),
                baseline=functools.partial(self.raw_log, outer),
                baseline_kind="raw DBAPI, row by row",
                reset=self.no_activities,
                calls=m,
            )

    # -- crmkit ----------------------------------------------------------------------------------

    def _calls(self, outer: bool, call: Callable[..., Any], inputs: Sequence[Any]) -> None:
        if outer:
            with self.crm.transaction() as tx:
                for args in inputs:
                    call(*args, tx=tx)
        else:
            for args in inputs:
                call(*args)

    def crmkit_create(self, outer: bool) -> dict[str, int]:
        self._calls(outer, self.crm.customers.create, [(c.as_input(),) for c in self.customers])
        return self.stored_customers()

    def crmkit_update(self, outer: bool) -> dict[str, int]:
        changes = self.changes()
        self._calls(outer, self.crm.customers.update, [(c.customer_id, c.as_input()) for c in changes])
        return self.updated(changes)

    def crmkit_log(self, outer: bool) -> dict[str, int]:
        self._calls(outer, self.crm.activities.log, [(a,) for a in self.activities()])
        return self.logged()

    # -- the baseline ----------------------------------------------------------------------------

    def _raw(self, outer: bool, run: Callable[[Any, Any], None], rows: Sequence[Any]) -> None:
        """``run(cursor, row)`` for every row, in one transaction or committing after each row."""
        raw = self.crm.engine.raw_connection()
        try:
            cursor = raw.cursor()
            begin = "BEGIN IMMEDIATE" if self.sqlite else None  # crmkit's engine runs sqlite3 without implicit BEGIN
            if outer:
                if begin:
                    cursor.execute(begin)
                for row in rows:
                    run(cursor, row)
                raw.commit()
            else:
                for row in rows:
                    if begin:
                        cursor.execute(begin)
                    run(cursor, row)
                    raw.commit()
            cursor.close()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()

    def _sql(self, statement: str) -> str:
        return statement if self.sqlite else statement.replace("?", "%s")

    def _now(self) -> Any:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return now.isoformat(" ", "microseconds") if self.sqlite else now

    def _json(self, value: dict[str, Any]) -> Any:
        if self.sqlite:
            return json.dumps(value)
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def _audit(self) -> Callable[[Any, int, str, dict[str, Any]], None]:
        """The baseline's audit entry: the chain's head read, the entry hashed and inserted."""
        from crmkit.audit import GENESIS, canonical, digest_of, entry_hash

        head = self._sql("SELECT seq, hash FROM crm_audit WHERE customer_id = ? ORDER BY seq DESC LIMIT 1")
        columns = ("customer_id, seq, at, actor, user_id, action, entity, entity_id, changes, digest, redacted,"
                   " prev_hash, hash")  # fmt: skip
        insert = self._sql(f"INSERT INTO crm_audit ({columns}) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)")
        sqlite = self.sqlite

        def write(cursor: Any, customer_id: int, action: str, changes: dict[str, Any]) -> None:
            cursor.execute(head, (customer_id,))
            found = cursor.fetchone()
            seq, prev = (found[0] + 1, found[1]) if found else (1, GENESIS)
            at = dt.datetime.now(dt.UTC)
            text_ = canonical(changes)
            digest = digest_of(text_)
            hashed = entry_hash(prev, customer_id, seq, at, "application", None, action, action.split(".")[0],
                                str(customer_id), digest)  # fmt: skip
            stored_at = at.replace(tzinfo=None)
            values = (customer_id, seq, stored_at.isoformat(" ", "microseconds") if sqlite else stored_at,
                      "application", action, action.split(".")[0], str(customer_id), text_, digest,
                      0 if sqlite else False, prev, hashed)  # fmt: skip
            cursor.execute(insert, values)

        return write

    def raw_create(self, outer: bool) -> dict[str, int]:
        duplicate = self._sql("SELECT id FROM crm_customers WHERE email_normalized = ? OR phone_normalized = ?")
        columns = ", ".join(_CUSTOMER_COLUMNS)
        customer = self._sql(
            f"INSERT INTO crm_customers ({columns}) VALUES ({', '.join('?' * len(_CUSTOMER_COLUMNS))}) RETURNING id"
        )
        extension = self._sql(
            f"INSERT INTO {_EXTENSION} (customer_id, card_number, goal, interests, trial_ends_on, home_club)"
            " VALUES (?, ?, ?, NULL, NULL, NULL)"
        )
        history = self._sql(
            "INSERT INTO crm_stage_history (customer_id, from_stage, to_stage, to_lifecycle, at, cause, actor_id)"
            " VALUES (?, NULL, ?, ?, ?, 'created', NULL)"
        )
        lifecycle, now, as_json = self.lifecycle, self._now, self._json
        audit = self._audit()

        def run(cursor: Any, c: NewCustomer) -> None:
            email = c.email.strip().lower()
            cursor.execute(duplicate, (email, c.phone_e164))
            if cursor.fetchall():
                raise AssertionError(f"{c.email} is a duplicate")
            at = now()
            values = (c.name, c.email, email, c.phone, c.phone_e164, _STAGE, lifecycle, at, at, at, as_json({}))
            cursor.execute(customer, values)
            (customer_id,) = cursor.fetchone()
            cursor.execute(extension, (customer_id, c.card_number, c.goal))
            cursor.execute(history, (customer_id, _STAGE, lifecycle, at))
            fields = {"name": c.name, "email": c.email, "email_normalized": email, "phone": c.phone,
                      "phone_normalized": c.phone_e164, "goal": c.goal, "card_number": c.card_number}  # fmt: skip
            audit(cursor, customer_id, "customer.created", {k: [None, v] for k, v in fields.items()})

        self._raw(outer, run, self.customers)
        return self.stored_customers()

    def raw_update(self, outer: bool) -> dict[str, int]:
        lock = "" if self.sqlite else " FOR UPDATE"
        read = self._sql(
            f"SELECT email_normalized, phone_normalized, country, branch FROM crm_customers WHERE id = ?{lock}"
        )
        customer = self._sql("UPDATE crm_customers SET phone = ?, phone_normalized = ?, updated_at = ? WHERE id = ?")
        extension = self._sql(f"UPDATE {_EXTENSION} SET goal = ? WHERE customer_id = ?")
        duplicate = self._sql("SELECT id FROM crm_customers WHERE phone_normalized = ? AND id <> ?")
        now = self._now
        audit = self._audit()

        def run(cursor: Any, c: Change) -> None:
            cursor.execute(read, (c.customer_id,))
            before = cursor.fetchone()
            if before is None:
                raise AssertionError(f"no customer {c.customer_id}")
            cursor.execute(customer, (c.phone, c.phone_e164, now(), c.customer_id))
            cursor.execute(extension, (c.goal, c.customer_id))
            cursor.execute(duplicate, (c.phone_e164, c.customer_id))
            if cursor.fetchall():
                raise AssertionError(f"{c.phone} is a duplicate")
            changes = {"phone": [None, c.phone], "phone_normalized": [before[1], c.phone_e164], "goal": [None, c.goal]}
            audit(cursor, c.customer_id, "customer.updated", changes)

        changes = self.changes()
        self._raw(outer, run, changes)
        return self.updated(changes)

    def raw_log(self, outer: bool) -> dict[str, int]:
        marks = ", ".join("?" * len(_ACTIVITY_COLUMNS))
        insert = self._sql(f"INSERT INTO crm_activities ({', '.join(_ACTIVITY_COLUMNS)}) VALUES ({marks})")
        now, as_json = self._now, self._json
        at = self._at
        audit = self._audit()

        def run(cursor: Any, a: dict[str, Any]) -> None:
            values = (a["customer_id"], a["kind"], "phone", a["direction"], "done", a["subject"],
                      at(a["occurred_at"]), as_json({}), now())  # fmt: skip
            cursor.execute(insert, values)
            told = {"kind": a["kind"], "status": "done", "occurred_at": a["occurred_at"].isoformat()}
            audit(cursor, a["customer_id"], "activity.logged", told)

        self._raw(outer, run, self.activities())
        return self.logged()

    def _at(self, value: dt.datetime) -> Any:
        naive = value.astimezone(dt.UTC).replace(tzinfo=None)
        return naive.isoformat(" ", "microseconds") if self.sqlite else naive

    # -- inputs, state and what was stored -------------------------------------------------------

    def customer_ids(self) -> list[int]:
        with self.crm.engine.connect() as conn:
            return list(conn.execute(text("SELECT id FROM crm_customers ORDER BY id")).scalars())

    def changes(self) -> list[Change]:
        n = self.sizes.customers
        return [Change(cid, *phone(n + i), GOALS[(i + 1) % len(GOALS)]) for i, cid in enumerate(self.customer_ids())]

    def activities(self) -> list[dict[str, Any]]:
        ids = self.customer_ids()
        if not ids:
            raise AssertionError("no customers to log activities for")
        return [
            {
                "customer_id": ids[i % len(ids)],
                "kind": "call",
                "direction": "outbound",
                "subject": f"Call {i}",
                "occurred_at": _OCCURRED + dt.timedelta(seconds=i),
            }
            for i in range(self.sizes.activities)
        ]

    def _execute(self, *statements: str) -> None:
        with self.crm.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))

    def empty(self) -> None:
        """No customers (and so nothing that hangs off them)."""
        if self.sqlite:
            self._execute("DELETE FROM crm_customer_claims", "DELETE FROM crm_customers", "DELETE FROM crm_audit")
        else:  # TRUNCATE, so that the dead rows of one run do not weigh on the next
            self._execute("TRUNCATE crm_customer_claims, crm_customers, crm_audit CASCADE")

    def populate(self) -> None:
        """The customers as ``create`` leaves them: the baseline's ``create`` (which stores what crmkit
        stores, :func:`check_same_rows` proves it) plus the claims crmkit holds for their email and phone."""
        self.empty()
        self.raw_create(outer=True)
        with self.crm.engine.begin() as conn:
            rows = conn.execute(text("SELECT id, email_normalized, phone_normalized FROM crm_customers")).all()
            claims = [
                {"kind": kind, "value": value, "customer_id": cid}
                for cid, email, e164 in rows
                for kind, value in (("email", email), ("phone", e164))
            ]
            conn.execute(
                text("INSERT INTO crm_customer_claims (kind, value, customer_id) VALUES (:kind, :value, :customer_id)"),
                claims,
            )
        self._analyze()

    def no_activities(self) -> None:
        """The customers present, no activities."""
        if not self.customer_ids():
            self.populate()
        if self.sqlite:
            self._execute("DELETE FROM crm_activities", "DELETE FROM crm_audit WHERE action = 'activity.logged'")
        else:
            self._execute("TRUNCATE crm_activities", "DELETE FROM crm_audit WHERE action = 'activity.logged'")

    def _analyze(self) -> None:
        from bench.data import analyze

        analyze(self.crm)

    def _count(self, statement: str, **params: Any) -> int:
        with self.crm.engine.connect() as conn:
            return int(conn.execute(text(statement), params).scalar_one())

    def stored_customers(self) -> dict[str, int]:
        """Customers, extension rows and history rows stored, and the customers whose phone was normalised."""
        return {
            "customers": self._count("SELECT count(*) FROM crm_customers"),
            "normalised phones": self._count("SELECT count(*) FROM crm_customers WHERE phone_normalized LIKE '+1212%'"),
            "extension rows": self._count(f"SELECT count(*) FROM {_EXTENSION} WHERE goal IS NOT NULL"),
            "history rows": self._count("SELECT count(*) FROM crm_stage_history WHERE cause = 'created'"),
            "audit entries": self._audited("customer.created"),
        }

    def _audited(self, action: str) -> int:
        return self._count("SELECT count(*) FROM crm_audit WHERE action = :action", action=action)

    def updated(self, changes: Sequence[Change]) -> dict[str, int]:
        """How many customers have their new phone (as typed and normalised) and their new goal."""
        with self.crm.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT c.id, c.phone, c.phone_normalized, e.goal FROM crm_customers c"
                    f" JOIN {_EXTENSION} e ON e.customer_id = c.id"
                )
            ).all()
        stored = {cid: (typed, e164, goal) for cid, typed, e164, goal in rows}
        return {
            "phones changed": sum(stored.get(c.customer_id, ())[:2] == (c.phone, c.phone_e164) for c in changes),
            "goals changed": sum(stored.get(c.customer_id, (None,) * 3)[2] == c.goal for c in changes),
            "audit entries": self._audited("customer.updated"),
        }

    def logged(self) -> dict[str, int]:
        return {
            "activities": self._count("SELECT count(*) FROM crm_activities WHERE kind = 'call'"),
            "audit entries": self._audited("activity.logged"),
        }

    # -- the proof that both sides store the same ------------------------------------------------

    def snapshot(self) -> list[tuple[Any, ...]]:
        """Every customer, its extension row and its history row, as text, without ids and times."""
        as_text = "{}" if self.sqlite else "{}::text"
        columns = [f"c.{c}" for c in _CUSTOMER_COLUMNS if not c.endswith("_at")]
        columns += ["e.card_number", "e.goal", "e.interests", "e.trial_ends_on", "e.home_club"]
        columns += ["h.from_stage", "h.to_stage", "h.to_lifecycle", "h.cause", "h.actor_id"]
        query = (
            f"SELECT {', '.join(as_text.format(c) for c in columns)} FROM crm_customers c"
            f" JOIN {_EXTENSION} e ON e.customer_id = c.id JOIN crm_stage_history h ON h.customer_id = c.id"
            " ORDER BY c.email"
        )
        with self.crm.engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(query)]

    def activity_snapshot(self) -> list[tuple[Any, ...]]:
        as_text = "{}" if self.sqlite else "{}::text"
        names = [c.name for c in _activity_table().columns if c.name not in ("id", "created_at")]
        query = f"SELECT {', '.join(as_text.format(n) for n in names)} FROM crm_activities ORDER BY subject"
        with self.crm.engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(query)]


def _activity_table() -> Any:
    from crmkit.db.models import Activity

    return Activity.__table__


def check_same_rows(app: AppPath) -> dict[str, int]:
    """Run each side of ``create``, ``update`` and ``log`` once (outer transaction) and compare what each
    stored, column by column (not ids nor times); raise ``AssertionError`` at the first difference or when
    there is nothing to compare. Returns how many rows each comparison compared."""
    compared: dict[str, int] = {}
    for name, reset, ours, theirs, snapshot in (
        ("create", app.empty, app.crmkit_create, app.raw_create, app.snapshot),
        ("update", app.populate, app.crmkit_update, app.raw_update, app.snapshot),
        ("log", app.no_activities, app.crmkit_log, app.raw_log, app.activity_snapshot),
    ):
        stored = []
        for run in (ours, theirs):
            reset()
            run(True)
            stored.append(snapshot())
        if not stored[0]:
            raise AssertionError(f"{name}: nothing stored, comparing nothing proves nothing")
        if stored[0] != stored[1]:
            diff = next((a, b) for a, b in zip(*stored, strict=False) if a != b) if len(stored[0]) == len(
                stored[1]) else (len(stored[0]), len(stored[1]))  # fmt: skip
            raise AssertionError(f"{name}: crmkit and the baseline stored different rows: {diff}")
        compared[name] = len(stored[0])
    return compared
