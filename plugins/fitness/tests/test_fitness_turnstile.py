"""Turnstile CSV import: bad lines reported by line and reason, every good line kept, re-imports harmless."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crmkit_fitness import FitnessConfig, FitnessPlugin
from crmkit_fitness.turnstile import LineError, import_turnstile
from sqlalchemy import func, select

from crmkit import CRM, hookimpl
from crmkit.db import Activity
from crmkit.errors import ValidationError
from crmkit.testing import run_in_processes


def checkins(crm: CRM) -> list[tuple[int, dt.datetime, dict[str, Any]]]:
    with crm.session() as s:
        rows = s.execute(
            select(Activity.customer_id, Activity.occurred_at, Activity.data)
            .where(Activity.kind == "checkin")
            .order_by(Activity.occurred_at, Activity.customer_id)
        )
        return [tuple(r) for r in rows]


@pytest.fixture
def members(club: CRM) -> dict[str, int]:
    return {
        card: club.customers.create({"name": name, "card_number": card})["id"]
        for name, card in (("Anna", "A-100"), ("Ben", "B-200"))
    }


EXPORT = """card,time,door,club
A-100,2026-06-01 07:15:00,north,
B-200,2026-06-01T18:02:10,south,riverside
Z-999,2026-06-01 18:05:00,south,
A-100,yesterday,north,
,2026-06-01 19:00:00,north,
B-200,2026-06-02 07:00
A-100,2026-06-02 06:59:59+02:00,north,

