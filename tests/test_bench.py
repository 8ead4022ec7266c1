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
    stamp = target.stamp(f"club_{SIZES.key}")
    assert stamp is not None and stamp["customers"] == SIZES.customers


def test_the_club_has_the_asked_payments_and_firings_from_a_real_trigger_run(club: CRM) -> None:
    from sqlalchemy import func, select

    from crmkit.db.models import Activity, TriggerFiring

    with club.session() as s:
        payments = s.scalar(select(func.count()).where(Activity.kind == "payment"))
        firings = s.scalar(select(func.count()).select_from(TriggerFiring))
    assert payments == SIZES.payments
    assert firings is not None and firings > 0


def test_ingest_baseline_stores_the_same_rows_as_crmkit(target: data.Target, club: CRM) -> None:
    from bench.ingest import check_same_rows

    crm = data.ingest_database(target, club)
    try:
        assert check_same_rows(crm, data.visits(club, 2000)) == 2000
        with pytest.raises(AssertionError, match="no check-ins to ingest"):
            check_same_rows(crm, [])
    finally:
        crm.close()
        target.drop("ingest")


def test_hand_written_trigger_sql_matches_the_same_customers(club: CRM) -> None:
    from bench.triggers import check_sql_agrees, fitness_triggers

    compared = check_sql_agrees(club, AS_OF)
    assert set(compared) == set(fitness_triggers(club)) and len(compared) == 13
    # every trigger matches someone, the same number on both sides
    assert all(ours == theirs > 0 for ours, theirs in compared.values()), compared


def test_every_shaped_member_meets_the_trigger_it_was_shaped_for(club: CRM) -> None:
    from sqlalchemy import select

    from bench import shapes
    from bench.triggers import crmkit_matches
    from crmkit.db.models import Customer

    with club.session() as s:
        shaped = s.execute(select(Customer.id, Customer.email).where(Customer.email.like(f"%@{shapes.DOMAIN}")))
        by_trigger: dict[str, set[int]] = {}
        for cid, email in shaped:
            assert email is not None
            by_trigger.setdefault("fitness." + email.split("@")[0].rsplit("-", 1)[0].replace("-", "_"), set()).add(cid)
    assert set(by_trigger) == set(shapes.SHAPES)
    assert all(len(ids) == shapes.per_trigger(SIZES.customers) == 3 for ids in by_trigger.values())
    for name, ids in by_trigger.items():
        assert ids <= crmkit_matches(club, AS_OF, name), name


def test_comparing_two_empty_sets_fails(target: data.Target) -> None:
    from bench.common import Workload
    from bench.runner import TRIGGERS, measure
    from bench.triggers import check_sql_agrees

    crm = target.fresh("empty")  # a club with no one in it: every trigger matches nobody on both sides
    try:
        with pytest.raises(AssertionError, match=r"match nobody for fitness\.stage_joined, .*proves nothing"):
            check_sql_agrees(crm, AS_OF)
    finally:
        crm.close()
        target.drop("empty")
    timing = measure(
        Workload("nothing", crmkit=lambda: {"a": 0, "b": 2}, baseline=lambda: {"a": 0, "b": 2}), TRIGGERS, 1
    )
    assert timing.same and timing.empty == ["a"]


def test_per_customer_loop_matches_the_same_customers(club: CRM) -> None:
    from sqlalchemy import select

    from bench.triggers import check_loop_agrees
    from crmkit.db.models import Customer

    with club.session() as s:
        ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
    compared = check_loop_agrees(club, AS_OF, ids)
    assert len(compared) == 13 and all(ours == theirs > 0 for ours, theirs in compared.values()), compared


def test_hand_written_report_sql_gives_the_same_rows(club: CRM) -> None:
    from bench.reports import check_reports_agree

    compared = check_reports_agree(club, AS_OF)
    assert len(compared) == 14
    for name, (ours, theirs) in compared.items():
        assert ours["rows"] == theirs["rows"] > 0, name
        assert ours["non-zero numbers"] > 0 and theirs["non-zero numbers"] > 0, name


