"""The shortcuts of the customer import's set-based path against what they stand for: the collector paused
per chunk and back afterwards, hooks called per customer exactly when someone implements them."""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import pytest
from crmkit_fitness import FitnessPlugin
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import CRM, hookimpl
from crmkit.imports import collector
from crmkit.imports.values import KINDS, ParseOptions, cell_reader, column_reader, parse_value

HEADER = ["name", "email", "phone", "goal", "created_at", "stage"]
ROWS = [
    ["Anna", "anna@x.example", "(212) 200-0001", "muscle", "", ""],
    ["Ben", "ben@x.example", "+1 212 200 0002", "health", "2024-03-01", "active"],
    ["Cleo", "cleo@x.example", "not a phone", "", "", ""],  # rejected
    ["Dan", "dan@x.example", "", "", "", ""],
]


def _csv(rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER) -> io.BytesIO:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "upload.csv"
    return upload


# -- the collector ----------------------------------------------------------------------------------------


def test_the_collector_is_off_during_a_chunk_and_on_again_after_it_even_when_it_fails() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested, or another thread's chunk
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("the chunk failed")
    assert gc.isenabled()


def test_the_cycles_a_chunk_leaves_are_collected_when_it_ends() -> None:
    """Not at some later collection: the collector counts allocations net of frees, so after a chunk it
    would not run for a while, and the chunks' garbage would pile up (the import's peak memory grew by a
    sixth before this pass)."""

    class Node:
        me: Any = None

    with collector.paused():
        node = Node()
        node.me = node
        left = weakref.ref(node)
        del node
        assert left() is not None
    assert left() is None


