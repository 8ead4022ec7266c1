"""The club generator (deterministic, consistent with the stage triggers) and ``crmkit demo`` end to end."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import defaultdict
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from crmkit_fitness import generator
from crmkit_fitness.generator import GeneratedClub, generate
from crmkit_fitness.models import Membership
from sqlalchemy import Table, delete, func, select, update

import crmkit.cli
from crmkit import CRM
from crmkit.db import Activity, Customer
from crmkit.db.models import StageHistory, TriggerFiring

TODAY = dt.date(2026, 6, 15)
SIZE = 60


def dump(crm: CRM) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the generator writes, table by table in id order; an activity's ``created_at`` is left out,
    being the time the core's ingest inserted it, and so is the audit log, which records when and in which
    batches the rows were written."""
    out = {}
    with crm.engine.connect() as conn:
        for table in crm.metadata.sorted_tables:
            if table.name == "crm_audit":
                continue
            columns = [c for c in table.c if not (table.name == "crm_activities" and c.name == "created_at")]
            out[table.name] = [tuple(r) for r in conn.execute(select(*columns).order_by(*table.primary_key.columns))]
    return out


def generated(club_factory: Callable[..., CRM], **kwargs: Any) -> tuple[CRM, GeneratedClub]:
    crm = club_factory()
    return crm, generate(crm, **{"members": SIZE, "today": TODAY, **kwargs})


def test_same_seed_same_club(club_factory: Callable[..., CRM], monkeypatch: pytest.MonkeyPatch) -> None:
    first, club = generated(club_factory)
    monkeypatch.setattr(generator, "BATCH_MEMBERS", 7)  # a member's story does not depend on the batching
    second, again = generated(club_factory)
    assert club == again
    rows = dump(first)
    assert rows == dump(second)
    assert len(rows["crm_customers"]) == SIZE and rows["crm_activities"]
    _, other = generated(club_factory, seed=43)
    assert other != club


def test_counts_match_the_database(club_factory: Callable[..., CRM]) -> None:
    crm, club = generated(club_factory)
    with crm.session() as s:
        kinds = dict(s.execute(select(Activity.kind, func.count()).group_by(Activity.kind)).all())
        stages = dict(s.execute(select(Customer.stage, func.count()).group_by(Customer.stage)).all())
        moves = s.scalar(select(func.count()).select_from(StageHistory))
    assert (kinds["checkin"], kinds["purchase"], kinds.get("call", 0)) == (club.checkins, club.purchases, club.calls)
    assert kinds.get("pt_session", 0) == club.pt_sessions
    assert stages == club.stages and sum(stages.values()) == SIZE == club.members
    assert moves == club.stage_moves
    assert club.checkins > 20 * SIZE  # a year of habits, not a handful of visits


def test_history_is_consistent_and_ends_before_today(club_factory: Callable[..., CRM]) -> None:
    crm, _ = generated(club_factory)
    start = dt.datetime.combine(TODAY, dt.time(), dt.UTC)
    with crm.session() as s:
        history = defaultdict(list)
        for h in s.scalars(select(StageHistory).order_by(StageHistory.customer_id, StageHistory.at, StageHistory.id)):
            history[h.customer_id].append(h)
        customers = list(s.scalars(select(Customer)))
        latest = s.scalar(select(func.max(Activity.occurred_at)))
    assert latest is not None and latest < start
    for c in customers:
        rows = history[c.id]
        assert rows[0].from_stage is None and rows[0].at == c.created_at
        for before, after in itertools.pairwise(rows):
            assert after.from_stage == before.to_stage
            assert (before.to_stage, after.to_stage) in crm.registry.transitions
            assert after.at >= before.at
        assert (rows[-1].to_stage, rows[-1].at) == (c.stage, c.stage_changed_at)
        assert c.lifecycle == crm.lifecycle.stage(c.stage).lifecycle
        if c.phone:
            assert crm.normalize_phone(c.phone) == c.phone_normalized