"""


def test_good_lines_are_kept_and_each_bad_line_is_reported(club: CRM, members: dict[str, int]) -> None:
    report = import_turnstile(club, io.StringIO(EXPORT), tz="Europe/Berlin")
    assert report.imported == 3 and report.duplicates == 0
    assert report.rejected == (
        LineError(4, "no customer with card_number Z-999"),
        LineError(5, "bad time 'yesterday'"),
        LineError(6, "card: missing"),
        LineError(7, "has 2 fields, the header has 4"),
    )
    anna, ben = members["A-100"], members["B-200"]
    assert checkins(club) == [
        (anna, dt.datetime(2026, 6, 1, 5, 15, tzinfo=dt.UTC), {"club": "main", "door": "north"}),
        (ben, dt.datetime(2026, 6, 1, 16, 2, 10, tzinfo=dt.UTC), {"club": "riverside", "door": "south"}),
        (anna, dt.datetime(2026, 6, 2, 4, 59, 59, tzinfo=dt.UTC), {"club": "main", "door": "north"}),
    ]


def test_importing_the_same_export_twice_adds_nothing(club: CRM, members: dict[str, int], tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(EXPORT + "A-100,2026-06-01 07:15:00,north,\n", encoding="utf-8")
    first = import_turnstile(club, path, tz="Europe/Berlin")
    assert (first.imported, first.duplicates) == (3, 1)  # the repeated last line is a duplicate, not a visit
    second = import_turnstile(club, path, tz="Europe/Berlin")
    assert (second.imported, second.duplicates, len(second.rejected)) == (0, 4, 4)
    with club.session() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 3
        keys = s.execute(select(Activity.source, Activity.external_id).order_by(Activity.occurred_at)).all()
    assert keys == [
        ("turnstile", "A-100@2026-06-01T05:15:00.000000Z"),
        ("turnstile", "B-200@2026-06-01T16:02:10.000000Z"),
        ("turnstile", "A-100@2026-06-02T04:59:59.000000Z"),
    ]


def test_a_file_without_the_needed_columns_is_refused_whole(club: CRM) -> None:
    with pytest.raises(ValidationError) as err:
        import_turnstile(club, io.StringIO("member,when\nA-100,2026-06-01 07:00\n"))
    assert set(err.value.errors) == {"card", "time"}
    with pytest.raises(ValidationError, match="empty"):
        import_turnstile(club, io.StringIO(""))
    assert club.imports.list() == []


def test_batches_stream_and_line_numbers_stay_right(club: CRM, members: dict[str, int]) -> None:
    lines = ["card,time"]
    for i in range(25):
        card = "A-100" if i != 17 else "NOPE"
        lines.append(f"{card},2026-06-03 {6 + i // 4:02d}:{(i % 4) * 15:02d}")
    report = import_turnstile(club, io.StringIO("\n".join(lines) + "\n"), batch_size=4)
    assert report.imported == 24 and report.rejected == (LineError(19, "no customer with card_number NOPE"),)


def test_unknown_time_zone_is_an_error(club: CRM) -> None:
    with pytest.raises(ValidationError, match="tz: unknown time zone"):
        import_turnstile(club, io.StringIO(EXPORT), tz="Mars/Olympus")


def test_check_ins_use_up_sessions_of_the_covering_membership(club: CRM, members: dict[str, int]) -> None:
    from crmkit_fitness import fitness

    club_ops = fitness(club)
    eight = club_ops.create_plan({"name": "8 sessions", "duration_days": 30, "price": "49", "sessions": 8})["id"]
    unlimited = club_ops.create_plan({"name": "Unlimited", "duration_days": 30, "price": "79"})["id"]
    anna = club_ops.sell({"customer_id": members["A-100"], "plan_id": eight, "starts_on": "2026-06-01"})["id"]
    club_ops.sell({"customer_id": members["B-200"], "plan_id": unlimited, "starts_on": "2026-06-01"})
    visits = (("01", "07:00"), ("02", "07:00"), ("02", "18:30"), ("03", "07:00"))
    export = "card,time\n" + "".join(f"A-100,2026-06-{d} {h}\n" for d, h in visits) + "A-100,2026-07-02 07:00\n"
    export += "B-200,2026-06-02 07:00\nA-100,bad\n"
    report = import_turnstile(club, io.StringIO(export))
    assert report.imported == 6 and len(report.rejected) == 1
    sessions = {m["id"]: m["sessions_left"] for c in members.values() for m in club_ops.memberships(c)}
    assert sessions[anna] == 8 - 4  # the July visit is outside the membership; the bad line used nothing
    assert set(sessions.values()) == {4, None}  # unlimited stays unlimited


# -- a re-import uses no session, and a failing import leaves nothing ----------------------------------------


def _club_with_sessions(crm: CRM, cards: int, sessions: int) -> dict[str, int]:
    """``cards`` members (cards C-000...) each holding 30 days from 2026-06-01 with ``sessions`` sessions."""
    from crmkit_fitness import fitness

    ops = fitness(crm)
    plan = ops.create_plan({"name": "Pack", "duration_days": 30, "price": "30.00", "sessions": sessions})["id"]
    members = {}
    for i in range(cards):
        card = f"C-{i:03d}"
        members[card] = crm.customers.create({"name": f"Member {i}", "card_number": card}, allow_duplicate=True)["id"]
        ops.sell({"customer_id": members[card], "plan_id": plan, "starts_on": "2026-06-01"})
    return members


def _export(cards: int, lines: int) -> str:
    """``lines`` check-ins, card by card in turn, a minute apart from 2026-06-01 06:00 UTC (all in June)."""
    start = dt.datetime(2026, 6, 1, 6, 0)
    rows = [f"C-{i % cards:03d},{(start + dt.timedelta(minutes=i)).isoformat()}" for i in range(lines)]
    return "card,time\n" + "\n".join(rows) + "\n"


def _balances(crm: CRM, members: dict[str, int]) -> dict[str, int | None]:
    from crmkit_fitness import fitness

    return {card: fitness(crm).memberships(cid)[0]["sessions_left"] for card, cid in members.items()}


def test_a_reimport_stores_nothing_and_uses_no_session(club: CRM) -> None:
    members = _club_with_sessions(club, cards=4, sessions=10)
    export = _export(cards=4, lines=12)  # 3 check-ins per card: 10 - 3 = 7 each
    first = import_turnstile(club, io.StringIO(export), batch_size=5)
    assert (first.imported, first.duplicates, first.rejected) == (12, 0, ())
    second = import_turnstile(club, io.StringIO(export), batch_size=5)
    assert (second.imported, second.duplicates, second.rejected) == (0, 12, ())
    assert _balances(club, members) == {card: 7 for card in members}
    assert len(checkins(club)) == 12


class _FailOnSecondBatch:
    """A plugin whose ingest hook raises on the second batch, as a broken integration would."""

    plugin_name = "fails_on_second_batch"

    def __init__(self) -> None:
        self.batches = 0

    @hookimpl
    def crmkit_activities_ingested(self, tx: Any, count: int, kinds: Any) -> None:
        self.batches += 1
        if self.batches == 2:
            raise RuntimeError("the warehouse is down")


def test_a_hook_failing_in_the_second_batch_keeps_the_first_and_revert_gives_its_sessions_back(
    crm_factory: Callable[..., CRM],
) -> None:
    failing = _FailOnSecondBatch()
    crm = crm_factory([FitnessPlugin(FitnessConfig(holdout=0.0)), failing])
    members = _club_with_sessions(crm, cards=3, sessions=10)
    with pytest.raises(RuntimeError, match="the warehouse is down"):
        import_turnstile(crm, io.StringIO(_export(cards=3, lines=9)), batch_size=3)  # batches of 3: fails in #2
    assert failing.batches == 2
    # the first batch committed whole (its check-ins and the sessions they used); the second left nothing
    assert len(checkins(crm)) == 3 and list(_balances(crm, members).values()) == [9, 9, 9]
    (record,) = crm.imports.list()
    assert (record["importer"], record["status"]) == ("fitness_turnstile", "failed")
    assert crm.imports.revert(record["id"]) == {"removed": 0, "restored": 0, "activities_removed": 3}
    assert checkins(crm) == [] and _balances(crm, members) == {card: 10 for card in members}


def test_an_import_joins_the_callers_unit_of_work(club: CRM) -> None:
    members = _club_with_sessions(club, cards=2, sessions=5)
    with pytest.raises(RuntimeError, match="changed my mind"), club.transaction() as tx:
        report = import_turnstile(club, io.StringIO(_export(cards=2, lines=4)), tx=tx)
        assert report.imported == 4 and len(checkins(club)) == 0  # not visible outside until committed
        raise RuntimeError("changed my mind")
    assert checkins(club) == [] and _balances(club, members) == {card: 5 for card in members}


# -- two imports of one file at the same time ------------------------------------------------------------

PROCESSES = 2
TIMEOUT = 120


def _import_in_process(database: tuple[str, dict[str, Any]], start: Any, path: str) -> tuple[int, int, int]:
    crm = CRM(database[0], plugins=[FitnessPlugin(FitnessConfig(holdout=0.0))], engine_options=database[1])
    try:
        start()
        report = import_turnstile(crm, path, batch_size=500)
        return report.imported, report.duplicates, len(report.rejected)
    finally:
        crm.close()


def test_two_processes_importing_one_file_store_each_checkin_once_and_use_each_session_once(
    club: CRM, tmp_path: Path
) -> None:
    cards, lines = 60, 3000  # 50 check-ins per card; every membership has 40 sessions
    members = _club_with_sessions(club, cards=cards, sessions=40)
    path = tmp_path / "export.csv"
    path.write_text(_export(cards=cards, lines=lines), encoding="utf-8")
    results = run_in_processes(_import_in_process, club, [(str(path),)] * PROCESSES, timeout=TIMEOUT)
    # whatever the interleaving of their chunks, each line was stored by one of them and skipped by the other
    assert sum(r[0] for r in results) == lines and sum(r[1] for r in results) == lines
    assert all(r[2] == 0 for r in results)
    stored = checkins(club)
    assert len(stored) == lines and len({(cid, at) for cid, at, _ in stored}) == lines
    # by hand: 50 visits per card, 40 sessions each: every session used once, none below zero
    assert _balances(club, members) == {card: 0 for card in members}
    per_card = Counter(line.split(",")[0] for line in path.read_text().splitlines()[1:])
    assert set(per_card.values()) == {50}


def test_lines_no_database_can_store_are_rejected_and_so_is_a_line_that_is_not_utf8(
    club: CRM, members: dict[str, int], tmp_path: Path
) -> None:
    export = (
        "card,time,door\nA-100,2026-06-01 07:00,no\x00rth\nA\x00100,2026-06-01 08:00,north\nB-200,2026-06-01 09:00,\n"
    )
    report = import_turnstile(club, io.StringIO(export))
    assert report.imported == 1 and [e.line for e in report.rejected] == [2, 3]
    assert all("NUL" in e.reason for e in report.rejected)
    path = tmp_path / "latin1.csv"
    # 600 good lines (about 20 kB, several batches and read blocks), then a byte that is not UTF-8
    good = "".join(f"B-200,2026-06-02T{h:02d}:{m:02d}:00\n" for h in range(10) for m in range(60))
    path.write_bytes(b"card,time\n" + good.encode() + b"A-100,2026-06-03 07:00\xe9\n")
    report = import_turnstile(club, path, batch_size=50)
    assert report.imported == 600 and [e.line for e in report.rejected] == [602]
    assert "not UTF-8" in report.rejected[0].reason