def test_a_collector_the_application_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_last_of_several_threads_leaves_its_chunk() -> None:
    inside, leave = threading.Barrier(3), threading.Event()

    def chunk() -> None:
        with collector.paused():
            inside.wait()
            leave.wait()

    threads = [threading.Thread(target=chunk) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert not gc.isenabled()
    leave.set()
    for thread in threads:
        thread.join()
    assert gc.isenabled()


def test_an_import_leaves_the_collector_on_and_is_paused_while_it_writes(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = crm_factory([FitnessPlugin()])
    seen: list[bool] = []
    original = crm.customers.insert_many

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(crm.customers, "insert_many", watched)
    report = crm.imports.customers(_csv(ROWS), chunk_size=2)
    assert (report.counts["created"], report.counts["rejected"]) == (3, 1)
    assert seen and not any(seen)
    assert gc.isenabled()


# -- hooks ------------------------------------------------------------------------------------------------


class Created:
    plugin_name = "created_only"

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    @hookimpl
    def crmkit_customer_created(self, customer: Any) -> None:
        self.told.append(("created", customer["name"]))


class Moved:
    plugin_name = "moved_only"

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    @hookimpl
    def crmkit_stage_changed(self, change: Any) -> None:
        self.told.append(("moved", (change["to_stage"], change["cause"])))


class Wrapped:
    """Only a wrapper: it counts as an implementation, so the hook is still called."""

    plugin_name = "wrapper_only"

    def __init__(self) -> None:
        self.told: list[str] = []

    @hookimpl(wrapper=True)
    def crmkit_customer_created(self, customer: Any) -> Any:
        self.told.append(customer["name"])
        return (yield)


@pytest.mark.parametrize("make", [Created, Moved, Wrapped])
def test_a_chunk_tells_each_hook_someone_implements_what_the_line_path_tells(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    from crmkit.imports.customers import CustomerLines

    chunked, by_line = make(), make()
    ours = crm_factory([FitnessPlugin(), chunked]).imports.customers(_csv(ROWS), preview=10)
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", lambda self, t, lines: [self.apply(t, x) for x in lines])
        theirs = crm_factory([FitnessPlugin(), by_line]).imports.customers(_csv(ROWS), preview=10)
    assert ours.preview == theirs.preview
    assert chunked.told == by_line.told and len(chunked.told) == 3


def test_a_batch_without_listeners_calls_neither_hook(crm_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crm: CRM = crm_factory([FitnessPlugin()])
    called: list[str] = []
    monkeypatch.setattr(type(crm.hooks), "customer_created", lambda self, tx, customer: called.append("created"))
    monkeypatch.setattr(type(crm.hooks), "stage_changed", lambda self, tx, change: called.append("moved"))
    report = crm.imports.customers(_csv(ROWS))
    assert report.counts["created"] == 3 and called == []


# -- the cell readers -------------------------------------------------------------------------------------


CHOICES = ("weight_loss", "muscle", "Rehab Plus", "")
OPTIONS = [
    ParseOptions(),
    ParseOptions(choices={"goal": {"Lose weight": "weight_loss", "muscle": "rehab"}}),
    ParseOptions(date_format="dd/mm/yyyy", decimal_comma=True, true_values=("ja", "x"), false_values=("nein", "")),
]
#: what files hold: choices written in other ways, labels, numbers and dates in the options' formats
TYPED = [
    "", " ", "muscle", " muscle ", "MUSCLE", "weight-loss", "Weight Loss", "rehab plus", "Lose weight", "lose WEIGHT",
    "\u00a0muscle", "x", "ja", "nein", "1", "0", "12", " 3,5 ", "1.234,5", "2024-03-01", "01/03/2024",
    "2024-03-01T10:00:00+02:00", "'=1+1", "true",
]  # fmt: skip
cells = st.one_of(
    st.none(),
    st.sampled_from(TYPED),
    st.text(max_size=12),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
)


def outcome(read: Any, cell: Any) -> tuple[str, Any]:
    try:
        return "ok", read(cell)
    except ValueError as exc:
        return "error", str(exc)


@settings(max_examples=3000, deadline=None)
@given(
    cell=cells,
    kind=st.sampled_from(KINDS),
    choices=st.sampled_from([(), CHOICES]),
    name=st.sampled_from(["goal", "name"]),
    options=st.sampled_from(OPTIONS),
)
def test_a_cell_reader_reads_a_cell_as_parse_value_does(
    cell: Any, kind: str, choices: tuple[str, ...], name: str, options: ParseOptions
) -> None:
    read = cell_reader(name, kind, choices, options)
    expected = outcome(lambda c: parse_value(kind, c, options, field=name, choices=choices), cell)
    assert outcome(read, cell) == expected


@settings(max_examples=1500, deadline=None)
@given(
    column=st.one_of(st.lists(cells, max_size=6), st.lists(st.sampled_from(TYPED), max_size=6)),
    kind=st.sampled_from(KINDS),
    choices=st.sampled_from([(), CHOICES]),
    name=st.sampled_from(["goal", "name"]),
    options=st.sampled_from(OPTIONS),
)
def test_a_column_reader_reads_each_cell_as_the_cell_reader_does(
    column: list[Any], kind: str, choices: tuple[str, ...], name: str, options: ParseOptions
) -> None:
    values, failed = column_reader(name, kind, choices, options)(column)
    read = cell_reader(name, kind, choices, options)
    expected = [outcome(read, cell) for cell in column]
    got = [("error", str(failed[i])) if i in failed else ("ok", value) for i, value in enumerate(values)]
    assert got == expected
    assert all(values[i] is None for i in failed)


def test_a_column_of_text_is_read_whole_and_a_column_with_a_bad_cell_cell_by_cell() -> None:
    options = ParseOptions()
    goals = column_reader("goal", "string", CHOICES, options)
    assert goals([" muscle", "", "Rehab Plus "]) == (["muscle", None, "Rehab Plus"], {})
    values, failed = goals(["muscle", "bogus"])
    assert values == ["muscle", None] and list(failed) == [1] and "bogus" in str(failed[1])


# -- the ledger of created customers ----------------------------------------------------------------------

json_values = st.one_of(
    st.none(),
    st.text(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
records = st.dictionaries(st.one_of(st.sampled_from(["id", "name", "é", 'a"b', "\x00"]), st.text()), json_values)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@settings(max_examples=1500, deadline=None)
@given(record=records, cid=st.integers(1, 2**31 - 1), line=st.integers(2, 10**6))
def test_the_ledger_rows_of_created_customers_are_what_the_bind_processors_make(
    dialect: str, record: dict[str, Any], cid: int, line: int
) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from crmkit.imports.chunk import CreatedLedger

    made = sqlite.dialect() if dialect == "sqlite" else postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    direct = CreatedLedger(made, import_id=7)
    slow = CreatedLedger(made, import_id=7)
    slow._direct = False  # every row through the bind processors
    assert direct._direct
    created = [(cid, line, record), (cid + 1, line + 1, {"id": cid + 1, "name": "Anna", "phone": None})]
    assert direct.rows(created) == slow.rows(created)


# -- the ledger written without the records ---------------------------------------------------------------

_TIME = re.compile(r'"\d{4}-\d\d-\d\dT[0-9:.+-]+"')
names = st.one_of(st.sampled_from(["Anna", 'Ann "A" Lee', "Zoë \\ Ñ", "", " padded ", "x" * 60]), st.text(max_size=12))
emails = st.one_of(st.sampled_from(["", "not-an-email", "UP@X.example"]), st.emails())
phones = st.one_of(
    st.sampled_from(["", "(212) 200-0001", "+1 212 200 0002", "12", "+44 20 7946 0958"]), st.text(max_size=6)
)
goals = st.sampled_from(["", "muscle", "health", "bogus goal"])
moments = st.sampled_from(["", "2024-03-01", "2025-01-02T10:00:00+00:00", "2999-01-01", "yesterday"])
file_rows = st.lists(
    st.tuples(names, emails, phones, goals, moments, st.sampled_from(["", "active", "nope"])), max_size=12
)


def _ledger(crm: CRM) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    with crm.engine.connect() as conn:
        rows = conn.execute(text("SELECT line, action, after FROM crm_import_changes ORDER BY line"))
        # the text as stored (SQLite), or the value as JSON text (PostgreSQL's jsonb gives a dict)
        texts = [(line, action, after if isinstance(after, str) else json.dumps(after)) for line, action, after in rows]
        return [(line, action, _TIME.sub('"T"', after)) for line, action, after in texts]


def test_the_ledger_written_without_records_is_the_ledger_written_from_them(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Good and bad lines imported twice: the ledger text made from each customer's values equals the one
    made from its record (``created_jsons`` turned off), outcome by outcome and character by character."""
    from bench.customer_import import reset
    from crmkit.customers import NewCustomers

    direct, general = crm_factory([FitnessPlugin()]), crm_factory([FitnessPlugin()])  # emptied per example

    @settings(max_examples=40, deadline=None)
    @given(rows=file_rows)
    def same_ledger(rows: list[tuple[str, ...]]) -> None:
        reset(direct)
        reset(general)
        ours = direct.imports.customers(_csv(rows), chunk_size=5, preview=20)
        with monkeypatch.context() as patched:
            patched.setattr(NewCustomers, "created_jsons", lambda self: [None] * len(self.ids))
            theirs = general.imports.customers(_csv(rows), chunk_size=5, preview=20)
        assert ours.preview == theirs.preview and ours.counts == theirs.counts
        assert _ledger(direct) == _ledger(general)

    same_ledger()


def test_new_customers_write_the_ledger_text_of_their_records_and_keep_a_hooks_records(crm_factory: Any) -> None:
    from crmkit.imports.chunk import json_object
    from crmkit.imports.customers import created_after

    plain = crm_factory([FitnessPlugin()])
    data = [{"name": 'Ann "A"', "email": "ann@x.example", "goal": "muscle"}, {"name": "Zoë", "phone": "(212) 200-0001"}]
    made = plain.customers.insert_many([plain.customers.prepare(d) for d in data])
    for i in range(len(data)):
        record = made.record(i)
        assert made.created_jsons()[i] == json_object(record, {}) == json.dumps(created_after(record))
    assert made.records() == [plain.customers.get(cid) for cid in made.ids]

    told = Created()
    hooked = crm_factory([FitnessPlugin(), told])
    made = hooked.customers.insert_many([hooked.customers.prepare(d) for d in data])
    assert made.created_jsons() == [None, None]  # the hook had the records: the ledger reads those
    assert made.record(0) is made.records()[0] and told.told == [("created", 'Ann "A"'), ("created", "Zoë")]