def test_stage_history_is_what_the_nightly_triggers_would_have_done(club_factory: Callable[..., CRM]) -> None:
    """A backtest with the real trigger engine: for nights across the year, put the club back as it stood at
    midnight (customers, memberships bought and stages as of then), run the real ``fitness.stage_*``
    triggers, and compare their moves with the generated ones. Going back in time, each night only removes
    more, so one database serves every night."""
    crm, _ = generated(club_factory, members=200)
    names = [t.name for t in crm.triggers.all() if t.name.startswith("fitness.stage_")]
    h: Table = StageHistory.__table__
    c: Table = Customer.__table__
    m: Table = Membership.__table__
    generated_moves = defaultdict(set)
    with crm.engine.connect() as conn:
        for row in conn.execute(
            select(h.c.at, h.c.customer_id, h.c.to_stage, h.c.cause).where(h.c.cause.like("trigger %"))
        ):
            generated_moves[row.at].add((row.customer_id, row.to_stage, row.cause))

    def last(column: Any) -> Any:
        return select(column).where(h.c.customer_id == c.c.id).order_by(h.c.at.desc(), h.c.id.desc()).limit(1)

    compared = 0
    for back in [*range(1, 8), *range(9, generator.HISTORY_DAYS, 4)]:
        night = dt.datetime.combine(TODAY - dt.timedelta(days=back), dt.time(), dt.UTC)
        with crm.engine.begin() as conn:
            conn.execute(delete(TriggerFiring))
            conn.execute(delete(c).where(c.c.created_at > night))
            conn.execute(delete(m).where(m.c.created_at > night))
            conn.execute(delete(h).where(h.c.at >= night))
            conn.execute(
                update(c).values(
                    stage=last(h.c.to_stage).scalar_subquery(),
                    lifecycle=last(h.c.to_lifecycle).scalar_subquery(),
                    stage_changed_at=last(h.c.at).scalar_subquery(),
                )
            )
        crm.triggers.run(night, names=names)
        with crm.engine.connect() as conn:
            moved = set(
                map(tuple, conn.execute(select(h.c.customer_id, h.c.to_stage, h.c.cause).where(h.c.at >= night)))
            )
        assert moved == generated_moves.get(night, set()), night
        compared += len(moved)
    assert compared > 50  # the nights checked did move members: adapted, at risk, recovered, lapsed


def test_generate_refuses_a_club_that_is_not_empty(club_factory: Callable[..., CRM]) -> None:
    crm, _ = generated(club_factory, members=3)
    with pytest.raises(ValueError, match="empty club database"):
        generate(crm, members=3, today=TODAY)


# -- the demo command -----------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Parses a page and checks every non-void element is closed in order."""

    VOID = {"meta", "br", "input", "img", "link", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.title = ""
        self.tags: set[str] = set()
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_title = tag == "title" and not self.open.count("svg")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            self._in_title = False


def test_demo_builds_a_club_runs_the_triggers_and_writes_the_reports(tmp_path: Path) -> None:
    db = tmp_path / "club.db"
    result = CliRunner().invoke(crmkit.cli.main, ["demo", "--db", str(db), "--size", "150"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "A club with 150 members" in out
    assert re.search(r"Membership about to end\s+\d+ tasks", out)  # the trigger's label, not its name
    actions = out[out.index("Next best actions") :]
    # a task, then the reason a person can act on: "Anna Berg: membership ends ..., last visit 3 days ago"
    assert re.search(r"^\s+\[\s*\d+\] .+\n\s+[^\[\s].*: .*(last visit \d+ days? ago|no visit yet)", actions, re.M)
    assert f"database written to {db}" in out

    folder = tmp_path / "club-reports"
    assert f"reports written to {folder}" in out
    assert f"open the dashboard: {(folder / 'index.html').resolve().as_uri()}" in out
    assert f"or serve them live: crmkit serve --url sqlite:///{db} --currency EUR" in out
    crm = CRM(f"sqlite:///{db}", load_entry_points=True)
    try:
        names = {r.name for r in crm.reports.all()}
    finally:
        crm.close()
    assert {n for n in names if n.startswith("fitness.")} == {
        "fitness.attendance",
        "fitness.members_at_risk",
        "fitness.renewal_rate",
        "fitness.trainer_load",
        "fitness.trigger_effectiveness",
    }
    assert {p.name for p in folder.glob("*.html")} == {f"{n}.html" for n in names} | {"index.html", "kpis.html"}
    for page in folder.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert text.strip(), page.name
        parser = _Page()
        parser.feed(text)
        parser.close()
        assert parser.open == [], f"{page.name}: unclosed {parser.open}"
        assert parser.title.strip(), page.name
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{n}.html"' in index for n in names)
    attendance = (folder / "fitness.attendance.html").read_text(encoding="utf-8")
    assert "chart-heatmap" in attendance and "The darker the cell" in attendance
    assert "No data for these parameters." not in (folder / "fitness.renewal_rate.html").read_text(encoding="utf-8")
