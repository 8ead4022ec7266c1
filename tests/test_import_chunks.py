"""The set-based chunk (``crmkit.imports.chunk``) against the line path it replaces: the same file imported
into two identical databases, one line at a time and a chunk at a time, gives the same outcomes, line by
line, and the same rows in every table an import writes to."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pytest
from crmkit_fitness import FitnessPlugin
from sqlalchemy import text

from crmkit import CRM
from crmkit.imports.customers import CustomerLines
from crmkit.imports.sources import SourceLine
from crmkit.unit import Transaction

HEADER = ["name", "email", "phone", "goal", "external_id", "created_at", "stage", "owner_id"]


def _csv(rows: Sequence[Sequence[Any]]) -> io.BytesIO:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, *rows])
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "upload.csv"
    return upload


#: creates, a line repeating an earlier one (in its chunk and in a later one, by email, phone or external
#: id), updates and unchanged lines of customers that were there before, rejects, lines matching two
#: customers, a history to keep, a phone claimed by an earlier line under another email, an owner
MIXED = [
    ["Anna", "anna@x.example", "(212) 200-0001", "muscle", "A1", "", "", ""],
    ["Ben", "ben@x.example", "+1 212 200 0002", "health", "A2", "2024-03-01", "active", ""],
    ["Anna again", "ANNA@x.example", "", "", "", "", "", ""],  # duplicate in the chunk
    ["Old Olga", "olga@x.example", "", "sport", "", "", "", ""],  # an update of a customer there before
    ["Cleo", "cleo@x.example", "not a phone", "", "", "", "", ""],  # rejected
    ["Dan", "dan@x.example", "(212) 200-0004", "bogus goal", "", "", "", ""],  # rejected
    ["Eva", "eva@x.example", "(212) 200-0005", "", "A5", "2025-01-02T10:00:00+00:00", "loyal", ""],
    ["Ben twice", "", "(212) 200-0002", "", "", "", "", ""],  # duplicate of Ben, by phone, next chunk
    ["", "", "", "", "", "", "", ""],  # nothing to do
    ["Fay", "fay@x.example", "(212) 200-0001", "", "", "", "", ""],  # Anna's phone, another email
    ["Gus", "olga@x.example", "", "", "", "", "", ""],  # Olga's email again: a duplicate of that line
    ["Hal", "hal@x.example", "(212) 200-0009", "", "A1", "", "", ""],  # Anna's external id
    ["Ida", "ida@x.example", "", "", "", "", "", "1"],  # an owner to check
    ["Jon", "jon@x.example", "", "", "", "", "", "999"],  # an owner that does not exist
    ["Kim", "kim@x.example", "", "", "", "2999-01-01", "", ""],  # created in the future
    ["Lea", "lea@x.example", "(212) 200-0012", "", "", "", "", ""],
    ["Max", "max@x.example", "(212) 200-0013", "", "", "", "", ""],
    ["Old Pia", "pia@x.example", "(212) 200-0099", "", "", "", "", ""],  # unchanged
    ["Both", "pia@x.example", "(212) 200-0012", "", "", "", "", ""],  # Pia by email, Lea by phone
    ["Rex", "rex.new@x.example", "(212) 200-0077", "", "", "", "", ""],  # Rex by phone: a new email
    ["Rex's old address", "rex@x.example", "", "", "", "", "", ""],  # nobody's any more: a new customer
    ["Rex again", "rex.new@x.example", "", "", "", "", "", ""],  # Rex by his new email: a duplicate
]


def _line_by_line(self: CustomerLines, t: Transaction, lines: Sequence[SourceLine]) -> list[Any]:
    return [self.apply(t, line) for line in lines]


def _crm(crm_factory: Any) -> CRM:
    crm = crm_factory([FitnessPlugin()])
    crm.users.create({"email": "owner@x.example", "name": "Owner"})
    crm.customers.create({"name": "Olga", "email": "olga@x.example", "goal": "muscle"})
    crm.customers.create({"name": "Old Pia", "email": "pia@x.example", "phone": "(212) 200-0099"})
    crm.customers.create({"name": "Rex", "email": "rex@x.example", "phone": "(212) 200-0077"})
    # the last id given belongs to nobody now: a new customer must not get it again
    gone = crm.customers.create({"name": "Gone"})
    with crm.engine.begin() as conn:
        conn.execute(text("DELETE FROM crm_customers WHERE id = :id"), {"id": gone["id"]})
    return crm


_TABLES = {
    "crm_customers": "SELECT id, name, email, email_normalized, phone, phone_normalized, stage, lifecycle, extra"
    " FROM crm_customers ORDER BY id",
    "fitness_customer": "SELECT customer_id, goal, card_number FROM fitness_customer ORDER BY customer_id",
    "crm_stage_history": "SELECT customer_id, from_stage, to_stage, to_lifecycle, cause, actor_id"
    " FROM crm_stage_history ORDER BY customer_id, id",
    "crm_customer_claims": "SELECT kind, value, customer_id FROM crm_customer_claims ORDER BY kind, value",
    "crm_customer_keys": "SELECT system, external_id, customer_id FROM crm_customer_keys ORDER BY 1, 2",
    "crm_import_changes": "SELECT customer_id, import_id, line, action FROM crm_import_changes ORDER BY line",
}


def _rows(crm: CRM) -> dict[str, list[tuple[Any, ...]]]:
    with crm.engine.connect() as conn:
        rows = {name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in _TABLES.items()}
        # the ledger's values, as JSON can compare them (the times of a created customer aside)
        ledger = conn.execute(text("SELECT line, before, after FROM crm_import_changes ORDER BY line"))
        rows["ledger values"] = [(line, str(before), _untimed(after)) for line, before, after in ledger]
    return rows


def _untimed(after: Any) -> str:
    import json

    values = json.loads(after) if isinstance(after, str) else after
    return str(sorted((k, v) for k, v in values.items() if k not in ("created_at", "updated_at", "stage_changed_at")))


@pytest.mark.parametrize("mode", ["upsert", "create"])
@pytest.mark.parametrize("chunk_size", [3, 1000])
def test_a_chunk_gives_what_the_line_path_gives(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch, mode: str, chunk_size: int
) -> None:
    chunked, by_line = _crm(crm_factory), _crm(crm_factory)
    ours = chunked.imports.customers(_csv(MIXED), mode=mode, chunk_size=chunk_size, preview=100)
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", _line_by_line)
        theirs = by_line.imports.customers(_csv(MIXED), mode=mode, chunk_size=chunk_size, preview=100)
    assert ours.preview == theirs.preview
    assert ours.counts == theirs.counts
    actions = {o.action for o in ours.preview}
    assert {"created", "skipped", "rejected"} <= actions and (mode == "create" or "updated" in actions)
    assert _rows(chunked) == _rows(by_line)
    assert min(o.customer_id for o in ours.preview if o.action == "created" and o.customer_id) == 5
    # and running the file again changes nothing, the same way
    again = chunked.imports.customers(_csv(MIXED), mode=mode, chunk_size=chunk_size, preview=100)
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", _line_by_line)
        same = by_line.imports.customers(_csv(MIXED), mode=mode, chunk_size=chunk_size, preview=100)
    assert again.preview == same.preview and again.counts["created"] == 0
    assert _rows(chunked) == _rows(by_line)


def test_a_chunk_read_while_the_import_steps_aside_gives_what_the_line_path_gives(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the import reads the next chunk while it steps aside for other writers: with a pause owed
    before every chunk (and each pause long enough for part of a reading), the outcomes and rows are still
    the line path's."""
    from crmkit import unit
    from crmkit.imports.chunk import Reading

    monkeypatch.setattr(unit, "SLICE_SECONDS", 0.0)
    monkeypatch.setattr(unit, "PAUSE_SECONDS", 0.05)
    monkeypatch.setattr(Reading, "STEP", 2)
    steps: list[int] = []
    step = Reading.step

    def counted(self: Reading) -> bool:
        steps.append(len(self.chunk))
        return step(self)

    monkeypatch.setattr(Reading, "step", counted)
    chunked, by_line = _crm(crm_factory), _crm(crm_factory)
    ours = chunked.imports.customers(_csv(MIXED), mode="upsert", chunk_size=5, preview=100)
    if chunked.engine.dialect.name == "sqlite":
        assert steps  # read ahead indeed
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", _line_by_line)
        theirs = by_line.imports.customers(_csv(MIXED), mode="upsert", chunk_size=5, preview=100)
    assert ours.preview == theirs.preview and ours.counts == theirs.counts
    assert _rows(chunked) == _rows(by_line)