def test_python_m_bench_prints_every_workload_and_writes_the_figures(
    target: data.Target, club: CRM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = [
        *("--customers", str(SIZES.customers), "--visits", str(SIZES.visits), "--payments", str(SIZES.payments)),
        *("--seed", str(SIZES.seed), "--sample", "60", "--memory-small", "60", "--repeat", "1"),
        *("--only", "ingest,triggers,reports,lists,policy,memory"),
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
    assert any(n.startswith("list: ") for n in names)
    policy = next(t for t in figures["timings"] if "policy on vs off" in t["workload"])
    # the same customers fire, and the policy holds some messages back: fewer sent than without it
    assert 0 < policy["crmkit_rows"]["messages"] < policy["baseline_rows"]["messages"]
    assert policy["crmkit_rows"]["firings"] == policy["baseline_rows"]["firings"] > 0
    assert all(t["same"] for t in figures["timings"])
    compared = [t for t in figures["timings"] if not t["workload"].startswith("all ")]
    assert all(t["empty"] == [] and t["crmkit_rows"] and t["baseline_rows"] for t in compared)
    assert all(n > 0 for t in compared for n in [*t["crmkit_rows"].values(), *t["baseline_rows"].values()])
    triggers = next(t for t in compared if t["workload"].startswith("fitness triggers"))
    assert len(triggers["crmkit_rows"]) == 13 and triggers["crmkit_rows"] == triggers["baseline_rows"]
    assert all(t["crmkit_s"] > 0 and t["baseline_s"] > 0 for t in figures["timings"])
    assert [m["task"] for m in figures["memory"]] == ["trigger evaluation", "report rendering (all, HTML)"]
    assert all(m["large"]["peak_mb"] >= m["large"]["start_mb"] > 0 for m in figures["memory"])
    assert figures["counts"]["customers"] == SIZES.customers
    for name in names:
        assert name in printed
    assert "compared (rows, or matches per trigger)" in printed and "fitness.stage_joined" in printed
    assert "EMPTY" not in printed and "proves nothing" not in printed
    assert "trigger evaluation" in printed


def test_the_list_workload_pages_through_the_same_members_as_plain_python(club: CRM) -> None:
    from sqlalchemy import select

    from bench.lists import busiest_club, list_workload

    home = busiest_club(club)
    table = club.extension_tables["fitness"]
    with club.session() as s:
        members = [cid for cid, h in s.execute(select(table.c.customer_id, table.c.home_club)) if h == home]
    workload = list_workload(club, page=7)
    ours, theirs = workload.crmkit(), workload.baseline()
    assert len(members) > 7 and [r["id"] for r in ours[1]] == sorted(members)
    assert ours[1] == theirs[1] == [club.customers.get(cid) for cid in sorted(members)]
    assert workload.same(ours, theirs) and ours[0] == -(-len(members) // 7)


def test_app_path_baseline_stores_the_same_rows_as_crmkit(target: data.Target) -> None:
    from bench.apppath import AppPath, AppSizes, check_same_rows

    app = AppPath(target, AppSizes(customers=25, activities=40))
    try:
        assert check_same_rows(app) == {"create": 25, "update": 25, "log": 40}
    finally:
        app.close()


def test_python_m_bench_app_path_stores_what_each_workload_claims(
    target: data.Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "app.json"
    argv = ["--only", "apppath", "--app-customers", "30", "--app-activities", "50", "--repeat", "1"]
    argv += ["--work-dir", str(target.work_dir), "--prefix", target.prefix, "--json", str(out)]
    if target.url:
        argv += ["--url", target.url]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    timings = json.loads(out.read_text())["timings"]
    assert [t["workload"] for t in timings] == [
        f"{verb} {n} {what}, {mode}"
        for verb, n, what in (("create", 30, "customers"), ("update", 30, "customers"), ("log", 50, "activities"))
        for mode in ("one outer transaction", "a transaction per call")
    ]
    # each side's result is what it stored, counted by plain SQL after the run
    expected = {
        "create": {
            "customers": 30,
            "normalised phones": 30,
            "extension rows": 30,
            "history rows": 30,
            "audit entries": 30,
        },
        "update": {"phones changed": 30, "goals changed": 30, "audit entries": 30},
        "log": {"activities": 50, "audit entries": 50},
    }
    for t in timings:
        wanted = expected[t["workload"].split()[0]]
        assert t["crmkit_rows"] == t["baseline_rows"] == wanted, t["workload"]
        assert t["same"] and t["empty"] == [] and t["calls"] == int(t["workload"].split()[1])
        assert t["crmkit_s"] > 0 and t["baseline_s"] > 0
    assert "crmkit app path on" in printed and "µs" in printed


def test_ingest_memory_measures_each_size_in_a_fresh_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import ingest_memory

    assert ingest_memory.main(["--rows", "300,900", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "900" in out and "peak at 900 rows / peak at 300 rows" in out
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["ingest_memory_300.db", "ingest_memory_900.db"]


def test_customer_import_baseline_stores_the_same_rows_as_crmkit(target: data.Target, tmp_path: Path) -> None:
    from bench.customer_import import check_same_rows, write_csv

    crm = target.fresh("custimport")
    try:
        compared = check_same_rows(crm, write_csv(tmp_path / "customers.csv", 200))
        assert compared == {"customers": 200, "history": 200, "claims": 400, "ledger": 200}
        with pytest.raises(AssertionError, match="proves nothing"):
            check_same_rows(crm, write_csv(tmp_path / "empty.csv", 0))
    finally:
        crm.close()
        target.drop("custimport")


def test_python_m_bench_times_the_customer_import(
    target: data.Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "import.json"
    argv = ["--only", "import", "--import-rows", "150", "--repeat", "1"]
    argv += ["--work-dir", str(target.work_dir), "--prefix", target.prefix, "--json", str(out)]
    if target.url:
        argv += ["--url", target.url]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    (timing,) = json.loads(out.read_text())["timings"]
    assert timing["workload"] == "import 150 customers from CSV" and timing["workload"] in printed
    assert timing["same"] and timing["empty"] == []
    assert timing["crmkit_rows"] == timing["baseline_rows"]
    assert timing["crmkit_rows"]["crm_customers"] == 150 and timing["crmkit_rows"]["crm_customer_claims"] == 300
    assert timing["crmkit_s"] > 0 and timing["baseline_s"] > 0


def test_python_m_bench_measures_the_import_memory_at_two_file_lengths(
    target: data.Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "memory.json"
    argv = ["--only", "importmemory", "--import-rows", "100", "--import-memory-rows", "400"]
    argv += ["--work-dir", str(target.work_dir), "--prefix", target.prefix, "--json", str(out)]
    if target.url:
        argv += ["--url", target.url]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    (figure,) = json.loads(out.read_text())["memory"]
    assert figure["task"] == "customer import (CSV)" and figure["unit"] == "lines"
    assert figure["small"]["created"] == 100 and figure["large"]["created"] == 400
    assert figure["large"]["peak_mb"] >= figure["large"]["start_mb"] > 0
    assert "customer import (CSV)" in printed and "400 lines" in printed
