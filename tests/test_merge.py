"""Merging duplicates: every related row moves to the survivor, and the merge is recorded."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from probe import Probe, ProbeNote
from sqlalchemy import func, select

from crmkit import CRM, DuplicateCustomerError, FieldSpec, NotFound, ValidationError
from crmkit.db import Activity, Contact, Customer, Merge, StageHistory, Task
from crmkit.db.models import CustomerClaim, TriggerFiring
from crmkit.triggers import Trigger


@pytest.fixture
def pcrm(crm_factory: Any, probe: Probe) -> CRM:
    crm = crm_factory([probe])
    crm.fields.define(FieldSpec("nickname"))
    return crm


def test_merge_moves_everything_and_fills_gaps(pcrm: CRM, probe: Probe) -> None:
    agent = pcrm.users.create({"name": "Agent"})
    keep = pcrm.customers.create({"name": "Anna Berg", "email": "anna@example.com", "tier": "gold"})
    dupe = pcrm.customers.create(
        {
            "name": "A. Berg",
            "email": "other@example.com",
            "phone": "+1 415 555 0100",
            "birthday": "1990-01-02",
            "tier": "silver",
            "score": 9,
            "nickname": "Annie",
        }
    )
    pcrm.lifecycle.move(dupe["id"], "active", cause="bought")
    contact = pcrm.customers.add_contact(dupe["id"], {"name": "Husband"})
    pcrm.activities.log({"customer_id": dupe["id"], "kind": "note", "subject": "likes mornings"})
    pcrm.activities.log({"customer_id": keep["id"], "kind": "note", "subject": "first"})
    pcrm.tasks.create({"title": "call", "customer_id": dupe["id"], "assignee_id": agent["id"]})

    merged = pcrm.customers.merge(keep["id"], dupe["id"], actor_id=agent["id"])

    assert merged["email"] == "anna@example.com"  # the survivor's values win
    assert merged["phone_normalized"] == "+14155550100" and merged["birthday"] == "1990-01-02"  # gaps filled
    assert (merged["tier"], merged["score"], merged["nickname"]) == ("gold", 9, "Annie")
    with pcrm.session() as s:
        assert s.get(Customer, dupe["id"]) is None
        for model in (Activity, Task, StageHistory, Contact, ProbeNote):
            owners = set(s.scalars(select(model.customer_id)))
            assert owners == {keep["id"]}, model.__name__
        assert s.get(Contact, contact["id"]).customer_id == keep["id"]
        record = s.scalars(select(Merge)).one()
        assert (record.survivor_id, record.merged_id, record.actor_id) == (keep["id"], dupe["id"], agent["id"])
        assert record.snapshot["name"] == "A. Berg" and record.snapshot["tier"] == "silver"
        assert record.moved["crm_activities.customer_id"] == 1
        assert record.moved["probe_notes.customer_id"] == 1
    assert len(pcrm.activities.for_customer(keep["id"])) == 2
    assert probe.of("merged") == [(keep["id"], dupe["id"])]
    assert pcrm.customers.duplicate_groups() == []


def test_merging_into_itself_or_a_missing_customer_fails(pcrm: CRM) -> None:
    anna = pcrm.customers.create({"name": "Anna"})
    with pytest.raises(ValidationError):
        pcrm.customers.merge(anna["id"], anna["id"])
    with pytest.raises(NotFound):
        pcrm.customers.merge(anna["id"], 999)
    assert pcrm.customers.count() == 1


def test_a_chain_of_merges_keeps_pointing_at_the_final_survivor(pcrm: CRM) -> None:
    a, b, c = (pcrm.customers.create({"name": n}) for n in "ABC")
    pcrm.customers.merge(b["id"], c["id"])
    pcrm.customers.merge(a["id"], b["id"])
    with pcrm.session() as s:
        assert set(s.scalars(select(Merge.survivor_id))) == {a["id"]}
        assert sorted(s.scalars(select(Merge.merged_id))) == [b["id"], c["id"]]


def test_merge_re_points_the_apps_own_tables(crm_factory: Any) -> None:
    from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, insert

    app_tables = MetaData()
    Customer.__table__.to_metadata(app_tables)  # what the app's own foreign key points at
    orders = Table(
        "shop_orders",
        app_tables,
        Column("id", Integer, primary_key=True),
        Column("customer_id", Integer, ForeignKey("crm_customers.id"), nullable=False),
    )
    crm = crm_factory()
    crm_with_app = CRM(engine=crm.engine, load_entry_points=False, related_tables=[orders])
    orders.create(crm.engine)
    keep, dupe = (crm_with_app.customers.create({"name": n}) for n in ("Keep", "Dupe"))
    with crm.engine.begin() as conn:
        conn.execute(insert(orders), [{"customer_id": dupe["id"]}, {"customer_id": keep["id"]}])
    crm_with_app.customers.merge(keep["id"], dupe["id"])
    with crm.engine.connect() as conn:
        assert set(conn.execute(select(orders.c.customer_id)).scalars()) == {keep["id"]}
    orders.drop(crm.engine)


def test_ids_of_merged_customers_are_never_reused(pcrm: CRM) -> None:
    a, b = (pcrm.customers.create({"name": n}) for n in "AB")
    pcrm.customers.merge(a["id"], b["id"])
    assert pcrm.customers.create({"name": "C"})["id"] > b["id"]


def test_a_sqlite_engine_passed_in_enforces_foreign_keys(tmp_path: Any) -> None:
    from sqlalchemy import create_engine, text

    crm = CRM(engine=create_engine(f"sqlite:///{tmp_path / 'e.db'}"), load_entry_points=False)
    crm.create_schema()
    with crm.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    CRM(engine=crm.engine, load_entry_points=False)  # a second CRM on it does not add the hooks twice


# -- merging after triggers ran, idempotency keys, histories, claims ----------------------------------

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def _firings(crm: CRM) -> list[tuple[str, int, str, int]]:
    with crm.session() as s:
        rows = s.execute(
            select(TriggerFiring.trigger, TriggerFiring.customer_id, TriggerFiring.window_key, TriggerFiring.id)
        )
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


def test_merge_after_both_fired_the_same_trigger_keeps_one_firing_per_window(pcrm: CRM) -> None:
    keep = pcrm.customers.create({"name": "Keep"})
    dupe = pcrm.customers.create({"name": "Dupe"})
    pcrm.triggers.register(Trigger("t.everyone", condition=lambda q: q.customer.c.id > 0))
    pcrm.triggers.register(Trigger("t.dupe_only", condition=lambda q: q.customer.c.name == "Dupe"))
    pcrm.triggers.run(AS_OF)
    before = _firings(pcrm)
    assert [(t, c) for t, c, _, _ in before] == [
        ("t.dupe_only", dupe["id"]),
        ("t.everyone", keep["id"]),
        ("t.everyone", dupe["id"]),
    ]
    keeps_own = next(f for f in before if f[:2] == ("t.everyone", keep["id"]))
    dupes_only = next(f for f in before if f[0] == "t.dupe_only")

    pcrm.customers.merge(keep["id"], dupe["id"])

    # the survivor's firing of t.everyone is kept, the duplicate's copy of it dropped; the other moves
    assert _firings(pcrm) == sorted([keeps_own, ("t.dupe_only", keep["id"], dupes_only[2], dupes_only[3])])
    record = pcrm.customers.merges(keep["id"])[0]
    assert record["moved"]["crm_trigger_firings.customer_id"] == 1
    assert record["moved"]["dropped"] == {"crm_trigger_firings.customer_id": 1}
    # the next run in the same window fires nothing twice for the survivor
    pcrm.triggers.run(AS_OF + dt.timedelta(hours=1))
    assert _firings(pcrm) == sorted([keeps_own, ("t.dupe_only", keep["id"], dupes_only[2], dupes_only[3])])


def _add_activity(crm: CRM, customer_id: int, source: str | None, external_id: str | None, subject: str) -> int:
    with crm.session() as s:
        row = Activity(
            customer_id=customer_id,
            kind="visit",
            channel="in_person",
            status="done",
            subject=subject,
            occurred_at=AS_OF,
            source=source,
            external_id=external_id,
        )
        s.add(row)
        s.commit()
        return row.id


def test_merge_keeps_one_activity_per_idempotency_key(pcrm: CRM) -> None:
    keep = pcrm.customers.create({"name": "Keep"})["id"]
    dupe = pcrm.customers.create({"name": "Dupe"})["id"]
    keep_gate1 = _add_activity(pcrm, keep, "turnstile", "gate-1", "keep's copy")
    _add_activity(pcrm, dupe, "turnstile", "gate-1", "dupe's copy")  # the same check-in recorded twice
    dupe_gate2 = _add_activity(pcrm, dupe, "turnstile", "gate-2", "only the dupe")
    dupe_pbx1 = _add_activity(pcrm, dupe, "pbx", "gate-1", "another source, same id")
    keep_note = _add_activity(pcrm, keep, None, None, "no key")
    dupe_note = _add_activity(pcrm, dupe, None, None, "no key either")  # NULLs never clash

    pcrm.customers.merge(keep, dupe)

    with pcrm.session() as s:
        rows = s.execute(select(Activity.id, Activity.customer_id)).all()
    assert sorted(rows) == sorted((i, keep) for i in (keep_gate1, dupe_gate2, dupe_pbx1, keep_note, dupe_note))
    moved = pcrm.customers.merges(keep)[0]["moved"]
    assert moved["crm_activities.customer_id"] == 3
    assert moved["dropped"] == {"crm_activities.customer_id": 1}


def test_the_survivors_stage_history_stays_its_own_and_the_duplicates_is_kept_in_the_merge(pcrm: CRM) -> None:
    keep = pcrm.customers.create({"name": "Keep"})["id"]
    dupe = pcrm.customers.create({"name": "Dupe"})["id"]
    # interleaved in time: merged into one table, the two timelines would mix
    pcrm.lifecycle.move(dupe, "active", cause="bought too")
    pcrm.lifecycle.move(keep, "active", cause="bought")
    pcrm.lifecycle.move(dupe, "loyal", cause="regular")
    keeps_history = pcrm.lifecycle.history(keep)
    dupes_history = pcrm.lifecycle.history(dupe)
    assert len(keeps_history) == 2 and len(dupes_history) == 3

    pcrm.customers.merge(keep, dupe)

    assert pcrm.lifecycle.history(keep) == keeps_history
    assert pcrm.customers.get(keep)["stage"] == "active"
    with pcrm.session() as s:
        assert s.scalar(select(func.count()).select_from(StageHistory)) == 2
    [record] = pcrm.customers.merges(keep)
    assert record["merged_id"] == dupe
    assert record["history"] == [{k: v for k, v in h.items() if k != "customer_id"} for h in dupes_history]
    assert [h["to_stage"] for h in record["history"]] == ["lead", "active", "loyal"]


def test_merges_chain_and_every_history_stays_readable(pcrm: CRM) -> None:
    a, b, c = (pcrm.customers.create({"name": n})["id"] for n in "ABC")
    pcrm.lifecycle.move(b, "active", cause="b bought")
    pcrm.lifecycle.move(a, "lost", cause="a left")
    c_history = pcrm.lifecycle.history(c)

    pcrm.customers.merge(a, b)  # A <- B
    pcrm.customers.merge(c, a)  # C <- A

    records = pcrm.customers.merges(c)
    assert [r["merged_id"] for r in records] == [b, a]
    assert [h["cause"] for h in records[0]["history"]] == ["created", "b bought"]
    assert [h["cause"] for h in records[1]["history"]] == ["created", "a left"]  # A's own, not B's
    assert records[1]["snapshot"]["name"] == "A"
    assert pcrm.lifecycle.history(c) == c_history
    assert pcrm.customers.merges(a) == []


def test_merges_of_a_bad_id_is_a_validation_error(pcrm: CRM) -> None:
    for bad in ("x", None, True):
        with pytest.raises(ValidationError):
            pcrm.customers.merges(bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            pcrm.customers.merge(1, bad)  # type: ignore[arg-type]
    # beyond the id column's range no customer can exist, on either database
    assert pcrm.customers.merges(2**31) == []
    with pytest.raises(NotFound):
        pcrm.customers.merge(1, 2**40)


def test_merge_moves_the_claims_of_the_values_the_survivor_gains(crm: CRM) -> None:
    keep = crm.customers.create({"name": "Keep", "email": "keep@example.com"})["id"]
    dupe = crm.customers.create({"name": "Dupe", "email": "dupe@example.com", "phone": "(415) 555-0100"})["id"]
    crm.customers.merge(keep, dupe)
    with crm.session() as s:
        claims = sorted(
            tuple(r) for r in s.execute(select(CustomerClaim.kind, CustomerClaim.value, CustomerClaim.customer_id))
        )
    # the survivor keeps its own email; the duplicate's phone comes with its claim; its email goes
    assert claims == [("email", "keep@example.com", keep), ("phone", "+14155550100", keep)]
    with pytest.raises(DuplicateCustomerError) as err:
        crm.customers.create({"name": "Again", "phone": "+1 415 555 0100"})
    assert err.value.existing_ids == [keep]


def test_merge_drops_clashing_rows_of_the_apps_own_tables_too(crm_factory: Any) -> None:
    from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, UniqueConstraint, insert

    app_tables = MetaData()
    Customer.__table__.to_metadata(app_tables)
    vouchers = Table(
        "shop_vouchers",
        app_tables,
        Column("id", Integer, primary_key=True),
        Column("customer_id", Integer, ForeignKey("crm_customers.id"), nullable=False),
        Column("code", String(20)),
        UniqueConstraint("customer_id", "code"),
    )
    crm = crm_factory()
    crm_with_app = CRM(engine=crm.engine, load_entry_points=False, related_tables=[vouchers])
    vouchers.create(crm.engine)
    keep, dupe = (crm_with_app.customers.create({"name": n})["id"] for n in ("Keep", "Dupe"))
    with crm.engine.begin() as conn:
        conn.execute(
            insert(vouchers),
            [
                {"id": 1, "customer_id": keep, "code": "WELCOME"},
                {"id": 2, "customer_id": dupe, "code": "WELCOME"},
                {"id": 3, "customer_id": dupe, "code": "BIRTHDAY"},
                {"id": 4, "customer_id": dupe, "code": None},
                {"id": 5, "customer_id": keep, "code": None},
            ],
        )
    crm_with_app.customers.merge(keep, dupe)
    with crm.engine.connect() as conn:
        rows = sorted(conn.execute(select(vouchers.c.id, vouchers.c.customer_id)).all())
    assert rows == [(1, keep), (3, keep), (4, keep), (5, keep)]
    assert crm_with_app.customers.merges(keep)[0]["moved"]["dropped"] == {"shop_vouchers.customer_id": 1}
    vouchers.drop(crm.engine)


def test_the_country_comes_with_the_phone_it_is_read_in(crm: CRM) -> None:
    keep = crm.customers.create({"name": "Keep", "email": "keep@example.com"})["id"]
    dupe = crm.customers.create({"name": "Dupe", "phone": "081-234-5679", "country": "TH"})["id"]
    us = crm.customers.create({"name": "US", "phone": "(415) 555-0100"})["id"]
    thai = crm.customers.create({"name": "Thai", "country": "TH"})["id"]
    merged = crm.customers.merge(keep, dupe)
    assert (merged["phone_normalized"], merged["country"]) == ("+66812345679", "TH")
    # a later change of branch re-reads the phone in the country that came with it
    assert crm.customers.update(keep, {"branch": "north"})["phone_normalized"] == "+66812345679"
    # a survivor with a phone of its own keeps reading it where it did: no country is imposed on it
    assert crm.customers.merge(us, thai)["country"] is None
