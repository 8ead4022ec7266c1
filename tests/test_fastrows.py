"""The typed fast paths give exactly what marshmallow gives: dumps of stored values, and task rows."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema
from marshmallow import fields as mf
from probe import Probe

from crmkit import CRM, ValidationError
from crmkit.fastrows import dumper, json_dumper, task_fast_load
from crmkit.schemas import TaskIn, TaskOut, customer_out, load

CRM_ = CRM("sqlite://", plugins=[Probe()], load_entry_points=False)  # declarations only; no database use
#: The customer record with the probe's plugin fields (of every type).
CUSTOMER_OUT = customer_out(CRM_.registry.fields.values(), [])()
ZONES = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=7)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))])
MOMENTS = st.datetimes(min_value=dt.datetime(1800, 1, 1), max_value=dt.datetime(2300, 1, 1), timezones=ZONES)
TEXT = st.one_of(st.text(max_size=8), st.sampled_from(["", " a", "a ", "x" * 300, "x" * 301, "a\x00b", "\ud800", "é"]))
#: What a stored value may be, and a few it should not be (marshmallow's own conversion must then run).
VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.booleans(),
    TEXT,
    st.dates(),
    MOMENTS,
    st.datetimes(),  # naive
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=False, allow_infinity=False),
)

EVERY_TYPE = Schema.from_dict(
    {
        "i": mf.Integer(),
        "s": mf.String(),
        "b": mf.Boolean(),
        "d": mf.Date(),
        "t": mf.DateTime(),
        "m": mf.Decimal(as_string=True),
        "j": mf.Dict(),
        "r": mf.Raw(),
        "n": mf.Integer(data_key="renamed"),
    }
)()


def _same(schema: Schema, row: dict[str, Any]) -> None:
    try:
        expected = schema.dump(row)
    except Exception as exc:  # a value marshmallow cannot dump: the fast dumper raises too
        try:
            dumper(schema)(row)
        except Exception as fast:
            assert type(fast) is type(exc)
            return
        raise AssertionError(f"marshmallow raised {exc!r}, the fast dumper did not") from None
    assert dumper(schema)(row) == expected


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from("isbdtmjrn"), VALUES))
def test_dump_is_marshmallows_for_any_value(row: dict[str, Any]) -> None:
    _same(EVERY_TYPE, row)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.integers(min_value=1, max_value=2**31),
            "name": TEXT,
            "birthday": st.one_of(st.none(), st.dates()),
            "created_at": MOMENTS,
            "score": st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31)),
            "vip": st.one_of(st.none(), st.booleans()),
            "balance": st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=2)),
            "last_seen": st.one_of(st.none(), MOMENTS),
            "joined_on": st.one_of(st.none(), st.dates()),
        }
    )
)
def test_dump_is_marshmallows_for_customer_and_task_records(row: dict[str, Any]) -> None:
    _same(CUSTOMER_OUT, row)
    _same(TaskOut(), {**row, "due_at": row["created_at"], "title": row["name"], "priority": row["id"] % 101})


def _same_json(schema: Schema, row: dict[str, Any]) -> bool:
    """``json_dumper`` gives ``json.dumps`` of the dump's items that have a value, or ``None``; whether it gave
    text."""
    try:
        dumped = dumper(schema)(row)
    except Exception as exc:  # a value that cannot be dumped: not written directly either
        try:
            written = json_dumper(schema)(row)
        except Exception as fast:
            assert type(fast) is type(exc)
            return False
        assert written is None
        return False
    written = json_dumper(schema)(row)
    if written is not None:
        assert written == json.dumps({k: v for k, v in dumped.items() if v is not None})
    return written is not None


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from([*"isbdtmjrn", "renamed", "x"]), VALUES))
def test_the_json_of_a_dump_is_json_dumps_of_its_values(row: dict[str, Any]) -> None:
    _same_json(EVERY_TYPE, row)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.integers(min_value=1, max_value=2**31),
            "name": TEXT,
            "email": st.one_of(st.none(), TEXT),
            "created_at": MOMENTS,
            "stage_changed_at": st.datetimes(),
            "birthday": st.one_of(st.none(), st.dates()),
            "score": st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31)),
            "vip": st.one_of(st.none(), st.booleans()),
            "last_seen": st.one_of(st.none(), MOMENTS),
        }
    )
)
def test_the_json_of_a_customer_record_is_json_dumps_of_its_values(row: dict[str, Any]) -> None:
    _same_json(CUSTOMER_OUT, row)


def test_the_json_of_a_dump_is_written_directly_for_text_numbers_and_times() -> None:
    """Not always ``None``: a record of text, whole numbers and datetimes (an imported customer's) is written."""
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123)
    row = {"id": 7, "name": 'A "quoted" é\n', "created_at": moment, "stage_changed_at": moment, "score": None}
    assert _same_json(CUSTOMER_OUT, row)
    assert json_dumper(CUSTOMER_OUT)({"id": 7, "vip": True}) is None


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.dictionaries(st.sampled_from("idtmn"), VALUES), min_size=1, max_size=8), data=st.data())
def test_one_json_dumper_writes_each_of_a_batch_of_rows_sharing_values_as_json_dumps(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    """One dumper for the whole batch, as an import uses it: a value it wrote for an earlier row (the same
    object, as a batch's times are) is written again rightly, and so is a different one after it."""
    write = json_dumper(EVERY_TYPE)
    shared = [v for row in rows for v in row.values() if v is not None]
    for row in rows:
        again: bool = data.draw(st.booleans())
        if shared and again:  # an object an earlier or later row has too
            row[data.draw(st.sampled_from("idtmn"))] = data.draw(st.sampled_from(shared))
        try:
            expected: str | None = json.dumps({k: v for k, v in dumper(EVERY_TYPE)(row).items() if v is not None})
        except Exception:  # a value that cannot be dumped: nor written directly
            continue
        written = write(row)
        assert written is None or written == expected
    # and always rows it does write: after the batch, a time, then the same time object again
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123, tzinfo=dt.UTC)
    for number in (1, 2):
        row = {"i": number, "t": moment}
        assert write(row) == json.dumps(dumper(EVERY_TYPE)(row))


