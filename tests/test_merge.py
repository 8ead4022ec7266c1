"""Merging duplicates: every related row moves to the survivor, and the merge is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from probe import Probe, ProbeNote
from sqlalchemy import select

from crmkit import CRM, FieldSpec, NotFound, ValidationError
from crmkit.db import Activity, Contact, Customer, Merge, StageHistory, Task


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
