"""The retention trigger engine: conditions, windows, cooldowns, holdouts, actions, effectiveness."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from crmkit_fitness import FitnessPlugin
from probe import Probe
from sqlalchemy import BigInteger, func, literal, select, union_all

from crmkit import CRM, PluginError
from crmkit.cli import main
from crmkit.db import Customer, StageHistory, Task
from crmkit.db.models import OutboxMessage, TriggerFiring
from crmkit.triggers import Goal, MessageAction, TaskAction, Trigger
from crmkit.triggers.query import holdout_bucket, holdout_sql

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def crm(crm_factory: Any, probe: Probe) -> CRM:
    return crm_factory([probe])


def customer(crm: CRM, name: str, *, visits_days_ago: tuple[float, ...] = (), **fields: Any) -> int:
    cid = crm.customers.create({"name": name, **fields}, allow_duplicate=True)["id"]
    rows = [
        {"customer_id": cid, "kind": "visit", "occurred_at": (AS_OF - d * DAY).isoformat()} for d in visits_days_ago
    ]
    if rows:
        assert crm.activities.ingest(rows).ok
    return cid


def fired(crm: CRM, name: str) -> list[int]:
    with crm.session() as s:
        return sorted(s.scalars(select(TriggerFiring.customer_id).where(TriggerFiring.trigger == name)))


def names(crm: CRM, ids: list[int]) -> list[str]:
    return sorted(crm.customers.get(i)["name"] for i in ids)


def n_rows(crm: CRM, model: Any) -> int:
    with crm.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def only(crm: CRM, trigger: Trigger, as_of: dt.datetime = AS_OF) -> list[str]:
    crm.triggers.register(trigger)
    crm.triggers.run(as_of, names=[trigger.name])
    return names(crm, fired(crm, trigger.name))


# -- conditions ---------------------------------------------------------------------------------------


def test_plugin_field_condition(crm: CRM) -> None:
    customer(crm, "Low", score=1)
    customer(crm, "High", score=12)
    customer(crm, "Unknown")
    assert only(crm, Trigger("t.low", condition=lambda q: q.field("score") <= 2)) == ["Low"]


def test_count_in_window_excludes_its_start_and_anything_after_as_of(crm: CRM) -> None:
    customer(crm, "EdgeOut", visits_days_ago=(14,))  # exactly as_of - 14 days: outside (as_of-14d, as_of]
    customer(crm, "EdgeIn", visits_days_ago=(13.99,))
    customer(crm, "AtAsOf", visits_days_ago=(0,))
    customer(crm, "Future", visits_days_ago=(-1,))  # after as_of: not seen
    trigger = Trigger("t.visited", condition=lambda q: q.count("visit", within=dt.timedelta(days=14)) >= 1)
    assert only(crm, trigger) == ["AtAsOf", "EdgeIn"]


def test_frequency_drop_compares_two_windows(crm: CRM) -> None:
    # last 2 weeks vs the previous 6 weeks' fortnightly average: <= 50% is a drop
    customer(crm, "Dropped", visits_days_ago=(3, 20, 22, 25, 30, 35, 40))  # 1 recent vs 6/3 = 2 per fortnight
    customer(crm, "Steady", visits_days_ago=(2, 5, 20, 30, 40, 50))  # 2 recent vs 4/3
    customer(crm, "Never")

    def dropped(q: Any) -> Any:
        recent = q.count("visit", within=dt.timedelta(days=14))
        before = q.count("visit", within=dt.timedelta(days=56), until=dt.timedelta(days=14))
        return (before > 0) & (recent * 3 * 2 <= before)

    assert only(crm, Trigger("t.drop", condition=dropped)) == ["Dropped"]


def test_recency_of_last_activity(crm: CRM) -> None:
    customer(crm, "Gone", visits_days_ago=(25, 40))
    customer(crm, "Recent", visits_days_ago=(2, 40))
    customer(crm, "NeverCame")
    trigger = Trigger("t.absent", condition=lambda q: q.last("visit") <= q.ago(dt.timedelta(days=21)))
    assert only(crm, trigger) == ["Gone"]
    never = Trigger("t.never", condition=lambda q: ~q.has("visit"))
    assert only(crm, never) == ["NeverCame"]


def test_purchases_total_and_bookings_ahead(crm: CRM) -> None:
    big = customer(crm, "Big")
    small = customer(crm, "Small")
    booked = customer(crm, "Booked")
    for cid, amount in ((big, "300"), (small, "20"), (booked, "500")):
        crm.activities.log(
            {
                "customer_id": cid,
                "kind": "purchase",
                "amount": amount,
                "currency": "EUR",
                "occurred_at": (AS_OF - 5 * DAY).isoformat(),
            }
        )
    crm.activities.log(
        {"customer_id": booked, "kind": "visit", "status": "planned", "occurred_at": (AS_OF + 3 * DAY).isoformat()}
    )
    spenders = Trigger(
        "t.vip_no_booking",
        condition=lambda q: (q.total("purchase", within=dt.timedelta(days=30)) >= 100) & ~q.planned("visit"),
    )
    assert only(crm, spenders) == ["Big"]


def test_birthday_within_days_across_the_year_end(crm: CRM) -> None:
    customer(crm, "NewYear", birthday="1990-01-02")
    customer(crm, "Eve", birthday="1985-12-31")
    customer(crm, "Later", birthday="1990-01-10")
    customer(crm, "NoDate")
    trigger = Trigger("t.birthday", condition=lambda q: q.birthday_within(7))
    assert only(crm, trigger, as_of=dt.datetime(2026, 12, 28, 9, tzinfo=dt.UTC)) == ["Eve", "NewYear"]


def test_stage_filter_includes_sub_stages_and_time_in_stage(crm: CRM) -> None:
    trial = customer(crm, "Trial", stage="trial")
    active = customer(crm, "Active", stage="active")
    risky = customer(crm, "Risky", stage="active")
    crm.lifecycle.move(risky, "at_risk", cause="test")
    customer(crm, "Lead")
    everyone = Trigger("t.lead_stage", condition=lambda q: q.customer.c.id > 0, stages=("lead",))
    assert only(crm, everyone) == ["Lead", "Trial"]
    core_active = Trigger("t.active_stage", condition=lambda q: q.customer.c.id > 0, stages=("active",))
    assert only(crm, core_active) == ["Active", "Risky"]
    long_trial = Trigger("t.long_trial", condition=lambda q: q.in_stage_since(dt.timedelta(days=30)))
    assert trial not in fired(crm, "t.long_trial") and active not in fired(crm, "t.long_trial")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert "Trial" in only(crm, long_trial, as_of=later)


# -- idempotency and cooldown ---------------------------------------------------------------------------


def test_running_twice_fires_nothing_twice_and_cooldown_is_respected(crm: CRM) -> None:
    anna = customer(crm, "Anna", score=1)
    trigger = Trigger(
        "t.low",
        condition=lambda q: q.field("score") <= 2,
        cooldown=dt.timedelta(days=7),
        task=TaskAction("Call {{ customer.name }}"),
    )
    crm.triggers.register(trigger)
    assert crm.triggers.run(AS_OF)["t.low"].fired == 1
    assert crm.triggers.run(AS_OF)["t.low"].fired == 0
    assert crm.triggers.run(AS_OF + 6 * DAY)["t.low"].fired == 0
    assert crm.triggers.run(AS_OF - 6 * DAY)["t.low"].fired == 0  # a backfill inside the cooldown too
    assert crm.triggers.run(AS_OF + 7 * DAY)["t.low"].fired == 1
    assert fired(crm, "t.low") == [anna, anna]
    assert n_rows(crm, Task) == 2


def test_dry_run_counts_and_writes_nothing(crm: CRM) -> None:
    customer(crm, "A", score=1)
    customer(crm, "B", score=2)
    crm.triggers.register(Trigger("t.low", condition=lambda q: q.field("score") <= 2, task=TaskAction("x")))
    report = crm.triggers.run(AS_OF, dry_run=True)
    assert report["t.low"].matched == 2 and report.dry_run
    assert n_rows(crm, TriggerFiring) == 0 and n_rows(crm, Task) == 0


def test_concurrent_runners_fire_each_customer_once(crm: CRM) -> None:
    for i in range(60):
        customer(crm, f"C{i}", score=i % 3)
    crm.triggers.register(
        Trigger("t.race", condition=lambda q: q.field("score") == 0, task=TaskAction("Call {{ customer.name }}"))
    )
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def runner() -> None:
        try:
            barrier.wait()
            crm.triggers.run(AS_OF, batch_size=7)
        except BaseException as exc:  # reported below; a thread must not swallow it
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(fired(crm, "t.race")) == len(set(fired(crm, "t.race"))) == 20
    assert n_rows(crm, Task) == 20


# -- holdout ------------------------------------------------------------------------------------------


def test_holdout_is_deterministic_and_takes_no_action(crm: CRM, crm_factory: Any) -> None:
    ids = [customer(crm, f"C{i}", score=0) for i in range(200)]
    trigger = Trigger("t.hold", condition=lambda q: q.field("score") == 0, holdout=0.25, task=TaskAction("x"))
    crm.triggers.register(trigger)
    result = crm.triggers.run(AS_OF)["t.hold"]
    expected = sorted(i for i in ids if holdout_bucket("t.hold", i) < 2500)
    with crm.session() as s:
        held = sorted(s.scalars(select(TriggerFiring.customer_id).where(TriggerFiring.held_out.is_(True))))
        tasked = set(s.scalars(select(Task.customer_id)))
    assert held == expected
    assert result.held_out == len(expected) and result.fired == 200 - len(expected)
    assert 30 <= len(expected) <= 70  # about a quarter
    assert tasked.isdisjoint(held) and len(tasked) == result.fired


# -- actions ------------------------------------------------------------------------------------------


def test_task_explains_itself_with_evidence(crm: CRM) -> None:
    owner = crm.users.create({"name": "Coach"})
    anna = customer(crm, "Anna", visits_days_ago=(12, 30), score=2, owner_id=owner["id"])
    trigger = Trigger(
        "t.balance",
        condition=lambda q: q.field("score") <= 2,
        priority=80,
        task=TaskAction(
            "Renewal call: {{ customer.name }}",
            "{{ customer.name }}: {{ customer.score }} sessions left, last visit {{ days_since(last_visit) }} days ago",
            due_in=dt.timedelta(hours=4),
        ),
        evidence={"last_visit": lambda q: q.last("visit")},
    )
    crm.triggers.register(trigger)
    crm.triggers.run(AS_OF)
    [task] = crm.tasks.open(customer_id=anna)
    assert task["title"] == "Renewal call: Anna"
    assert task["reason"] == "Anna: 2 sessions left, last visit 12 days ago"
    assert (task["assignee_id"], task["priority"], task["source"]) == (owner["id"], 80, "trigger:t.balance")
    assert task["due_at"] == (AS_OF + dt.timedelta(hours=4)).isoformat()
    with crm.session() as s:
        assert task["source_id"] == str(s.scalar(select(TriggerFiring.id)))


def test_move_action_respects_declared_transitions(crm: CRM) -> None:
    slipping = customer(crm, "Slipping", stage="active", visits_days_ago=(30,))
    lead = customer(crm, "Lead", visits_days_ago=(30,))
    trigger = Trigger("t.risk", condition=lambda q: q.last("visit") <= q.ago(dt.timedelta(days=21)), move_to="at_risk")
    crm.triggers.register(trigger)
    report = crm.triggers.run(AS_OF)
    assert report["t.risk"].fired == 2
    assert crm.customers.get(slipping)["stage"] == "at_risk"
    assert crm.customers.get(lead)["stage"] == "lead"  # lead -> at_risk is not declared: left alone
    created, moved = crm.lifecycle.history(slipping)
    assert (moved["from_stage"], moved["to_stage"], moved["cause"]) == ("active", "at_risk", "trigger t.risk")
    # as_of, but never before the previous move
    assert moved["at"] == max(AS_OF, dt.datetime.fromisoformat(created["at"])).isoformat()


def test_messages_go_through_the_outbox_after_commit(crm: CRM, probe: Probe) -> None:
    for name in ("Anna", "FAIL"):  # both agreed to offers by SMS: the contact policy lets them through
        cid = customer(crm, name, score=1)
        crm.consents.give(cid, "sms", "marketing", source="sign-up form", at=AS_OF - dt.timedelta(days=30))
    crm.triggers.register(
        Trigger(
            "t.sms",
            condition=lambda q: q.field("score") <= 2,
            message=MessageAction("sms", "Hi {{ customer.name }}, we miss you!"),
        )
    )
    crm.triggers.run(AS_OF)
    assert probe.sent[-1:] == ["sms to 1: Hi Anna, we miss you!"]
    [pending] = crm.outbox.pending()
    assert "FAIL" in pending["body"] and pending["attempts"] == 1 and "gateway down" in pending["error"]
    assert n_rows(crm, OutboxMessage) == 2


def test_an_action_that_raises_rolls_back_only_its_firing(crm: CRM, probe: Probe) -> None:
    good = [customer(crm, f"Good{i}", score=1) for i in range(5)]
    bad = customer(crm, "Bad", score=1)

    mailed: list[str] = []

    def issue_coupon(tx: Any, firing: Any) -> None:
        tx.after_commit(lambda: mailed.append(firing["customer"]["name"]))
        if firing["customer"]["name"] == "Bad":
            raise ValueError("coupon service refused")

    crm.triggers.register(
        Trigger(
            "t.coupon",
            condition=lambda q: q.field("score") <= 2,
            task=TaskAction("Coupon for {{ customer.name }}"),
            call=issue_coupon,
        )
    )
    result = crm.triggers.run(AS_OF, batch_size=4)["t.coupon"]
    assert (result.fired, result.failed) == (5, 1)
    assert result.errors == (f"customer {bad}: ValueError: coupon service refused",)
    assert fired(crm, "t.coupon") == good
    with crm.session() as s:
        task_customers = list(s.scalars(select(Task.customer_id)))
    assert sorted(c for c in task_customers if c is not None) == good and len(task_customers) == len(good)
    assert sorted(i for _, ids in probe.of("fired") for i in ids) == good
    assert sorted(mailed) == sorted(f"Good{i}" for i in range(5))  # once each, nothing for the rolled-back one


def test_a_trigger_that_fails_does_not_stop_the_others(crm: CRM) -> None:
    customer(crm, "VETO-TRIGGER", score=1)  # the probe's trigger_fired hook raises for this one
    customer(crm, "Fine", score=1)
    crm.triggers.register(Trigger("t.a", condition=lambda q: q.field("score") <= 2, priority=90))
    crm.triggers.register(Trigger("t.b", condition=lambda q: q.field("score") <= 2, priority=10))
    report = crm.triggers.run(AS_OF, names=["t.a", "t.b"])
    assert [(r.trigger, r.fired, r.failed) for r in report.results] == [("t.a", 1, 1), ("t.b", 1, 1)]
    assert names(crm, fired(crm, "t.b")) == ["Fine"]


def test_the_template_sees_plugin_fields_and_fails_loudly_on_typos(crm: CRM) -> None:
    customer(crm, "Anna", score=1, tier="gold")
    crm.triggers.register(
        Trigger("t.typo", condition=lambda q: q.field("score") <= 2, task=TaskAction("{{ customer.nmae }}"))
    )
    result = crm.triggers.run(AS_OF)["t.typo"]
    assert result.failed == 1 and "nmae" in result.errors[0]
    assert n_rows(crm, Task) == 0


# -- declarations ---------------------------------------------------------------------------------------


def test_bad_trigger_declarations_fail_at_load(crm: CRM) -> None:
    with pytest.raises(PluginError, match="unknown stage 'gold'"):
        crm.triggers.register(Trigger("t.x", condition=lambda q: q.customer.c.id > 0, stages=("gold",)))
    with pytest.raises(PluginError, match="cannot move to unknown stage"):
        crm.triggers.register(Trigger("t.x", condition=lambda q: q.customer.c.id > 0, move_to="vip"))
    with pytest.raises(PluginError, match="goal kind 'renewal'"):
        crm.triggers.register(Trigger("t.x", condition=lambda q: q.customer.c.id > 0, goal=Goal(("renewal",))))
    with pytest.raises(PluginError, match="bad template"):
        crm.triggers.register(Trigger("t.x", condition=lambda q: q.customer.c.id > 0, task=TaskAction("{{ oops")))
    with pytest.raises(PluginError, match="already declared"):
        crm.triggers.register(Trigger("probe.ping", condition=lambda q: q.customer.c.id > 0))
    with pytest.raises(ValueError):
        Trigger("Bad Name", condition=lambda q: q.customer.c.id > 0)
    with pytest.raises(ValueError):
        Trigger("t.x", condition=lambda q: q.customer.c.id > 0, holdout=1.0)


def test_plugin_triggers_run_like_any_other(crm: CRM) -> None:
    customer(crm, "Champion", score=15)
    customer(crm, "Beginner", score=1)
    crm.triggers.run(AS_OF)
    assert names(crm, fired(crm, "probe.ping")) == ["Champion"]
    assert crm.tasks.open()[0]["reason"] == "score 15"


# -- effectiveness and next best action -------------------------------------------------------------------


def test_effectiveness_counts_conversions_within_the_goal_window(crm: CRM) -> None:
    ids = [customer(crm, f"C{i}", score=0) for i in range(40)]
    trigger = Trigger(
        "t.renew",
        condition=lambda q: q.field("score") == 0,
        holdout=0.5,
        goal=Goal(("purchase",), window=dt.timedelta(days=14)),
    )
    crm.triggers.register(trigger)
    crm.triggers.run(AS_OF)
    with crm.session() as s:
        held = set(s.scalars(select(TriggerFiring.customer_id).where(TriggerFiring.held_out.is_(True))))
    contacted = [i for i in ids if i not in held]
    control = sorted(held)

    def buy(cid: int, days: float) -> None:
        crm.activities.log(
            {
                "customer_id": cid,
                "kind": "purchase",
                "amount": "50",
                "currency": "EUR",
                "occurred_at": (AS_OF + days * DAY).isoformat(),
            }
        )

    for cid in contacted[:6]:
        buy(cid, 3)
    buy(contacted[6], 15)  # after the window: not a conversion
    buy(contacted[7], -1)  # before the firing: not a conversion
    buy(control[0], 1)
    [e] = crm.triggers.effectiveness(names=["t.renew"])
    assert (e.fired, e.converted, e.held_out, e.held_out_converted) == (len(contacted), 6, len(control), 1)
    assert e.conversion_rate == pytest.approx(6 / len(contacted))
    assert e.uplift == pytest.approx(6 / len(contacted) - 1 / len(control))
    assert crm.triggers.effectiveness(names=["t.renew"], since=AS_OF + DAY)[0].fired == 0


def test_next_best_actions_rank_open_tasks_per_person(crm: CRM) -> None:
    ann = crm.users.create({"name": "Ann"})["id"]
    bob = crm.users.create({"name": "Bob"})["id"]
    make = crm.tasks.create
    make({"title": "overdue", "assignee_id": ann, "due_at": (AS_OF - 2 * DAY).isoformat(), "priority": 10})
    make(
        {
            "title": "urgent today",
            "assignee_id": ann,
            "due_at": (AS_OF + dt.timedelta(hours=3)).isoformat(),
            "priority": 90,
        }
    )
    make({"title": "tomorrow", "assignee_id": ann, "due_at": (AS_OF + DAY).isoformat(), "priority": 99})
    make({"title": "whenever", "assignee_id": ann, "priority": 10})
    make({"title": "bob's", "assignee_id": bob, "due_at": AS_OF.isoformat()})
    actions = crm.tasks.next_actions(as_of=AS_OF)
    assert [t["title"] for t in actions[ann]] == ["urgent today", "overdue", "whenever"]
    assert [t["title"] for t in actions[bob]] == ["bob's"]
    assert [t["title"] for t in crm.tasks.next_actions(as_of=AS_OF, assignee_id=ann, limit=1)[ann]] == ["urgent today"]


# -- command line ---------------------------------------------------------------------------------------


def cli_url(crm: CRM) -> str:
    """The test's database as a URL the CLI can open (on PostgreSQL, with this test's schema)."""
    url = crm.engine.url
    if crm.engine.dialect.name == "postgresql":
        with crm.engine.connect() as conn:
            schema = conn.exec_driver_sql("select current_schema()").scalar()
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def test_cli_lists_runs_and_reports(crm: CRM) -> None:
    args = ["--url", cli_url(crm), "--no-plugins", "--plugin", "probe:Probe"]
    customer(crm, "Champion", score=15)
    runner = CliRunner()
    listed = runner.invoke(main, ["triggers", "list", *args])
    assert listed.exit_code == 0, listed.output
    assert "probe.ping" in listed.output
    dry = runner.invoke(main, ["triggers", "run", *args, "--as-of", "2026-06-15", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "(dry run)" in dry.output and n_rows(crm, TriggerFiring) == 0
    real = runner.invoke(main, ["triggers", "run", *args, "--as-of", "2026-06-15T12:00:00"])
    assert real.exit_code == 0, real.output
    row = next(line for line in real.output.splitlines() if line.startswith("probe.ping"))
    assert row.split() == ["probe.ping", "1", "0", "0"]
    eff = runner.invoke(main, ["triggers", "effectiveness", *args])
    assert eff.exit_code == 0, eff.output
    todo = runner.invoke(main, ["tasks", "next", *args, "--as-of", "2026-06-16"])
    assert todo.exit_code == 0, todo.output
    assert "unassigned:" in todo.output and "Ping Champion" in todo.output and "score 15" in todo.output
    bad = runner.invoke(main, ["triggers", "run", *args, "--as-of", "tomorrow"])
    assert bad.exit_code == 2 and "not an ISO date" in bad.output


def test_customers_table_is_not_loaded_into_python(crm: CRM) -> None:
    # the evaluation is a single INSERT ... SELECT: count the statements touching crm_customers
    from sqlalchemy import event

    for i in range(30):
        customer(crm, f"C{i}", score=i)
    crm.triggers.register(Trigger("t.sql", condition=lambda q: q.field("score") < 0))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(crm.engine, "before_cursor_execute", record)
    try:
        crm.triggers.run(AS_OF, names=["t.sql"])
    finally:
        event.remove(crm.engine, "before_cursor_execute", record)
    touching = [s for s in statements if "crm_customers" in s]
    assert len(touching) == 1 and touching[0].lstrip().upper().startswith("INSERT INTO CRM_TRIGGER_FIRINGS")
    assert n_rows(crm, Customer) == 30 and n_rows(crm, StageHistory) == 30


# -- holdout groups of different triggers ---------------------------------------------------------------

#: The fitness edition's trigger names (retention and stage triggers), as its plugin declares them.
FITNESS_TRIGGERS = tuple(t.name for t in FitnessPlugin().crmkit_register_triggers())
CUSTOMERS = 20_000


def _sql_buckets(crm: CRM, trigger: str, ids: Any) -> dict[int, int]:
    """The buckets the database computes for ``ids`` (a one-column selectable of customer ids)."""
    with crm.engine.connect() as conn:
        return dict(conn.execute(select(ids.c.id, holdout_sql(trigger, ids.c.id))).all())


def _numbers(n: int) -> Any:
    """1..n as a table, in SQL: a recursive CTE both databases run."""
    numbers = select(literal(1, BigInteger()).label("id")).cte("numbers", recursive=True)
    return numbers.union_all(select(numbers.c.id + 1).where(numbers.c.id < n))


def test_the_database_computes_the_holdout_bucket_python_computes(crm: CRM) -> None:
    ids = _numbers(CUSTOMERS)
    for trigger in ("t.hold", "fitness.birthday", "ünïcode trigger"):
        in_sql = _sql_buckets(crm, trigger, ids)
        assert len(in_sql) == CUSTOMERS
        assert in_sql == {i: holdout_bucket(trigger, i) for i in range(1, CUSTOMERS + 1)}
    # large ids: every bit pattern of a BIGINT, where SQLite would turn an overflowing product into a float
    large = [2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**40 + 12345, 2**53 + 1, 2**62 + 7, 2**63 - 1]
    large += [(2**63 - 1) // k for k in (3, 7, 11, 1001, 65537)]
    values = union_all(*(select(literal(i, BigInteger()).label("id")) for i in large)).subquery()
    in_sql = _sql_buckets(crm, "fitness.birthday", values)
    assert in_sql == {i: holdout_bucket("fitness.birthday", i) for i in large}
    assert all(isinstance(b, int) and 0 <= b < 10_000 for b in in_sql.values())


def test_holdout_groups_of_different_triggers_are_independent(crm: CRM) -> None:
    """With a 10% holdout over 20,000 customers each group should hold about 2,000 and each pair of groups
    share about 200, as independent draws would: a customer is in a group with probability p = 0.1, in both
    with p**2 = 0.01. The counts are binomial, so the bounds are the mean plus or minus 6 standard
    deviations (group: 2,000 +- 255; pair: 200 +- 84): an independent hash lands outside them with a
    chance of about 1e-9 per count, while the old linear bucket gave pairs sharing 0 and 1,309. The hash is
    fixed, so this test is deterministic."""
    ids = _numbers(CUSTOMERS)
    share = 0.1
    groups = {}
    assert len(FITNESS_TRIGGERS) == 13  # 78 pairs to compare
    for trigger in FITNESS_TRIGGERS:
        buckets = _sql_buckets(crm, trigger, ids)
        groups[trigger] = {i for i, b in buckets.items() if b < share * 10_000}
        assert groups[trigger] == {i for i in range(1, CUSTOMERS + 1) if holdout_bucket(trigger, i) < 1000}
    size_mean, size_sd = CUSTOMERS * share, (CUSTOMERS * share * (1 - share)) ** 0.5
    both = share * share
    pair_mean, pair_sd = CUSTOMERS * both, (CUSTOMERS * both * (1 - both)) ** 0.5
    for trigger, group in groups.items():
        assert abs(len(group) - size_mean) <= 6 * size_sd, (trigger, len(group))
    overlaps = {(a, b): len(groups[a] & groups[b]) for a, b in itertools.combinations(FITNESS_TRIGGERS, 2)}
    assert len(overlaps) == 78
    outside = {pair: n for pair, n in overlaps.items() if abs(n - pair_mean) > 6 * pair_sd}
    assert not outside, outside
    # and not merely within bounds one by one: on average they are what independence predicts
    assert abs(sum(overlaps.values()) / len(overlaps) - pair_mean) < 3 * pair_sd


def test_a_statement_is_built_once_and_run_for_any_as_of(crm: CRM) -> None:
    quiet = customer(crm, "Quiet", visits_days_ago=(20,))
    busy = customer(crm, "Busy", visits_days_ago=(2,))
    crm.triggers.register(Trigger("t.absent", condition=lambda q: ~q.has("visit", within=10 * DAY)))
    # a condition that bakes as_of into its SQL itself cannot be reused: it is built for every as_of
    crm.triggers.register(
        Trigger("t.baked", condition=lambda q: q.customer.c.created_at <= q.at(q.as_of - dt.timedelta(0, 1)))
    )

    def fired(name: str, at: dt.datetime) -> set[int]:
        with crm.session() as s:
            return set(s.scalars(crm.triggers.matching(name, at)))

    assert fired("t.absent", AS_OF) == {quiet}
    # 15 days earlier: Quiet's visit was 5 days before, Busy's still to come
    assert fired("t.absent", AS_OF - 15 * DAY) == {busy}
    assert fired("t.absent", AS_OF + 30 * DAY) == {quiet, busy}
    assert crm.triggers._built["t.absent"] is not None
    assert fired("t.baked", AS_OF + 365 * DAY) == {quiet, busy}
    assert fired("t.baked", dt.datetime(2001, 1, 1, tzinfo=dt.UTC)) == set()
    assert crm.triggers._built["t.baked"] is None
