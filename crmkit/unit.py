"""One unit of work: a session, the acting user and callbacks to run after commit.

Every public write runs in a :class:`Transaction`. Callers who want several writes to commit together
open one with ``crm.transaction()`` and pass it as ``tx=``; otherwise each call opens and commits its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from crmkit.app import CRM


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
    _after_commit: list[Callable[[], None]] = attrs.field(factory=list, alias="_after_commit")

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed; dropped if it rolls back."""
        self._after_commit.append(callback)


@contextmanager
def open_transaction(crm: CRM, factory: sessionmaker[Session], actor_id: int | None = None) -> Iterator[Transaction]:
    session = factory(bind=crm.write_engine)
    tx = Transaction(crm=crm, session=session, actor_id=actor_id)
    try:
        yield tx
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    for callback in tx._after_commit:
        callback()


@contextmanager
def use_transaction(
    crm: CRM, factory: sessionmaker[Session], tx: Transaction | None, actor_id: int | None = None
) -> Iterator[Transaction]:
    """Join the caller's transaction, or run a unit of work of our own.

    In a joined transaction a failing call rolls back to a savepoint, so the caller's earlier writes
    survive the error and the caller decides whether to commit.
    """
    if tx is None:
        with open_transaction(crm, factory, actor_id) as own:
            yield own
        return
    with tx.session.begin_nested():
        yield tx