def _paused_without_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pause owed before every chunk, long enough for every piece of reading the import has to do, and no
    time slept once that is done."""
    from crmkit import unit

    monkeypatch.setattr(unit, "SLICE_SECONDS", 0.0)
    monkeypatch.setattr(unit, "PAUSE_SECONDS", 60.0)
    monkeypatch.setattr("crmkit.unit.time.sleep", lambda seconds: None)


def test_while_it_steps_aside_the_import_reads_a_few_chunks_ahead_and_applies_them_in_order(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmkit.imports.chunk import Reading
    from crmkit.imports.service import _Chunks

    _paused_without_sleeping(monkeypatch)
    applied: list[int] = []  # the first line of each chunk applied
    ahead: list[int] = []  # how many chunks past the next one to apply a reading was at
    chunks: dict[int, int] = {}  # a chunk's place in the file, in the order their readings begin
    step, apply_chunk = Reading.step, CustomerLines.apply_chunk

    def stepped(self: Reading) -> bool:
        ahead.append(chunks.setdefault(id(self.chunk), len(chunks)) - len(applied))
        return step(self)

    def applying(self: CustomerLines, t: Transaction, lines: Sequence[SourceLine]) -> list[Any]:
        applied.append(lines[0].line)
        return apply_chunk(self, t, lines)

    monkeypatch.setattr(Reading, "step", stepped)
    monkeypatch.setattr(CustomerLines, "apply_chunk", applying)
    chunked, by_line = _crm(crm_factory), _crm(crm_factory)
    ours = chunked.imports.customers(_csv(MIXED), mode="upsert", chunk_size=5, preview=100)
    assert applied == [2, 7, 13, 18, 23]  # every chunk once, in file order (line 10 is blank)
    assert ours.counts["created"] > 0 and _rows(chunked)["crm_customers"]  # something to compare
    if chunked.engine.dialect.name == "sqlite":  # PostgreSQL writers do not step aside
        assert max(ahead) == _Chunks.AHEAD  # read ahead indeed, and no further
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", _line_by_line)
        theirs = by_line.imports.customers(_csv(MIXED), mode="upsert", chunk_size=5, preview=100)
    assert ours.preview == theirs.preview and ours.counts == theirs.counts
    assert _rows(chunked) == _rows(by_line)


def test_a_file_that_fails_while_read_ahead_keeps_the_chunks_before_it(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import stops where the file fails, as it would without reading ahead: every chunk before the
    one that cannot be read is stored, and the import is recorded as failed."""
    from crmkit.errors import CRMError
    from crmkit.imports.sources import Source

    _paused_without_sleeping(monkeypatch)
    records = Source.__iter__

    def failing(self: Source) -> Any:
        for record in records(self):
            if record.line == 13:  # in the third chunk
                raise CRMError("the file broke off")
            yield record

    monkeypatch.setattr(Source, "__iter__", failing)
    crm = crm_factory([FitnessPlugin()])
    rows = [[f"M{i}", f"m{i}@x.example", "", "", "", "", "", ""] for i in range(20)]
    with pytest.raises(CRMError, match="the file broke off"):
        crm.imports.customers(_csv(rows), chunk_size=5)
    with crm.engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM crm_customers ORDER BY id")).scalars().all()
        status = conn.execute(text("SELECT status FROM crm_imports")).scalar_one()
    assert names == [f"M{i}" for i in range(10)] and status == "failed"


