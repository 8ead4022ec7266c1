"""Turnstile CSV import: bad lines reported by line and reason, every good line kept, re-imports harmless."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from crmkit_fitness.turnstile import LineError, import_turnstile
from sqlalchemy import func, select

from crmkit import CRM
from crmkit.db import Activity


def checkins(crm: CRM) -> list[tuple[int, dt.datetime, dict]]:
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
        LineError(4, "unknown card 'Z-999'"),
        LineError(5, "bad time 'yesterday'"),
        LineError(6, "no card number"),
        LineError(7, "expected 4 fields, got 2"),
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


def test_a_file_without_the_needed_columns_is_rejected_at_line_one(club: CRM) -> None:
    report = import_turnstile(club, io.StringIO("member,when\nA-100,2026-06-01 07:00\n"))
    assert report.imported == 0 and report.rejected[0].line == 1 and "card or time" in report.rejected[0].reason
    assert import_turnstile(club, io.StringIO("")).rejected[0].reason.startswith("empty file")


def test_batches_stream_and_line_numbers_stay_right(club: CRM, members: dict[str, int]) -> None:
    lines = ["card,time"]
    for i in range(25):
        card = "A-100" if i != 17 else "NOPE"
        lines.append(f"{card},2026-06-03 {6 + i // 4:02d}:{(i % 4) * 15:02d}")
    report = import_turnstile(club, io.StringIO("\n".join(lines) + "\n"), batch_size=4)
    assert report.imported == 24 and report.rejected == (LineError(19, "unknown card 'NOPE'"),)


def test_unknown_time_zone_is_an_error(club: CRM) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        import_turnstile(club, io.StringIO(EXPORT), tz="Mars/Olympus")


def test_check_ins_use_up_sessions_of_the_covering_membership(club: CRM, members: dict[str, int]) -> None:
    from crmkit_fitness import fitness

    club_ops = fitness(club)
    eight = club_ops.create_plan({"name": "8 sessions", "duration_days": 30, "price": "49", "sessions": 8})
    unlimited = club_ops.create_plan({"name": "Unlimited", "duration_days": 30, "price": "79"})
    anna = club_ops.sell({"customer_id": members["A-100"], "plan_id": eight, "starts_on": "2026-06-01"})
    club_ops.sell({"customer_id": members["B-200"], "plan_id": unlimited, "starts_on": "2026-06-01"})
    visits = (("01", "07:00"), ("02", "07:00"), ("02", "18:30"), ("03", "07:00"))
    export = "card,time\n" + "".join(f"A-100,2026-06-{d} {h}\n" for d, h in visits) + "A-100,2026-07-02 07:00\n"
    export += "B-200,2026-06-02 07:00\nA-100,bad\n"
    report = import_turnstile(club, io.StringIO(export))
    assert report.imported == 6 and len(report.rejected) == 1
    sessions = {m["id"]: m["sessions_left"] for c in members.values() for m in club_ops.memberships(c)}
    assert sessions[anna] == 8 - 4  # the July visit is outside the membership; the bad line used nothing
    assert set(sessions.values()) == {4, None}  # unlimited stays unlimited
