"""The benchmark runs end to end at a tiny size, so it cannot rot; and every baseline computes what crmkit
computes, so a ratio in the table compares like with like. No timing is asserted: that is what the
benchmark is for (``python -m bench``, docs/performance.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import data
from bench.common import AS_OF
from bench.runner import main
from crmkit import CRM
from crmkit.testing import database_url

SIZES = data.Sizes(customers=240, visits=5000, payments=120, seed=7)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[data.Target]:
    # each run gets its own PostgreSQL schemas, dropped at the end
    prefix = f"crmkit_bench_t{abs(hash(str(tmp_path_factory.getbasetemp()))) % 10**8}"
    made = data.Target(database_url(), tmp_path_factory.mktemp("bench"), prefix)
    yield made
    made.drop_all()


@pytest.fixture(scope="module")
def club(target: data.Target) -> Iterator[CRM]:
    crm = data.club(target, SIZES, echo=lambda _: None)
    yield crm
    crm.close()


def test_the_club_is_kept_and_reused_for_the_same_sizes(target: data.Target, club: CRM) -> None:
    built: list[str] = []
    again = data.club(target, SIZES, echo=built.append)
    again.close()
    assert built == []
    assert target.stamp(f"club_{SIZES.key}")["customers"] == SIZES.customers


def test_the_club_has_the_asked_payments_and_firings_from_a_real_trigger_run(club: CRM) -> None:
    from sqlalchemy import func, select

    from crmkit.db.models import Activity, TriggerFiring

    with club.session() as s:
        payments = s.scalar(select(func.count()).where(Activity.kind == "payment"))
        firings = s.scalar(select(func.count()).select_from(TriggerFiring))
    assert payments == SIZES.payments
    assert firings > 0


def test_ingest_baseline_stores_the_same_rows_as_crmkit(target: data.Target, club: CRM) -> None:
    from bench.ingest import check_same_rows

    crm = data.ingest_database(target, club)
    try:
        check_same_rows(crm, data.visits(club, 2000))
    finally:
        crm.close()
        target.drop("ingest")


def test_hand_written_trigger_sql_matches_the_same_customers(club: CRM) -> None:
    from bench.triggers import check_sql_agrees

    check_sql_agrees(club, AS_OF)


def test_per_customer_loop_matches_the_same_customers(club: CRM) -> None:
    from sqlalchemy import select

    from bench.triggers import check_loop_agrees
    from crmkit.db.models import Customer

    with club.session() as s:
        ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
    check_loop_agrees(club, AS_OF, ids)


def test_hand_written_report_sql_gives_the_same_rows(club: CRM) -> None:
    from bench.reports import check_reports_agree

    check_reports_agree(club, AS_OF)


def test_python_m_bench_prints_every_workload_and_writes_the_figures(
    target: data.Target, club: CRM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = [
        *("--customers", str(SIZES.customers), "--visits", str(SIZES.visits), "--payments", str(SIZES.payments)),
        *("--seed", str(SIZES.seed), "--sample", "60", "--memory-small", "60", "--repeat", "1"),
        *("--work-dir", str(target.work_dir), "--prefix", target.prefix, "--json", str(out)),
    ]
    if target.url:
        argv += ["--url", target.url]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    names = [t["workload"] for t in figures["timings"]]
    assert names[0].startswith("ingest")
    assert any("loop" in n for n in names)
    assert any(n.startswith("fitness triggers") for n in names)
    assert sum(n.startswith("report ") for n in names) == 14
    assert all(t["same"] for t in figures["timings"])
    assert all(t["crmkit_s"] > 0 and t["baseline_s"] > 0 for t in figures["timings"])
    assert [m["task"] for m in figures["memory"]] == ["trigger evaluation", "report rendering (all, HTML)"]
    assert all(m["large"]["peak_mb"] >= m["large"]["start_mb"] > 0 for m in figures["memory"])
    assert figures["counts"]["customers"] == SIZES.customers
    for name in names:
        assert name in printed
    assert "trigger evaluation" in printed
