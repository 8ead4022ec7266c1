"""The benchmark's data: a fitness club made by the fitness plugin's own generator, built once and reused.

Generating 100k members and their year of history takes minutes, so a built club is kept (a SQLite file in
the work folder, or a PostgreSQL schema) with a stamp of the sizes it was built for; a later run with the
same sizes reuses it, any other sizes rebuild it. The ingest workload gets a fresh, empty database of its
own every run.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from crmkit_fitness import FitnessPlugin
from crmkit_fitness.generator import generate
from crmkit_fitness.models import Membership
from sqlalchemy import create_engine, func, insert, select, text

from bench import shapes
from bench.common import AS_OF, TODAY
from crmkit import CRM
from crmkit.db.models import Activity, Customer, User

#: Bump when the way a club is built changes, so kept clubs are rebuilt.
DATA_VERSION = 4
#: The generator's check-ins per member at ``visit_rate=1`` over its year (measured: 100k members at 0.249
#: give 1.93M); the visit rate is picked from it so the club has about the asked number of visits.
CHECKINS_PER_MEMBER = 77.6
#: The triggers run for real this long before ``AS_OF``, so firings, tasks and cooldowns exist when the
#: workloads look from ``AS_OF``.
TRIGGER_RUN_BEFORE = dt.timedelta(days=14)

Visit = tuple[int, dt.datetime, str, str, "int | None"]
Echo = Callable[[str], None]


@attrs.frozen
class Sizes:
    """What a club is built for; ``customers`` counts the generated members and the shaped ones
    (:mod:`bench.shapes`) together."""

    customers: int = 100_000
    visits: int = 2_000_000
    payments: int = 20_000
    seed: int = 42

    def __attrs_post_init__(self) -> None:
        if self.customers <= shapes.shaped_count(self.customers):
            raise ValueError(f"a club needs more than {shapes.shaped_count(self.customers)} customers")

    @property
    def visit_rate(self) -> float:
        return min(2.0, max(0.01, self.visits / self.customers / CHECKINS_PER_MEMBER))

    @property
    def key(self) -> str:
        return f"{self.customers}_{self.visits}_{self.payments}_{self.seed}"


@attrs.frozen
class Target:
    """Where the benchmark's databases live: SQLite files in ``work_dir``, or schemas on ``url``."""

    url: str | None
    work_dir: Path
    prefix: str = "crmkit_bench"

    @property
    def dialect(self) -> str:
        return "sqlite" if self.url is None else self.url.split(":", 1)[0].split("+", 1)[0]

    def _schema(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def crm(self, name: str) -> CRM:
        """A CRM with the fitness edition on database ``name`` (which may not exist yet)."""
        if self.url is None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            url, options = f"sqlite:///{self.work_dir / name}.db", {}
        else:
            url, options = self.url, {"connect_args": {"options": f"-csearch_path={self._schema(name)}"}}
        return CRM(url, plugins=[FitnessPlugin()], load_entry_points=False, engine_options=options)

    def stamp(self, name: str) -> dict[str, Any] | None:
        """What the database ``name`` was built for, or ``None`` when it is missing or unfinished."""
        if self.url is None:
            path = self.work_dir / f"{name}.db"
            if not path.exists():
                return None
        crm = self.crm(name)
        try:
            with crm.engine.connect() as conn:
                value = conn.execute(text("SELECT data FROM bench_stamp")).scalar()
        except Exception:
            return None
        finally:
            crm.close()
        return json.loads(value) if value else None

    def write_stamp(self, crm: CRM, data: dict[str, Any]) -> None:
        with crm.engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_stamp (data TEXT NOT NULL)"))
            conn.execute(text("INSERT INTO bench_stamp (data) VALUES (:d)"), {"d": json.dumps(data, sort_keys=True)})

    def drop(self, name: str) -> None:
        if self.url is None:
            for suffix in ("", "-wal", "-shm"):
                (self.work_dir / f"{name}.db{suffix}").unlink(missing_ok=True)
            return
        engine = create_engine(self.url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self._schema(name)}" CASCADE'))
        engine.dispose()

    def fresh(self, name: str) -> CRM:
        """An empty database ``name`` with crmkit's schema."""
        self.drop(name)
        if self.url is not None:
            engine = create_engine(self.url)
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self._schema(name)}"'))
            engine.dispose()
        crm = self.crm(name)
        crm.create_schema()
        return crm

    def drop_all(self) -> None:
        """Every database this target made (the tests' clean-up)."""
        if self.url is None:
            for path in self.work_dir.glob("*.db*"):
                path.unlink()
            return
        engine = create_engine(self.url)
        with engine.begin() as conn:
            schemas = conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": f"{self.prefix}\\_%"}
            ).scalars()
            for schema in list(schemas):
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def club(target: Target, sizes: Sizes, echo: Echo = print) -> CRM:
    """The club for ``sizes``: the kept one when its stamp matches, else a newly built one."""
    name = f"club_{sizes.key}"
    wanted = {"version": DATA_VERSION, "today": TODAY.isoformat(), **attrs.asdict(sizes)}
    if target.stamp(name) == wanted:
        return target.crm(name)
    echo(f"building the club for {sizes.customers:,} customers (kept for later runs) ...")
    crm = target.fresh(name)
    started = dt.datetime.now()

    def progress(step: str, done: int, total: int) -> None:
        if step == "members" and (done == total or done % max(total // 10, 500) == 0):
            echo(f"  {done:,}/{total:,} members ({(dt.datetime.now() - started).seconds} s)")

    members = sizes.customers - shapes.shaped_count(sizes.customers)
    generated = generate(crm, members=members, seed=sizes.seed, today=TODAY, visit_rate=sizes.visit_rate,
                         progress=progress)  # fmt: skip
    add_payments(crm, sizes.payments)
    crm.triggers.run(AS_OF - TRIGGER_RUN_BEFORE)
    shaped = shapes.add(crm, sizes.customers)
    analyze(crm)
    target.write_stamp(crm, wanted)
    echo(f"  {generated.checkins:,} check-ins, {generated.purchases:,} purchases, {sizes.payments:,} payments;"
         f" {shaped} members shaped to meet every trigger")  # fmt: skip
    return crm


def add_payments(crm: CRM, count: int) -> None:
    """``count`` instalment payments, spread evenly over the memberships: the first instalment of a
    membership is due a week after it was bought, and a payment is only recorded when that was before today."""
    m = Membership.__table__
    with crm.session() as s:
        total = s.scalar(select(func.count()).select_from(m)) or 0
    if not count or not total:
        return
    step = max(1, total // count)

    def rows() -> Iterator[dict[str, Any]]:
        made = 0
        with crm.session() as s:
            query = select(m.c.customer_id, m.c.price, m.c.created_at).order_by(m.c.id)
            for i, (customer_id, price, bought) in enumerate(s.execute(query)):
                due = bought + dt.timedelta(days=7)
                if i % step or due >= AS_OF or made >= count:
                    continue
                made += 1
                yield {"customer_id": customer_id, "kind": "payment", "occurred_at": due, "subject": "Instalment"} | {
                    "amount": (Decimal(price) / 3).quantize(Decimal("0.01")),
                    "currency": "EUR",
                }

    report = crm.activities.ingest(rows())
    if report.rejected:
        raise RuntimeError(f"generated payments rejected: {report.rejected[:3]}")


def analyze(crm: CRM) -> None:
    """Fresh planner statistics, as any production database has after a bulk load (both sides benefit)."""
    if crm.engine.dialect.name == "postgresql":
        with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with crm.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def visits(crm: CRM, limit: int) -> list[Visit]:
    """The club's check-ins (at most ``limit``) as compact tuples: the ingest workload's input."""
    a = Activity.__table__
    query = (
        select(a.c.customer_id, a.c.occurred_at, a.c.data).where(a.c.kind == "checkin").order_by(a.c.id).limit(limit)
    )
    out: list[Visit] = []
    names: dict[str, str] = {}
    with crm.engine.connect() as conn:
        for customer_id, occurred_at, data in conn.execution_options(yield_per=20_000).execute(query):
            club_name = names.setdefault(data["club"], data["club"])
            door = names.setdefault(data["door"], data["door"])
            out.append((customer_id, occurred_at, club_name, door, data.get("class_id")))
    return out


def ingest_database(target: Target, source: CRM) -> CRM:
    """A fresh database with the club's staff and customers and no activities, for the ingest workload."""
    crm = target.fresh("ingest")
    with source.engine.connect() as read, crm.engine.begin() as write:
        for table in (User.__table__, Customer.__table__):
            result = read.execution_options(yield_per=10_000).execute(select(table))
            for chunk in result.mappings().partitions():
                write.execute(insert(table), [dict(row) for row in chunk])
    analyze(crm)
    return crm


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