def test_a_chunk_whose_bulk_write_is_refused_goes_line_by_line(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer with one of the chunk's values that the match keys did not find (here: matching on the
    external id only, the email already there) refuses the bulk write: every line of it is then applied as
    the line path applies it."""
    chunked, by_line = _crm(crm_factory), _crm(crm_factory)
    rows = [["Nia", "nia@x.example", "", "", "N1", "", "", ""], ["Olga", "olga@x.example", "", "", "N2", "", "", ""]]
    ours = chunked.imports.customers(_csv(rows), match=["external_id"], preview=10)
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", _line_by_line)
        theirs = by_line.imports.customers(_csv(rows), match=["external_id"], preview=10)
    assert ours.preview == theirs.preview
    assert [o.action for o in ours.preview] == ["created", "skipped"]
    assert _rows(chunked) == _rows(by_line)


def test_the_ledger_of_a_created_customer_keeps_its_values_and_a_revert_still_sees_later_changes(
    crm_factory: Any,
) -> None:
    crm = _crm(crm_factory)
    report = crm.imports.customers(_csv([["Quinn", "quinn@x.example", "", "", "", "", "", ""]]))
    (created,) = report.preview
    with crm.engine.connect() as conn:
        after = conn.execute(text("SELECT after FROM crm_import_changes")).scalar_one()
    import json

    after = json.loads(after) if isinstance(after, str) else after
    assert after["name"] == "Quinn" and "phone" not in after and "goal" not in after
    assert created.customer_id is not None
    crm.customers.update(created.customer_id, {"goal": "muscle"})  # a field that was empty
    assert report.import_id is not None
    with pytest.raises(Exception, match="changed since: goal"):
        crm.imports.revert(report.import_id)


def test_a_duplicate_found_only_by_the_claims_rolls_the_bulk_write_back(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a writer committing between the lookup and the bulk write looks like: the claims find the
    duplicate, the bulk write is rolled back whole and each line goes through the line path."""
    from crmkit.imports.chunk import Chunk

    crm = _crm(crm_factory)
    monkeypatch.setattr(Chunk, "_taken", lambda self, held: False)
    rows = [["Nia", "nia@x.example", "", "", "N1", "", "", ""], ["Olga", "olga@x.example", "", "", "N2", "", "", ""]]
    report = crm.imports.customers(_csv(rows), match=["external_id"], preview=10)
    assert [(o.action, o.reasons) for o in report.preview] == [
        ("created", ()),
        (
            "skipped",
            ("duplicate customer: matches [1] on email (pass allow_duplicate=True to keep both, or merge them)",),
        ),
    ]
    with crm.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM crm_customers WHERE name = 'Nia'")).scalar_one() == 1
        assert conn.execute(text("SELECT COUNT(*) FROM crm_import_changes")).scalar_one() == 1
