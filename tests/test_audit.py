"""The audit log (``crm.audit``): an entry for every write path, in the write's transaction, chained so that
tampering shows."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text, update

from crmkit import CRM, AccessDenied, FieldSpec, NotFound, ValidationError
from crmkit.db.models import AuditEntry
from crmkit.testing import run_in_processes
from crmkit.triggers import TaskAction, Trigger

ANN = {"name": "Ann Audit", "email": "ann@audit.example", "phone": "+12025550111", "branch": "north"}


def _actions(crm: CRM, customer_id: int) -> list[str]:
    return [e["action"] for e in crm.audit.for_customer(customer_id)]


def _crm_chain(crm: CRM) -> list[dict[str, Any]]:
    with crm.session() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.customer_id == 0).order_by(AuditEntry.seq)).scalars()
        return [{"action": r.action, "entity_id": r.entity_id, "actor": r.actor} for r in rows]


def test_each_customer_write_path_leaves_one_entry_with_actor_and_changed_fields(crm: CRM) -> None:
    admin = crm.users.create({"name": "Ada", "role": "admin"})
    with crm.as_user(admin["id"]):
        ann = crm.customers.create(ANN)
        crm.customers.update(ann["id"], {"name": "Ann Changed", "campaign": "spring"})
        crm.customers.update(ann["id"], {"name": "Ann Changed"})  # nothing changes: nothing to record
        crm.lifecycle.move(ann["id"], "active", cause="bought a membership")
        crm.customers.add_contact(ann["id"], {"name": "Bob Partner", "role": "spouse"})
        crm.activities.log({"customer_id": ann["id"], "kind": "call", "direction": "inbound"})
        task = crm.tasks.create({"title": "Call back", "customer_id": ann["id"]})
        crm.tasks.complete(task["id"])
    entries = crm.audit.for_customer(ann["id"])
    assert [e["action"] for e in entries] == [
        "customer.created",
        "customer.updated",
        "customer.stage_moved",
        "contact.added",
        "activity.logged",
        "task.created",
        "task.done",
    ]
    assert [e["seq"] for e in entries] == list(range(1, 8))
    assert {(e["actor"], e["user_id"]) for e in entries} == {(f"user {admin['id']}", admin["id"])}
    created, updated, moved = entries[0]["changes"], entries[1]["changes"], entries[2]["changes"]
    assert created["name"] == [None, "Ann Audit"] and created["email"] == [None, "ann@audit.example"]
    assert updated == {"name": ["Ann Audit", "Ann Changed"], "campaign": [None, "spring"]}
    assert moved == {"stage": ["lead", "active"], "cause": "bought a membership"}
    assert all(e["customer_id"] == ann["id"] for e in entries)


def test_the_field_history_lists_every_change_of_a_field_with_who_and_when(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    for name in ("Ann B", "Ann C", "Ann D"):
        crm.customers.update(ann["id"], {"name": name})
    history = crm.audit.field_history(ann["id"], "name")
    assert [(h["old"], h["new"]) for h in history] == [
        (None, "Ann Audit"),
        ("Ann Audit", "Ann B"),
        ("Ann B", "Ann C"),
        ("Ann C", "Ann D"),
    ]
    assert {h["actor"] for h in history} == {"application"}
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)


def test_a_write_that_rolls_back_leaves_no_entry(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    before = len(crm.audit.for_customer(ann["id"]))
    with pytest.raises(RuntimeError), crm.transaction() as tx:
        crm.customers.update(ann["id"], {"name": "Never Stored"}, tx=tx)
        crm.lifecycle.move(ann["id"], "active", cause="never happened", tx=tx)
        assert len(crm.audit.for_customer(ann["id"], tx=tx)) == before + 2  # seen inside the unit of work
        raise RuntimeError("the caller gives up")
    assert len(crm.audit.for_customer(ann["id"])) == before
    with pytest.raises(Exception, match="email"):
        crm.customers.create({**ANN, "email": "not an email"})
    assert crm.audit.verify().ok


def test_a_failed_call_inside_a_unit_of_work_takes_its_entry_with_it(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    bea = crm.customers.create({"name": "Bea", "email": "bea@audit.example"})
    with crm.transaction() as tx:
        crm.customers.update(ann["id"], {"name": "Kept"}, tx=tx)
        with pytest.raises(Exception, match="duplicate customer"):
            crm.customers.update(bea["id"], {"email": "ann@audit.example"}, tx=tx)  # a duplicate: refused
    assert _actions(crm, ann["id"]) == ["customer.created", "customer.updated"]
    assert _actions(crm, bea["id"]) == ["customer.created"]


def test_bulk_paths_record_one_entry_per_batch_with_counts(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    rows = [
        {"customer_id": ann["id"], "kind": "visit", "occurred_at": f"2026-01-{d:02d}T10:00:00Z"} for d in range(1, 21)
    ]
    report = crm.activities.ingest(rows, batch_size=8)
    assert report.inserted == 20
    prepared = [crm.customers.prepare({"name": f"Bulk {i}"}) for i in range(5)]
    crm.customers.create_many(prepared)
    crm.tasks.create_many([{"title": f"T{i}", "customer_id": ann["id"]} for i in range(3)])
    chain = _crm_chain(crm)
    assert [e["action"] for e in chain] == [
        "activities.ingested",
        "activities.ingested",
        "activities.ingested",
        "customers.created",
        "tasks.created",
    ]
    with crm.session() as s:
        counts = [r.changes for r in s.scalars(select(AuditEntry).where(AuditEntry.action == "activities.ingested"))]
    assert sum(int(c.split('"inserted":')[1].split(",")[0]) for c in counts) == 20
    # the customer's own chain is not flooded with one entry per activity of the batch
    assert _actions(crm, ann["id"]) == ["customer.created"]


def test_an_import_and_its_revert_are_recorded(crm: CRM) -> None:
    admin = crm.users.create({"name": "Ada", "role": "admin"})
    ann = crm.customers.create(ANN)
    source = io.BytesIO(b"name,email\nAnn Imported,ann@audit.example\nNew One,new@audit.example\n")
    with crm.as_user(admin["id"]):
        report = crm.imports.customers(source, source_name="people.csv", mode="upsert")
        assert report.import_id is not None
        crm.imports.revert(report.import_id)
    actions = [e["action"] for e in _crm_chain(crm)]
    assert actions[:1] == ["user.created"]
    assert "import.done" in actions and actions[-1] == "import.reverted"
    history = crm.audit.field_history(ann["id"], "name")
    # the import's change of the name (from its own ledger), then the revert's restore (an update)
    assert [(h["action"], h["old"], h["new"]) for h in history][-2:] == [
        ("import.updated", "Ann Audit", "Ann Imported"),
        ("customer.updated", "Ann Imported", "Ann Audit"),
    ]


def test_merge_user_field_target_and_plugin_table_writes_are_recorded(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    dup = crm.customers.create({"name": "Ann Again", "email": "ann2@audit.example"})
    crm.customers.merge(ann["id"], dup["id"])
    assert _actions(crm, ann["id"])[-1] == "customer.merged"
    assert crm.audit.for_customer(ann["id"])[-1]["changes"] == {"merged_id": dup["id"]}
    # the duplicate is gone, its chain is kept and ends in the merge
    assert _actions(crm, dup["id"]) == ["customer.created", "customer.merged_into"]
    crm.fields.define(FieldSpec("shoe_size", "integer"))
    user = crm.users.create({"name": "Sam", "role": "operator"})
    plan = {"user_id": user["id"], "metric": "deals", "period_start": "2026-01-01", "period_end": "2026-01-31"}
    crm.targets.set({**plan, "planned": 3})
    actions = [e["action"] for e in _crm_chain(crm)]
    assert actions == ["field.defined", "user.created", "target.set"]


def test_tampering_with_an_entry_is_found_by_verify(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    for name in ("B", "C", "D"):
        crm.customers.update(ann["id"], {"name": name})
    assert crm.audit.verify().ok
    result = crm.audit.verify()
    assert result.entries == 4 and result.chains == 1
    table = AuditEntry.__table__
    with crm.engine.begin() as conn:  # someone edits an old value in the database
        conn.execute(
            update(table)
            .where(table.c.customer_id == ann["id"], table.c.seq == 2)
            .values(changes='{"name":["Ann Audit","Z"]}')
        )
    problems = [str(p) for p in crm.audit.verify().problems]
    assert problems == [f"customer {ann['id']}, entry 2: its changes are not what was written"]
    with crm.engine.begin() as conn:  # and covers it up by fixing the digest too
        conn.execute(update(table).where(table.c.customer_id == ann["id"], table.c.seq == 2).values(digest="0" * 64))
    assert "its columns do not give its hash" in str(crm.audit.verify().problems[-1])


def test_a_deleted_entry_and_a_changed_actor_are_found(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    for name in ("B", "C", "D"):
        crm.customers.update(ann["id"], {"name": name})
    table = AuditEntry.__table__
    with crm.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.customer_id == ann["id"], table.c.seq == 2))
        conn.execute(update(table).where(table.c.seq == 4).values(actor="someone else"))
    problems = [str(p) for p in crm.audit.verify().problems]
    assert f"customer {ann['id']}, entry 3: entries 2 to 2 are missing" in problems
    assert f"customer {ann['id']}, entry 3: does not follow the entry before it" in problems
    assert f"customer {ann['id']}, entry 4: its columns do not give its hash" in problems


def test_reading_the_log_needs_audit_read_and_keeps_to_the_scope_and_masks(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    south = crm.customers.create({"name": "Sue South", "branch": "south"})
    crm.customers.update(ann["id"], {"phone": "+12025550199"})
    operator = crm.users.create({"name": "Op", "role": "operator", "branch": "north"})
    manager = crm.users.create({"name": "Man", "role": "manager", "branch": "north"})
    with crm.as_user(operator["id"]), pytest.raises(AccessDenied, match="audit:read"):
        crm.audit.for_customer(ann["id"])
    with crm.as_user(manager["id"]):
        assert _actions(crm, ann["id"]) == ["customer.created", "customer.updated"]
        with pytest.raises(NotFound):
            crm.audit.for_customer(south["id"])
        seen = {e["customer_id"] for e in crm.audit.entries()}
        assert seen == {ann["id"]}
    analyst = crm.access.system("analyst", ["audit:read", "customers:read"])
    with crm.access.using(analyst):
        entries = crm.audit.for_customer(ann["id"])
        assert entries[1]["changes"] == {"phone": [None, None], "phone_normalized": [None, None]}
        text_of_all = repr(crm.audit.entries()) + repr(crm.audit.field_history(ann["id"]))
        assert entries and "2025550199" not in text_of_all and "Ann Audit" not in text_of_all


def test_entries_by_actor_and_action(crm: CRM) -> None:
    one = crm.users.create({"name": "One", "role": "operator"})
    two = crm.users.create({"name": "Two", "role": "operator"})
    with crm.as_user(one["id"]):
        crm.customers.create({"name": "By One"})
    with crm.as_user(two["id"]):
        crm.customers.create({"name": "By Two A"})
        crm.customers.create({"name": "By Two B"})
    by_two = crm.audit.entries(user_id=two["id"])
    assert [e["changes"]["name"][1] for e in by_two] == ["By Two B", "By Two A"]  # newest first
    assert len(crm.audit.entries(action="customer.created")) == 3
    assert len(crm.audit.entries(action="user.created")) == 2
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert crm.audit.entries(since=later) == []


def test_trigger_actions_are_recorded_as_the_system_actor_triggers(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    crm.customers.create({"name": "Bea", "email": "bea@audit.example"})
    admin = crm.users.create({"name": "Ada", "role": "admin"})
    crm.triggers.register(
        Trigger(
            "audit.welcome",
            condition=lambda q: q.customer.c.stage == "lead",
            task=TaskAction("Welcome {{ customer.name }}"),
            move_to="active",
        )
    )
    with crm.as_user(admin["id"]):  # the run acts as automation, whoever starts it
        crm.triggers.run(names=["audit.welcome"])
    with crm.session() as s:
        rows = s.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.changes).where(AuditEntry.actor == "triggers")
        ).all()
    # the firings, their tasks and their moves are bulk writes: an entry each, with the counts
    assert sorted(r.action for r in rows) == ["customers.stage_moved", "tasks.created", "trigger.fired"]
    assert all('"fired":2' in r.changes or '"created":2' in r.changes or '"moved":2' in r.changes for r in rows)
    assert _actions(crm, ann["id"]) == ["customer.created"]
    assert [m["cause"] for m in crm.lifecycle.history(ann["id"])][-1] == "trigger audit.welcome"


def test_a_bulk_move_is_one_entry_with_its_count(crm: CRM) -> None:
    ids = [crm.customers.create({"name": f"Lead {i}"})["id"] for i in range(4)]
    crm.lifecycle.move_many(ids, "active", cause="opening offer")
    chain = _crm_chain(crm)
    assert [e["action"] for e in chain] == ["customers.stage_moved"]
    with crm.session() as s:
        changes = s.scalar(select(AuditEntry.changes).where(AuditEntry.action == "customers.stage_moved"))
    assert changes is not None and '"moved":4' in changes


def _appender(database: tuple[str, dict[str, Any]], start: Any, worker: int, customer_id: int) -> int:
    crm = CRM(database[0], engine_options=database[1], load_entry_points=False)
    start()
    for i in range(15):
        crm.customers.update(customer_id, {"campaign": f"worker {worker} note {i}"})
    crm.close()
    return worker


def test_concurrent_writers_of_one_customer_keep_one_unbroken_chain(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    run_in_processes(_appender, crm, [(w, ann["id"]) for w in range(3)], timeout=120)
    entries = crm.audit.for_customer(ann["id"])
    assert len(entries) == 1 + 45
    assert [e["seq"] for e in entries] == list(range(1, 47))
    result = crm.audit.verify()
    assert result.ok and result.entries == 46


def _creator(database: tuple[str, dict[str, Any]], start: Any, worker: int) -> int:
    crm = CRM(database[0], engine_options=database[1], load_entry_points=False)
    start()
    for i in range(10):
        at = f"2026-02-{i + 1:02d}T0{worker}:00:00Z"
        crm.activities.ingest([{"customer_id": 1, "kind": "visit", "occurred_at": at}])
    crm.close()
    return worker


def test_concurrent_batches_share_the_crm_chain_without_a_break(crm: CRM) -> None:
    ann = crm.customers.create(ANN)
    assert ann["id"] == 1
    run_in_processes(_creator, crm, [(w,) for w in range(3)], timeout=120)
    chain = _crm_chain(crm)
    assert len(chain) == 30 and {e["action"] for e in chain} == {"activities.ingested"}
    assert crm.audit.verify().ok


def test_the_cli_verifies_the_log(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from crmkit.cli import main

    db = tmp_path / "cli.db"
    local = CRM(f"sqlite:///{db}", load_entry_points=False)
    local.create_schema()
    ann = local.customers.create(ANN)
    runner = CliRunner()
    out = runner.invoke(main, ["audit", "verify", "--url", f"sqlite:///{db}"])
    assert out.exit_code == 0 and "1 entries in 1 chains: intact" in out.output
    shown = runner.invoke(main, ["audit", "show", "--url", f"sqlite:///{db}", "--customer", str(ann["id"])])
    assert shown.exit_code == 0 and "customer.created" in shown.output
    with local.engine.begin() as conn:
        conn.execute(text("UPDATE crm_audit SET actor = 'x'"))
    local.close()
    broken = runner.invoke(main, ["audit", "verify", "--url", f"sqlite:///{db}"])
    assert broken.exit_code == 1 and "its columns do not give its hash" in broken.output


def test_bad_queries_of_the_log_get_crmkits_error_on_both_databases(crm: CRM) -> None:
    calls: list[Callable[[], object]] = [
        lambda: crm.audit.entries(action="bad\x00action"),
        lambda: crm.audit.entries(actor="x" * 101),
        lambda: crm.audit.entries(limit=0),
        lambda: crm.audit.entries(since="yesterday"),  # type: ignore[arg-type]
        lambda: crm.audit.field_history(limit=True),
    ]
    for call in calls:
        with pytest.raises(ValidationError):
            call()
