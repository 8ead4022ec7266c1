"""The customer import workload: a CSV of N new customers imported into an empty customer table with
``crm.imports.customers(path, mode="create")``, against the same CSV read with the ``csv`` module and
written with the driver's ``executemany`` of hand-written ``INSERT`` statements, in one transaction.

The file has, per customer, a name, a unique email, a phone as people type it in the CRM's region (half
national, ``(212) 200-0001``; half international, ``+1 212-200-0002``), a source, a campaign and two of
the fitness plugin's fields (``goal``, ``card_number``).

The baseline writes every row crmkit writes: the import's record, the customers, their fitness extension
rows, their first stage history rows, their duplicate claims (email and phone) and the import's ledger
rows (line, action, the created customer's non-empty fields). It validates nothing, matches nothing and
calls no hook; it turns the phone into its E.164 form with string operations (it knows the file's shape),
where crmkit reads it with ``phonenumbers``. :func:`check_same_rows` proves both sides stored the same
customers, extension rows, history rows, claims and ledger lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bench.common import Workload

if TYPE_CHECKING:
    from crmkit import CRM

HEADER = ("name", "email", "phone", "source", "campaign", "goal", "card_number")
GOALS = ("weight_loss", "muscle", "endurance", "health", "rehab", "sport")
_EXCHANGE = 200
_STAGE = "lead"
_CAUSE = "created"
_EXTENSION = "fitness_customer"
#: Every table an import of new customers writes to, children first (the order they are emptied in).
TABLES = ("crm_import_changes", "crm_customer_claims", "crm_stage_history", _EXTENSION, "crm_customers", "crm_imports")
_CUSTOMER_COLUMNS = (
    "id", "name", "email", "email_normalized", "phone", "phone_normalized", "source", "campaign", "stage",
    "lifecycle", "stage_changed_at", "created_at", "updated_at", "extra",
)  # fmt: skip


def phone(i: int) -> str:
    """The ``i``-th number as typed: national for even ``i``, international for odd ones."""
    exchange, line = _EXCHANGE + i // 10_000, i % 10_000
    return f"(212) {exchange:03d}-{line:04d}" if i % 2 == 0 else f"+1 212-{exchange:03d}-{line:04d}"


def write_csv(path: Path, rows: int) -> Path:
    """A CSV of ``rows`` new customers, all valid and distinct."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            goal = GOALS[i % len(GOALS)]
            out.writerow((f"Member {i}", f"Member{i}@Example.com", phone(i), "import", f"spring-{i % 7}", goal,
                          f"C{i:07d}"))  # fmt: skip
    return path


def customer_import_workload(crm: CRM, path: Path, rows: int) -> Workload:
    return Workload(
        name=f"import {rows:,} customers from CSV",
        crmkit=lambda: crmkit_import(crm, path),
        baseline=lambda: raw_import(crm, path),
        baseline_kind="csv + raw executemany",
        reset=lambda: reset(crm),
    )


def crmkit_import(crm: CRM, path: Path) -> dict[str, int]:
    report = crm.imports.customers(path, mode="create", chunk_size=5000)
    if report.rejected or report.counts.get("skipped"):
        raise AssertionError(f"crmkit did not create every customer: {report.counts}, {report.rejected[:1]}")
    return counts(crm)


