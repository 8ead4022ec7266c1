"""A person's data (``crm.privacy``): exported as one document, erased everywhere it is declared personal,
and kept out afterwards by a suppression entry."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, ForeignKey, Integer, MetaData, Numeric, String, Table, select, text

from crmkit import CRM, AccessDenied, CRMError, FieldSpec, NotFound, SuppressedCustomerError, hookimpl
from crmkit.db.models import Suppression

KEY = "test-privacy-key"
_meta = MetaData()
DEPOSITS = Table(
    "lockers_deposits",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("crm_customers.id", ondelete="CASCADE"), nullable=False),
    Column("amount", Numeric(8, 2), nullable=False),
    Column("holder_name", String(100), info={"crmkit": {"personal": True}}),
    Column("locker", BigInteger),
)


class Lockers:
    plugin_name = "lockers"

    @hookimpl
    def crmkit_register_models(self) -> list[Any]:
        return [DEPOSITS]

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [FieldSpec("card_number", personal=True, max_length=40), FieldSpec("shoe_size", "integer")]


ZOE = {
    "name": "Zoe Quintessa",
    "email": "Zoe.Q@Example.org",
    "phone": "+12025550177",
    "birthday": "1990-04-05",
    "branch": "north",
    "card_number": "CARD-77331",
    "shoe_size": 38,
}
PERSONAL_VALUES = ("Zoe Quintessa", "zoe.q@example.org", "2025550177", "1990-04-05", "CARD-77331", "Zed Partner")


@pytest.fixture
def crm(crm_factory: Any) -> CRM:
    return crm_factory([Lockers()], privacy_key=KEY)


def _person(crm: CRM) -> int:
    zoe = crm.customers.create(ZOE)
    cid = zoe["id"]
    crm.customers.update(cid, {"phone": "+12025550178"})
    crm.customers.update(cid, {"phone": ZOE["phone"]})
    crm.customers.add_contact(cid, {"name": "Zed Partner", "email": "zed@example.org"})
    crm.activities.log(
        {"customer_id": cid, "kind": "payment", "amount": "49.90", "currency": "USD", "subject": "Zoe Quintessa paid"}
    )
    crm.activities.log(
        {
            "customer_id": cid,
            "kind": "call",
            "direction": "inbound",
            "result": "Zoe Quintessa asked about yoga",
            "data": {"caller": "+12025550177", "callee": "+12025550100", "duration_seconds": 60},
        }
    )
    crm.tasks.create({"title": "Call Zoe Quintessa back", "customer_id": cid, "reason": "CARD-77331 lost"})
    crm.table("lockers_deposits").insert({"customer_id": cid, "amount": "20.00", "holder_name": "Zoe Quintessa"})
    crm.lifecycle.move(cid, "active", cause="joined")
    return cid


def test_export_holds_everything_about_the_person_as_one_json_document(crm: CRM) -> None:
    cid = _person(crm)
    other = crm.customers.create({"name": "Someone Else", "email": "else@example.org"})
    crm.activities.log({"customer_id": other["id"], "kind": "note", "subject": "not Zoe"})
    document = crm.privacy.export(cid)
    text_of_it = json.dumps(document)  # one JSON document, as it would be handed over
    assert document["customer"]["name"] == "Zoe Quintessa" and document["customer"]["card_number"] == "CARD-77331"
    assert [c["name"] for c in document["contacts"]] == ["Zed Partner"]
    assert sorted(a["kind"] for a in document["activities"]) == ["call", "payment"]
    assert [t["title"] for t in document["tasks"]] == ["Call Zoe Quintessa back"]
    assert [h["to_stage"] for h in document["stage_history"]] == ["lead", "active"]
    assert document["plugin_rows"]["lockers_deposits"][0]["amount"] == "20.00"
    actions = [e["action"] for e in document["audit"]]
    assert actions[0] == "customer.created" and "lockers_deposits.inserted" in actions
    assert "not Zoe" not in text_of_it and "Someone Else" not in text_of_it


def test_export_needs_the_right_to_export_and_to_read_personal_data(crm: CRM) -> None:
    cid = _person(crm)
    operator = crm.users.create({"name": "Op", "role": "operator", "branch": "north"})
    manager = crm.users.create({"name": "Man", "role": "manager", "branch": "south"})
    with crm.as_user(operator["id"]), pytest.raises(AccessDenied, match="customers:export"):
        crm.privacy.export(cid)
    with crm.as_user(manager["id"]), pytest.raises(NotFound):  # another branch's member
        crm.privacy.export(cid)


def test_erase_anonymises_every_declared_personal_value_and_keeps_amounts_and_counts(crm: CRM) -> None:
    cid = _person(crm)
    counts = crm.privacy.erase(cid, reason="request of 2026-12-01")
    assert counts["crm_contacts"] == 1 and counts["crm_tasks"] == 1 and counts["lockers_deposits"] == 1
    record = crm.customers.get(cid)
    assert record["name"] == "[erased]"
    assert [record[k] for k in ("email", "phone", "birthday", "card_number")] == [None] * 4
    assert record["shoe_size"] == 38 and record["stage"] == "active"  # not personal: kept
    activities = crm.activities.for_customer(cid)
    payment = next(a for a in activities if a["kind"] == "payment")
    assert payment["amount"] == "49.90" and payment["subject"] is None  # the law keeps the amount and date
    call = next(a for a in activities if a["kind"] == "call")
    assert call["data"] == {"duration_seconds": 60} and call["result"] is None
    document = json.dumps(crm.privacy.export(cid))
    leaked = [v for v in PERSONAL_VALUES if v in document]
    assert leaked == []
    with crm.session() as s:  # nothing left anywhere in the database either: the raw tables
        for table in crm.metadata.sorted_tables:
            raw = json.dumps([list(map(str, r)) for r in s.execute(select(table))])
            assert [v for v in PERSONAL_VALUES if v in raw] == [], table.name
    history = crm.audit.for_customer(cid)
    assert history[-1]["action"] == "customer.erased"
    assert history[-1]["changes"]["reason"] == "request of 2026-12-01"
    assert crm.audit.verify().ok  # redacted entries still chain


def test_an_erased_person_cannot_be_created_or_imported_again(crm: CRM) -> None:
    cid = _person(crm)
    crm.privacy.erase(cid, reason="request")
    with pytest.raises(SuppressedCustomerError, match="erased"):
        crm.customers.create({"name": "Zoe Again", "email": " zoe.q@EXAMPLE.org "})
    with pytest.raises(SuppressedCustomerError, match="phone"):
        crm.customers.create({"name": "Zoe Again", "phone": "(202) 555-0177"})
    other = crm.customers.create({"name": "Someone"})
    with pytest.raises(SuppressedCustomerError):
        crm.customers.update(other["id"], {"email": "zoe.q@example.org"})
    source = io.BytesIO(b"name,email\nZoe Imported,zoe.q@example.org\nNew Person,new@example.org\n")
    report = crm.imports.customers(source, source_name="again.csv")
    assert report.counts["created"] == 1 and report.counts["rejected"] == 1
    (rejected,) = report.rejected
    assert rejected.line == 2 and "erased" in " ".join(rejected.reasons)
    with crm.session() as s:  # only hashes are kept of the person
        digests = [r.digest for r in s.scalars(select(Suppression))]
    assert len(digests) == 2 and all(len(d) == 64 and "zoe" not in d for d in digests)


def test_erasure_is_one_transaction_and_needs_its_permission_and_a_key(crm: CRM, crm_factory: Any) -> None:
    cid = _person(crm)
    manager = crm.users.create({"name": "Man", "role": "manager", "branch": "north"})
    with crm.as_user(manager["id"]), pytest.raises(AccessDenied, match="customers:erase"):
        crm.privacy.erase(cid, reason="request")
    with pytest.raises(RuntimeError), crm.transaction() as tx:
        crm.privacy.erase(cid, reason="request", tx=tx)
        raise RuntimeError("the caller gives up")
    assert crm.customers.get(cid)["name"] == "Zoe Quintessa"
    assert crm.customers.create({"name": "Zoe Twin", "email": "twin@example.org"})
    with crm.session() as s:
        assert s.scalar(select(Suppression.digest)) is None
    keyless = crm_factory([Lockers()])
    zoe = keyless.customers.create({"name": "Zoe"})
    with pytest.raises(CRMError, match="privacy key"):
        keyless.privacy.erase(zoe["id"], reason="request")
    assert keyless.customers.get(zoe["id"])["name"] == "Zoe"


def test_a_crm_without_its_key_refuses_creates_once_people_were_erased(crm: CRM) -> None:
    cid = _person(crm)
    crm.privacy.erase(cid, reason="request")
    url = crm.engine.url.render_as_string(hide_password=False)
    options: dict[str, Any] = {}
    if crm.engine.dialect.name == "postgresql":
        with crm.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        options = {"connect_args": {"options": f"-csearch_path={schema}"}}
    keyless = CRM(url, engine_options=options, load_entry_points=False, plugins=[Lockers()])
    try:
        with pytest.raises(CRMError, match="no privacy key"):
            keyless.customers.create({"name": "Anyone", "email": "any@example.org"})
    finally:
        keyless.close()


def test_the_command_line_exports_and_erases_a_person(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from crmkit.cli import main

    url = f"sqlite:///{tmp_path / 'club.db'}"
    local = CRM(url, load_entry_points=False, privacy_key=KEY)
    local.create_schema()
    zoe = local.customers.create({"name": "Zoe Quintessa", "email": "zoe@example.org", "branch": "north"})
    viewer = local.users.create({"name": "Vi", "role": "viewer", "branch": "north"})
    local.close()
    runner = CliRunner()
    monkeypatch.setenv("CRMKIT_PRIVACY_KEY", KEY)
    out = tmp_path / "zoe.json"
    done = runner.invoke(main, ["person", "export", str(zoe["id"]), "--url", url, "--no-plugins", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert json.loads(out.read_text())["customer"]["email"] == "zoe@example.org"
    refused = runner.invoke(main, ["person", "export", str(zoe["id"]), "--url", url, "--no-plugins",
                                   "--as-user", str(viewer["id"])])  # fmt: skip
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "may not customers:export" in refused.output
    unconfirmed = runner.invoke(main, ["person", "erase", str(zoe["id"]), "--url", url, "--reason", "asked"])
    assert unconfirmed.exit_code == 1 and "--yes" in unconfirmed.output
    erased = runner.invoke(main, ["person", "erase", str(zoe["id"]), "--url", url, "--no-plugins", "--reason",
                                  "request of 2026-12-01", "--yes"])  # fmt: skip
    assert erased.exit_code == 0 and "erased" in erased.output, erased.output
    shown = runner.invoke(main, ["audit", "show", "--url", url, "--no-plugins", "--customer", str(zoe["id"])])
    assert shown.exit_code == 0 and "customer.erased" in shown.output and "zoe@example.org" not in shown.output


def test_erasing_two_records_of_one_person_keeps_one_suppression_entry(crm: CRM) -> None:
    first = crm.customers.create({"name": "Zoe One", "email": "zoe@example.org"})["id"]
    second = crm.customers.create({"name": "Zoe Two", "email": "zoe@example.org"}, allow_duplicate=True)["id"]
    crm.privacy.erase(first, reason="request")
    crm.privacy.erase(second, reason="request")  # the same email: its entry is there already
    with crm.session() as s:
        assert len(s.scalars(select(Suppression.digest)).all()) == 1
    assert crm.customers.get(second)["name"] == "[erased]"
