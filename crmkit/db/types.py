"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

#: Big integer keys on PostgreSQL; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: JSONB on PostgreSQL (indexable, comparable), JSON text elsewhere.
JSONData = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC.

    SQLite keeps no time zone, so storing UTC everywhere is the only way the same SQL (``as_of``
    comparisons, date windows) gives the same answer on both databases. Naive input is taken as UTC.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {value!r}")
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw text from a SQLite expression such as MAX()
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC)

    def aware_binder(self, dialect: Dialect) -> Callable[[dt.datetime], Any]:
        """What this type's bind processor makes of an *aware* datetime, in one cheap call.

        Bulk writers convert millions of datetimes, and the processor chain (this decorator, then on SQLite
        the dialect's own formatting) costs several Python calls for each. A shortcut is used only when it
        gives the processor's exact output on probe values; otherwise the processor itself is returned.
        """
        processor = self.dialect_impl(dialect).bind_processor(dialect)  # the chain SQLAlchemy runs
        assert processor is not None  # a TypeDecorator with process_bind_param always has one
        for shortcut in (_naive_utc, _sqlite_text):
            if all(shortcut(probe) == processor(probe) for probe in _PROBES):
                return shortcut
        return processor


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _sqlite_text(value: dt.datetime) -> str:
    # SQLAlchemy's SQLite DATETIME text: always six digits of microseconds
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


#: Aware datetimes on which a shortcut must agree with the bind processor: whole seconds, microseconds,
#: other zones (one that crosses a year in UTC), a year below 1000.
_PROBES = (
    dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 31, 21, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(999, 2, 3, 4, 5, 6, 70, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