def raw_import(crm: CRM, path: Path) -> dict[str, int]:
    """The file read with ``csv`` and written with one ``executemany`` per table, in one transaction."""
    sqlite = crm.engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    json_mark = "?" if sqlite else "%s::jsonb"
    lifecycle = crm.lifecycle.stage(_STAGE).lifecycle
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stamp: Any = now.isoformat(" ", "microseconds") if sqlite else now
    raw = crm.engine.raw_connection()
    try:
        cur = raw.cursor()
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")  # crmkit's engine runs sqlite3 without implicit transactions
        cur.execute(
            "INSERT INTO crm_imports (importer, source_name, format, mode, settings, status, counts, started_at)"
            f" VALUES ({mark}, {mark}, {mark}, {mark}, {json_mark}, {mark}, {json_mark}, {mark}) RETURNING id",
            ("customers", path.name, "csv", "create", "{}", "running", "{}", stamp),
        )
        import_id = _one(cur)
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM crm_customers")
        first = _one(cur) + 1
        customers, extensions, history, claims, ledger = [], [], [], [], []
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            for n, (name, email, typed, source, campaign, goal, card) in enumerate(reader):
                cid = first + n
                digits = "".join(c for c in typed if c.isdigit())
                e164 = "+" + digits if typed.startswith("+") else "+1" + digits
                lowered = email.lower()
                customers.append((cid, name, email, lowered, typed, e164, source, campaign, _STAGE, lifecycle,
                                  stamp, stamp, stamp, "{}"))  # fmt: skip
                extensions.append((cid, goal, card))
                history.append((cid, _STAGE, lifecycle, stamp, _CAUSE))
                claims.append(("email", lowered, cid))
                claims.append(("phone", e164, cid))
                after = {"id": cid, "name": name, "email": email, "phone": typed, "source": source,
                         "campaign": campaign, "goal": goal, "card_number": card}  # fmt: skip
                ledger.append((cid, import_id, n + 2, "created", "{}", json.dumps(after)))
        marks = ", ".join([mark] * (len(_CUSTOMER_COLUMNS) - 1) + [json_mark])
        cur.executemany(f"INSERT INTO crm_customers ({', '.join(_CUSTOMER_COLUMNS)}) VALUES ({marks})", customers)
        cur.executemany(
            f"INSERT INTO {_EXTENSION} (customer_id, goal, card_number) VALUES ({mark}, {mark}, {mark})", extensions
        )
        cur.executemany(
            "INSERT INTO crm_stage_history (customer_id, to_stage, to_lifecycle, at, cause)"
            f" VALUES ({mark}, {mark}, {mark}, {mark}, {mark})",
            history,
        )
        claims.sort()  # in (kind, value) order, as crmkit takes them
        cur.executemany(f"INSERT INTO crm_customer_claims (kind, value, customer_id) VALUES ({mark}, {mark}, {mark})",
                        claims)  # fmt: skip
        cur.executemany(
            "INSERT INTO crm_import_changes (customer_id, import_id, line, action, before, after)"
            f" VALUES ({mark}, {mark}, {mark}, {mark}, {json_mark}, {json_mark})",
            ledger,
        )
        done = json.dumps({"created": len(customers)})
        cur.execute(f"UPDATE crm_imports SET status = 'done', counts = {json_mark}, finished_at = {mark}"
                    f" WHERE id = {mark}", (done, stamp, import_id))  # fmt: skip
        if not sqlite:  # ids were given, so the sequence must be moved past them
            cur.execute("SELECT setval(pg_get_serial_sequence('crm_customers', 'id'), MAX(id)) FROM crm_customers")
        cur.close()
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    return counts(crm)


def counts(crm: CRM) -> dict[str, int]:
    """Rows per table the import writes to (the import's own record aside)."""
    with crm.engine.connect() as conn:
        return {table: int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()) for table in TABLES[:-1]}


def reset(crm: CRM) -> None:
    """Empty the tables an import writes to (on PostgreSQL with ``TRUNCATE``, ids restarted)."""
    with crm.engine.begin() as conn:
        if crm.engine.dialect.name == "sqlite":
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
        else:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def snapshot(crm: CRM) -> dict[str, list[tuple[Any, ...]]]:
    """What each side stored, keyed by the customer's email rather than its id, ids and times left out."""
    as_text = "{}" if crm.engine.dialect.name == "sqlite" else "{}::text"
    compared = [c for c in _CUSTOMER_COLUMNS if c not in ("id", "stage_changed_at", "created_at", "updated_at")]
    queries = {
        "customers": f"SELECT {', '.join(as_text.format(f'c.{c}') for c in compared)}, e.goal, e.card_number"
        f" FROM crm_customers c LEFT JOIN {_EXTENSION} e ON e.customer_id = c.id ORDER BY c.email_normalized",
        "history": "SELECT c.email_normalized, h.from_stage, h.to_stage, h.to_lifecycle, h.cause, h.actor_id"
        " FROM crm_stage_history h JOIN crm_customers c ON c.id = h.customer_id ORDER BY 1",
        "claims": "SELECT k.kind, k.value, c.email_normalized FROM crm_customer_claims k"
        " JOIN crm_customers c ON c.id = k.customer_id ORDER BY 1, 2",
        "ledger": "SELECT c.email_normalized, l.line, l.action FROM crm_import_changes l"
        " JOIN crm_customers c ON c.id = l.customer_id ORDER BY 2",
    }
    with crm.engine.connect() as conn:
        return {name: [tuple(r) for r in conn.exec_driver_sql(sql)] for name, sql in queries.items()}


def check_same_rows(crm: CRM, path: Path) -> dict[str, int]:
    """Run both sides on the file and compare what each stored; raise ``AssertionError`` naming the first
    difference, or when there is nothing to compare. Returns the rows compared per part; leaves the tables
    empty."""
    stored = {}
    for side, run in (("crmkit", crmkit_import), ("baseline", raw_import)):
        reset(crm)
        run(crm, path)
        stored[side] = snapshot(crm)
    reset(crm)
    ours, theirs = stored["crmkit"], stored["baseline"]
    for part in ours:
        if not ours[part] or not theirs[part]:
            raise AssertionError(f"no {part} stored: comparing two empty tables proves nothing")
        if len(ours[part]) != len(theirs[part]):
            raise AssertionError(f"crmkit stored {len(ours[part])} {part} rows, the baseline {len(theirs[part])}")
        for a, b in zip(ours[part], theirs[part], strict=True):
            if a != b:
                raise AssertionError(f"{part} differ: crmkit {a}, baseline {b}")
    return {part: len(rows) for part, rows in ours.items()}


def _one(cur: Any) -> int:
    row = cur.fetchone()
    assert row is not None
    return int(row[0])