TASK_VALUES = {
    "title": TEXT,
    "reason": st.one_of(st.none(), TEXT),
    "customer_id": st.one_of(st.none(), st.integers(min_value=-(2**32), max_value=2**32), st.booleans(), TEXT),
    "assignee_id": st.one_of(st.none(), st.integers(min_value=-(2**32), max_value=2**32), st.floats()),
    "due_at": st.one_of(st.none(), MOMENTS, st.datetimes(), st.dates(), TEXT),
    "remind_at": st.one_of(st.none(), MOMENTS),
    "priority": st.one_of(st.none(), st.integers(min_value=-5, max_value=105), st.booleans(), st.floats()),
    "source": st.one_of(st.none(), TEXT, st.just("s" * 101)),
    "source_id": st.one_of(st.none(), TEXT),
    "status": st.just("done"),
}


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_task_fast_load_accepts_only_what_marshmallow_loads_the_same(data: Any) -> None:
    keys = data.draw(st.sets(st.sampled_from(sorted(TASK_VALUES))))
    row = {key: data.draw(TASK_VALUES[key]) for key in sorted(keys)}
    fast = task_fast_load(row)
    if fast is None:
        return  # marshmallow decides, as for any row
    assert fast == load(TaskIn(), row)


def test_task_fast_load_takes_the_trigger_engines_rows() -> None:
    at = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
    row = {"title": "Call Anna", "reason": None, "customer_id": 7, "assignee_id": None, "due_at": at}
    row |= {"priority": 80, "source": "trigger:t.x", "source_id": "12"}
    assert task_fast_load(row) == load(TaskIn(), row) == row
    assert task_fast_load({"title": "Call"}) == {"title": "Call", "priority": 0}
    for bad in ({"title": ""}, {"title": "x", "priority": 101}, {"title": "x", "colour": 1}, {"title": " x"}):
        assert task_fast_load(bad) is None
    try:
        load(TaskIn(), {"title": ""})
    except ValidationError as exc:
        assert "title" in exc.errors


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(range(4)), min_size=1, max_size=12), st.lists(MOMENTS, min_size=4, max_size=4))
def test_one_dumper_remembering_the_last_datetime_dumps_each_row_as_marshmallow(
    picks: list[int], moments: list[dt.datetime]
) -> None:
    """The rows of a batch share their times: one dumper for all of them, the same datetime object again
    and again, another one in between, an equal datetime in another zone."""
    dump = dumper(EVERY_TYPE)
    moments[3] = moments[0].astimezone(dt.timezone(dt.timedelta(hours=3)))  # equal to moments[0], other text
    for pick in picks:
        row = {"t": moments[pick], "i": pick}
        assert dump(row) == EVERY_TYPE.dump(row)
