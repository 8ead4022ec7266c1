"""One unit of work: a session, the acting user and callbacks to run after commit.

Every public write runs in a :class:`Transaction`. Callers who want several writes to commit together
open one with ``crm.transaction()`` and pass it as ``tx=``; otherwise each call opens and commits its own.
Reads take ``tx=`` too, and then see what the unit of work wrote before it commits.

:class:`Units` (``crm.units``) is how a service, the core's or a plugin's, gets its session: ``write(tx)``
joins the caller's unit of work or opens one, ``read(tx)`` reads inside it or in a session of its own.
This module is part of the public plugin API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crmkit.access import Actor
from crmkit.db import driver

log = logging.getLogger("crmkit")


@attrs.define
class Transaction:
    """Handed to every event hook. Write through ``session``; never commit or roll it back yourself."""

    session: Session
    actor_id: int | None = None
    #: who the unit of work acts as (``crm.transaction(actor_id=...)`` resolves the user); ``None``: the
    #: context's actor (``crm.as_user``), else the application
    actor: Actor | None = None
    _after_commit: list[Callable[[], object]] = attrs.field(factory=list, alias="_after_commit")
    _after_rollback: list[Callable[[], object]] = attrs.field(factory=list, alias="_after_rollback")

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the transaction has committed; dropped if it (or the part of it that
        registered the callback) rolls back. Callbacks are best-effort: one that raises is logged and the
        others still run. For delivery that must not be lost, write to the outbox instead."""
        self._after_commit.append(callback)

    def after_rollback(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` if the work that registered it is rolled back (to forget a cache, say)."""
        self._after_rollback.append(callback)


def _run_all(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the data is committed: one failing side effect must not hide the others
            log.exception("crmkit: callback %r failed after the transaction ended", callback)


@attrs.frozen
class Units:
    """Opens units of work on one database: ``crm.units``.

    Services receive it instead of the whole CRM; a plugin's own service uses it the same way, so its
    writes join the caller's unit of work and its reads see what that unit of work wrote.
    """

    session_factory: sessionmaker[Session]
    #: the engine write transactions run on (on SQLite they begin with ``BEGIN IMMEDIATE``)
    write_engine: Engine

    @contextmanager
    def open(self, actor_id: int | None = None) -> Iterator[Transaction]:
        """A new unit of work, committed when the block ends and rolled back if it raises."""
        session = self.session_factory(bind=self.write_engine)
        tx = Transaction(session=session, actor_id=actor_id)
        try:
            yield tx
            session.commit()
        except BaseException:
            session.rollback()
            _run_all(tx._after_rollback)
            raise
        finally:
            session.close()
        _run_all(tx._after_commit)

    @contextmanager
    def write(self, tx: Transaction | None, actor_id: int | None = None) -> Iterator[Transaction]:
        """Join the caller's unit of work ``tx``, or run a unit of work of our own when it is ``None``.

        In a joined unit of work a failing call rolls back to a savepoint, so the caller's earlier writes
        survive the error and the caller decides whether to commit; the callbacks the failed call
        registered are dropped with it.
        """
        if tx is None:
            with self.open(actor_id) as own:
                yield own
            return
        with savepoint(tx):
            yield tx

    def chunks(self, actor_id: int | None = None) -> Chunks:
        """Units of work for one long job (an import, an ingest) that commits piece by piece, sharing the
        write lock with the other writers of the database (see :class:`Chunks`)."""
        return Chunks(self, actor_id)

    @contextmanager
    def read(self, tx: Transaction | None = None) -> Iterator[Session]:
        """A session to read with: the unit of work's own (so a read sees its uncommitted writes), or a
        short-lived one of our own, closed (never committed) when the block ends."""
        if tx is not None:
            yield tx.session
            return
        with self.session_factory() as session:
            yield session


#: How long a long job may hold SQLite's write lock, over one or more of its units of work, before it
#: steps aside.
SLICE_SECONDS = 2.0
#: How long it steps aside: longer than the longest sleep of SQLite's busy handler between two retries
#: (100 ms), so a writer waiting for the lock (the front desk's ``customers.create``) retries while it is
#: free. Without the pause the job's next ``BEGIN IMMEDIATE`` follows its ``COMMIT`` at once and a waiting
#: writer finds the lock taken at every retry until its busy timeout ends.
PAUSE_SECONDS = 0.15


@attrs.define
class Chunks:
    """The units of work of one long job: each is committed on its own, so an interrupted job keeps what
    it committed and other writers go in between two of them.

    SQLite has one writer at a time: after the job has held the write lock for :data:`SLICE_SECONDS`, it
    steps aside for :data:`PAUSE_SECONDS` before its next unit of work. On PostgreSQL writers of different
    rows do not wait for each other and there is no pause. ``due()`` tells the job, between two pieces of
    its work, that the open unit of work has held the lock for a slice and should end.
    """

    units: Units
    actor_id: int | None = None
    _held: float = attrs.field(default=0.0, init=False)
    _since: float | None = attrs.field(default=None, init=False)

    @contextmanager
    def unit(self) -> Iterator[Transaction]:
        """The next unit of work, committed when the block ends."""
        self.step_aside()  # owed from the last unit; never paid after the job's last one
        self._since = time.monotonic()
        try:
            with self.units.open(self.actor_id) as t:
                yield t
        finally:
            self._held += time.monotonic() - self._since
            self._since = None

    def step_aside(self, work: Callable[[], bool] | None = None) -> None:
        """Pay the pause owed, if any, before the next unit of work: calling ``work`` (outside any
        transaction: preparing the job's next rows) until it returns ``False`` or the pause is over, then
        sleeping what is left of it."""
        if self._held < SLICE_SECONDS:
            return
        self._held = 0.0
        if self.units.write_engine.dialect.name != "sqlite":
            return
        until = time.monotonic() + PAUSE_SECONDS
        while work is not None and time.monotonic() < until and work():
            pass
        left = until - time.monotonic()
        if left > 0:
            time.sleep(left)

    def due(self) -> bool:
        """Whether the open unit of work has held the lock long enough and should be committed now."""
        return self._since is not None and self._held + time.monotonic() - self._since >= SLICE_SECONDS


@contextmanager
def savepoint(tx: Transaction) -> Iterator[Transaction]:
    """Run part of a unit of work in a savepoint: if it raises, its writes and the callbacks it
    registered are undone, and the rest of the unit of work goes on."""
    committed, rolled_back = len(tx._after_commit), len(tx._after_rollback)
    try:
        with driver.savepoint(tx.session):
            yield tx
    except BaseException:
        del tx._after_commit[committed:]
        undo = tx._after_rollback[rolled_back:]
        del tx._after_rollback[rolled_back:]
        _run_all(undo)
        raise
