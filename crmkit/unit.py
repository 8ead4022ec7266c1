"""One unit of work: a session, the acting user and callbacks to run after commit.

Every public write runs in a :class:`Transaction`. Callers who want several writes to commit together
open one with ``crm.transaction()`` and pass it as ``tx=``; otherwise each call opens and commits its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from crmkit.app import CRM

log = logging.getLogger("crmkit")


@attrs.frozen
class StageChange:
    """What an event hook learns about a lifecycle move."""

    customer_id: int
    source: str | None
    target: str
    at: dt.datetime
    cause: str
    actor_id: int | None


@attrs.define
class Transaction:
    """Handed to every event hook. Write through ``session``; never commit or roll it back yourself."""

    crm: CRM
    session: Session
    actor_id: int | None = None
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


@contextmanager
def open_transaction(crm: CRM, factory: sessionmaker[Session], actor_id: int | None = None) -> Iterator[Transaction]:
    session = factory(bind=crm.write_engine)
    tx = Transaction(crm=crm, session=session, actor_id=actor_id)
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
def use_transaction(
    crm: CRM, factory: sessionmaker[Session], tx: Transaction | None, actor_id: int | None = None
) -> Iterator[Transaction]:
    """Join the caller's transaction, or run a unit of work of our own.

    In a joined transaction a failing call rolls back to a savepoint, so the caller's earlier writes
    survive the error and the caller decides whether to commit; the callbacks the failed call registered
    are dropped with it.
    """
    if tx is None:
        with open_transaction(crm, factory, actor_id) as own:
            yield own
        return
    with savepoint(tx):
        yield tx


@contextmanager
def savepoint(tx: Transaction) -> Iterator[Transaction]:
    """Run part of a unit of work in a savepoint: if it raises, its writes and the callbacks it
    registered are undone, and the rest of the unit of work goes on."""
    committed, rolled_back = len(tx._after_commit), len(tx._after_rollback)
    try:
        with tx.session.begin_nested():
            yield tx
    except BaseException:
        del tx._after_commit[committed:]
        undo = tx._after_rollback[rolled_back:]
        del tx._after_rollback[rolled_back:]
        _run_all(undo)
        raise
