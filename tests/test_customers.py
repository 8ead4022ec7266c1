"""Customers: validated writes, flat records, run-time fields, duplicates, transactions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probe import Probe, ProbeNote
from sqlalchemy import func, select

from crmkit import CRM, DuplicateCustomerError, FieldSpec, NotFound, ValidationError
from crmkit.customers import normalize_email
from crmkit.db import Customer, StageHistory
from crmkit.db.models import CustomerClaim


def count(crm: CRM, model: Any) -> int:
    with crm.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_create_returns_one_flat_record_with_plugin_fields(pcrm: CRM) -> None:
    anna = pcrm.customers.create(
        {
            "name": "Anna",
            "email": " Anna@Example.COM ",
            "phone": "(415) 555-0100",
            "birthday": "1990-05-01",
            "source": "instagram",
            "tier": "gold",
            "score": 7,
            "balance": "12.50",
            "vip": True,
            "last_seen": "2026-01-02T03:04:05+02:00",
        }
    )
    assert anna["email"] == "Anna@Example.COM"
    assert anna["email_normalized"] == "anna@example.com"
    assert anna["phone"] == "(415) 555-0100" and anna["phone_normalized"] == "+14155550100"
    assert anna["birthday"] == "1990-05-01"
    assert anna["stage"] == "lead" and anna["lifecycle"] == "lead"
    assert (anna["tier"], anna["score"], anna["balance"], anna["vip"]) == ("gold", 7, "12.50", True)
    assert anna["last_seen"] == "2026-01-02T01:04:05+00:00"
    assert pcrm.customers.get(anna["id"]) == anna


def test_plugin_defaults_apply_on_create(pcrm: CRM) -> None:
    assert pcrm.customers.create({"name": "Ben"})["tier"] == "bronze"


def test_bad_input_lists_every_problem_and_writes_nothing(pcrm: CRM) -> None:
    with pytest.raises(ValidationError) as err:
        pcrm.customers.create(
            {
                "name": "",
                "email": "not-an-email",
                "phone": "12",
                "tier": "platinum",
                "score": "many",
                "birthday": "31/12/1990",
                "stage": "lost",
                "colour": "red",
            }
        )
    assert set(err.value.errors) == {"name", "email", "phone", "tier", "score", "birthday", "stage", "colour"}
    assert "platinum" not in str(err.value) or "Must be one of" in str(err.value)
    assert count(pcrm, Customer) == 0


def test_name_is_required(crm: CRM) -> None:
    with pytest.raises(ValidationError) as err:
        crm.customers.create({"email": "x@example.com"})
    assert "name" in err.value.errors


def test_non_mapping_input_is_a_validation_error(crm: CRM) -> None:
    with pytest.raises(ValidationError):
        crm.customers.create(["Anna"])  # type: ignore[arg-type]


def test_update_changes_only_given_fields(pcrm: CRM, probe: Probe) -> None:
    anna = pcrm.customers.create({"name": "Anna", "tier": "silver", "score": 1})
    updated = pcrm.customers.update(anna["id"], {"score": 5, "branch": "north"})
    assert (updated["score"], updated["tier"], updated["branch"]) == (5, "silver", "north")
    assert probe.of("updated") == [(anna["id"], {"score": 5, "branch": "north"})]


def test_update_validates_and_refuses_stage_changes(pcrm: CRM) -> None:
    anna = pcrm.customers.create({"name": "Anna"})
    with pytest.raises(ValidationError, match="lifecycle.move"):
        pcrm.customers.update(anna["id"], {"stage": "active"})
    with pytest.raises(ValidationError) as err:
        pcrm.customers.update(anna["id"], {"tier": "nope", "name": None})
    assert set(err.value.errors) == {"tier", "name"}
    with pytest.raises(NotFound):
        pcrm.customers.update(999, {"score": 1})


def test_hook_that_raises_rolls_back_the_whole_create(pcrm: CRM, probe: Probe) -> None:
    with pytest.raises(RuntimeError, match="vetoed"):
        pcrm.customers.create({"name": "VETO", "tier": "gold"})
    assert count(pcrm, Customer) == 0
    assert count(pcrm, StageHistory) == 0
    assert count(pcrm, pcrm.extension_tables["probe"]) == 0
    assert probe.sent == []


def test_hook_that_raises_rolls_back_an_update(pcrm: CRM) -> None:
    anna = pcrm.customers.create({"name": "Anna", "score": 1})
    with pytest.raises(RuntimeError):
        pcrm.customers.update(anna["id"], {"score": 666, "name": "Changed"})
    assert pcrm.customers.get(anna["id"])["name"] == "Anna"
    assert pcrm.customers.get(anna["id"])["score"] == 1


def test_event_hooks_write_in_the_same_transaction_and_effects_wait_for_commit(pcrm: CRM, probe: Probe) -> None:
    anna = pcrm.customers.create({"name": "Anna"})
    with pcrm.session() as s:
        assert s.scalars(select(ProbeNote.body)).all() == ["welcome Anna"]
    assert probe.sent == ["welcome email to Anna"]
    assert probe.of("stage") == [(None, "lead", "created")]
    assert probe.of("created") == [anna["id"]]


def test_writes_in_one_caller_transaction_commit_together(pcrm: CRM, probe: Probe) -> None:
    with pytest.raises(ValidationError), pcrm.transaction() as tx:
        pcrm.customers.create({"name": "Anna"}, tx=tx)
        assert probe.sent == []  # not before commit
        pcrm.customers.create({"name": "Ben", "tier": "bad"}, tx=tx)
    assert count(pcrm, Customer) == 0
    assert probe.sent == []


def test_a_failed_call_inside_a_caller_transaction_keeps_earlier_writes(pcrm: CRM) -> None:
    with pcrm.transaction() as tx:
        pcrm.customers.create({"name": "Anna", "email": "anna@example.com"}, tx=tx)
        with pytest.raises(DuplicateCustomerError):
            pcrm.customers.create({"name": "Anna again", "email": "ANNA@example.com"}, tx=tx)
        with pytest.raises(RuntimeError):
            pcrm.customers.create({"name": "VETO"}, tx=tx)
    assert [c["name"] for c in pcrm.customers.iter()] == ["Anna"]


def test_duplicates_are_refused_on_normalised_email_and_phone(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "email": "anna@example.com", "phone": "+1 415 555 0100"})
    with pytest.raises(DuplicateCustomerError) as err:
        crm.customers.create({"name": "A. B.", "email": "ANNA@example.com ", "phone": "(415) 555-0100"})
    assert err.value.existing_ids == [anna["id"]] and err.value.matched_on == ["email", "phone"]
    ben = crm.customers.create({"name": "Ben", "phone": "415.555.0100"}, allow_duplicate=True)
    assert crm.customers.find_duplicates(phone="+14155550100") == [anna["id"], ben["id"]]
    groups = crm.customers.duplicate_groups()
    assert [(g.matched_on, g.customer_ids) for g in groups] == [("phone", (anna["id"], ben["id"]))]
    with pytest.raises(DuplicateCustomerError):
        crm.customers.update(ben["id"], {"email": "anna@EXAMPLE.com"})


def test_create_many_refuses_a_value_another_customer_or_the_batch_has_twice_and_writes_none(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "phone": "+1 415 555 0100"})
    prepare = crm.customers.prepare
    with pytest.raises(DuplicateCustomerError) as err:
        crm.customers.create_many([prepare({"name": "Ben", "email": "ben@x.example"}),
                                   prepare({"name": "Cy", "phone": "(415) 555-0100"})])  # fmt: skip
    assert err.value.existing_ids == [anna["id"]] and err.value.matched_on == ["phone"]
    with pytest.raises(DuplicateCustomerError) as err:
        crm.customers.create_many([prepare({"name": "Dee", "email": "dee@x.example"}),
                                   prepare({"name": "Dee B.", "email": "DEE@x.example "})])  # fmt: skip
    assert err.value.matched_on == ["email"]
    assert [c["name"] for c in crm.customers.iter()] == ["Anna"]
    made = crm.customers.create_many([prepare({"name": "Ben", "email": "ben@x.example", "phone": "(415) 555-0101"})])
    assert crm.customers.find_duplicates(phone="+14155550101") == [made[0]["id"]]


@settings(max_examples=40, deadline=None)
@given(st.emails())
def test_email_normalisation_is_idempotent_and_case_blind(email: str) -> None:
    once = normalize_email(f"  {email.upper()} ")
    assert once == normalize_email(once) == email.lower()


def test_runtime_fields_are_validated_and_stored_as_json(crm: CRM) -> None:
    crm.fields.define(FieldSpec("shoe_size", "integer"))
    crm.fields.define(FieldSpec("channel_pref", choices=("sms", "email")))
    crm.fields.define(FieldSpec("first_visit", "date"))
    c = crm.customers.create({"name": "Anna", "shoe_size": "38", "channel_pref": "sms", "first_visit": "2026-02-01"})
    assert (c["shoe_size"], c["channel_pref"], c["first_visit"]) == (38, "sms", "2026-02-01")
    with crm.session() as s:
        stored = s.get(Customer, c["id"])
        assert stored is not None
        assert stored.extra == {"shoe_size": 38, "channel_pref": "sms", "first_visit": "2026-02-01"}
    with pytest.raises(ValidationError) as err:
        crm.customers.create({"name": "Ben", "channel_pref": "fax", "shoe_size": "big"})
    assert set(err.value.errors) == {"channel_pref", "shoe_size"}
    updated = crm.customers.update(c["id"], {"shoe_size": 39})
    assert (updated["shoe_size"], updated["channel_pref"]) == (39, "sms")


def test_runtime_fields_survive_a_new_crm_on_the_same_database(crm: CRM) -> None:
    crm.fields.define(FieldSpec("nickname"))
    again = CRM(engine=crm.engine, load_entry_points=False)
    assert [f.name for f in again.fields.runtime()] == ["nickname"]
    assert again.customers.create({"name": "Anna", "nickname": "Annie"})["nickname"] == "Annie"


def test_runtime_field_names_may_not_clash(pcrm: CRM) -> None:
    for name in ("email", "tier"):
        with pytest.raises(ValidationError, match="already exists"):
            pcrm.fields.define(FieldSpec(name))
    pcrm.fields.define(FieldSpec("nickname"))
    with pytest.raises(ValidationError):
        pcrm.fields.define(FieldSpec("nickname", "integer"))


def test_iter_streams_customers_in_id_order_with_filters(pcrm: CRM) -> None:
    for name in ("A", "B", "C"):
        pcrm.customers.create({"name": name, "stage": "trial" if name != "B" else "lead"})
    assert [c["name"] for c in pcrm.customers.iter(batch_size=1)] == ["A", "B", "C"]
    assert [c["name"] for c in pcrm.customers.iter(stage="trial")] == ["A", "C"]
    assert [c["name"] for c in pcrm.customers.iter(lifecycle="lead")] == ["A", "B", "C"]
    assert pcrm.customers.count() == 3


def test_select_exposes_plugin_fields_for_custom_sql(pcrm: CRM) -> None:
    pcrm.customers.create({"name": "Rich", "balance": "100.00"})
    pcrm.customers.create({"name": "Poor", "balance": "1.00"})
    query = pcrm.customers.select()
    with pcrm.engine.connect() as conn:
        rows = conn.execute(query.where(query.selected_columns.balance > 50)).all()
    assert [(r.name, r.balance) for r in rows] == [("Rich", Decimal("100.00"))]


def test_contacts_belong_to_a_customer(crm: CRM) -> None:
    acme = crm.customers.create({"name": "Acme Ltd"})
    contact = crm.customers.add_contact(acme["id"], {"name": "Office manager", "email": "om@acme.test"})
    assert contact["customer_id"] == acme["id"]
    with pytest.raises(NotFound):
        crm.customers.add_contact(999, {"name": "Nobody"})
    with pytest.raises(ValidationError):
        crm.customers.add_contact(acme["id"], {"name": ""})


def test_owner_must_be_a_known_user(crm: CRM) -> None:
    with pytest.raises(ValidationError, match="no user with id 42"):
        crm.customers.create({"name": "Anna", "owner_id": 42})
    boss = crm.users.create({"name": "Boss", "email": "boss@example.com", "role": "manager", "branch": "north"})
    anna = crm.customers.create({"name": "Anna", "owner_id": boss["id"]})
    with pytest.raises(ValidationError, match="no user with id 43"):
        crm.customers.update(anna["id"], {"owner_id": 43})
    assert crm.customers.count() == 1


def test_users_are_validated(crm: CRM) -> None:
    crm.users.create({"name": "Boss", "email": "boss@example.com", "role": "manager"})
    with pytest.raises(ValidationError, match="exists"):
        crm.users.create({"name": "Boss 2", "email": "boss@example.com"})
    with pytest.raises(ValidationError) as err:
        crm.users.create({"name": "", "role": "king"})
    assert set(err.value.errors) == {"name", "role"}
    assert [u["name"] for u in crm.users.list()] == ["Boss"]


def test_personal_data_fields_come_from_declarations(pcrm: CRM) -> None:
    pcrm.fields.define(FieldSpec("passport_no", personal=True))
    personal = pcrm.fields.personal()
    assert {"name", "email", "phone", "birthday", "medical_notes", "passport_no"} <= set(personal)
    assert "tier" not in personal


def test_callbacks_of_a_rolled_back_call_are_dropped(pcrm: CRM, probe: Probe) -> None:
    with pcrm.transaction() as tx:
        with pytest.raises(RuntimeError):
            pcrm.customers.create({"name": "VETO"}, tx=tx)
        pcrm.customers.create({"name": "Anna"}, tx=tx)
    assert probe.sent == ["welcome email to Anna"]


def test_a_failing_after_commit_callback_does_not_stop_the_others(crm: CRM) -> None:
    ran: list[str] = []
    with crm.transaction() as tx:
        tx.after_commit(lambda: 1 / 0)
        tx.after_commit(lambda: ran.append("second"))
    assert ran == ["second"]


def test_runtime_field_defined_in_a_unit_of_work_is_usable_there_and_forgotten_on_rollback(crm: CRM) -> None:
    with crm.transaction() as tx:
        crm.fields.define(FieldSpec("nickname"), tx=tx)
        anna = crm.customers.create({"name": "Anna", "nickname": "Annie"}, tx=tx)
    assert crm.customers.get(anna["id"])["nickname"] == "Annie"
    with pytest.raises(ValidationError), crm.transaction() as tx:
        crm.fields.define(FieldSpec("shoe"), tx=tx)
        crm.customers.create({"name": "Ben", "shoe": 40}, tx=tx)  # a string field: 40 is not a string
    assert [f.name for f in crm.fields.runtime()] == ["nickname"]
    with pytest.raises(ValidationError):
        crm.customers.create({"name": "Ben", "shoe": "40"})


def test_plugin_fields_of_a_customer_created_before_the_plugin_are_kept(crm: CRM, crm_factory: Any) -> None:
    anna = crm.customers.create({"name": "Anna"})
    other = crm.customers.create({"name": "Other"})
    with_probe = CRM(engine=crm.engine, plugins=[Probe()], load_entry_points=False)
    with_probe.create_schema()  # adds the plugin's tables next to the existing customers
    assert with_probe.customers.update(anna["id"], {"score": 4})["score"] == 4
    with_probe.customers.update(other["id"], {"tier": "gold"})
    merged = with_probe.customers.merge(anna["id"], other["id"])
    assert (merged["score"], merged["tier"]) == (4, "gold")


# -- phones: validated, read in the customer's region --------------------------------------------------

THAI_NATIONAL = "081-234-5679"


def test_a_thai_number_is_read_in_thailand_and_matches_no_us_number(crm: CRM) -> None:
    thai = crm.customers.create({"name": "Somchai", "phone": THAI_NATIONAL, "country": "th"})
    assert (thai["country"], thai["phone_normalized"]) == ("TH", "+66812345679")
    us = crm.customers.create({"name": "Anna", "phone": "(812) 345-6790"})
    assert us["phone_normalized"] == "+18123456790"
    assert crm.customers.duplicate_groups() == []
    assert crm.customers.find_duplicates(phone="+66 81 234 5679") == [thai["id"]]
    assert crm.customers.find_duplicates(phone=THAI_NATIONAL, country="TH") == [thai["id"]]
    assert crm.customers.find_duplicates(phone=THAI_NATIONAL) == []  # not a US number: matches nobody
    assert crm.customers.find_duplicates(phone="812 345 6790") == [us["id"]]
    with pytest.raises(DuplicateCustomerError):
        crm.customers.create({"name": "Somchai again", "phone": "+66 81 234 5679"})


def test_an_invalid_number_is_rejected_with_a_reason_naming_the_region(crm: CRM) -> None:
    for raw, reason in [
        ("0000000000", "not a valid phone number in US"),
        (THAI_NATIONAL, "not a valid phone number in US"),
        ("+66 00 000 000", "not a valid phone number with country code +66"),
        ("call me", "not a phone number"),
    ]:
        with pytest.raises(ValidationError) as err:
            crm.customers.create({"name": "Nobody", "phone": raw})
        assert reason in err.value.errors["phone"][0], raw
    with pytest.raises(ValidationError, match="not a valid phone number in TH"):
        crm.customers.create({"name": "Nobody", "phone": "(415) 555-0100", "country": "TH"})
    assert crm.customers.count() == 0


def test_the_branch_region_applies_when_the_customer_has_no_country(crm_factory: Any) -> None:
    crm = crm_factory(branch_regions={"bangkok": "th"})
    in_bangkok = crm.customers.create({"name": "Somchai", "phone": THAI_NATIONAL, "branch": "bangkok"})
    assert in_bangkok["phone_normalized"] == "+66812345679"
    visitor = crm.customers.create(
        {"name": "Anna", "phone": "(415) 555-0100", "branch": "bangkok", "country": "US"}
    )  # the customer's own country wins over the branch's
    assert visitor["phone_normalized"] == "+14155550100"
    with pytest.raises(ValidationError, match="not a valid phone number in US"):
        crm.customers.create({"name": "Elsewhere", "phone": THAI_NATIONAL, "branch": "downtown"})
    assert crm.normalize_phone(THAI_NATIONAL, "TH") == "+66812345679"


def test_the_crms_default_region_applies_last(crm_factory: Any) -> None:
    crm = crm_factory(region="gb")
    assert crm.region == "GB"
    london = crm.customers.create({"name": "Alice", "phone": "020 7946 0018"})
    assert london["phone_normalized"] == "+442079460018"
    assert crm.normalize_phone("020 7946 0018") == "+442079460018"
    with pytest.raises(ValidationError, match="not a valid phone number in GB"):
        crm.customers.create({"name": "Bob", "phone": "(415) 555-0100"})


def test_the_phone_is_read_again_when_country_or_branch_change(crm_factory: Any) -> None:
    crm = crm_factory(branch_regions={"bangkok": "TH"})
    somchai = crm.customers.create({"name": "Somchai", "phone": THAI_NATIONAL, "country": "TH"})
    with pytest.raises(ValidationError, match="not a valid phone number in US"):
        crm.customers.update(somchai["id"], {"country": None})
    with pytest.raises(ValidationError, match="not a valid phone number in TH"):
        crm.customers.update(somchai["id"], {"phone": "0000000000"})
    assert crm.customers.get(somchai["id"]) == somchai  # nothing changed
    # the branch supplies the region once the country is gone
    moved = crm.customers.update(somchai["id"], {"country": None, "branch": "bangkok"})
    assert (moved["country"], moved["phone_normalized"]) == (None, "+66812345679")
    # a national number read in a new country is a new number
    anna = crm.customers.create({"name": "Anna", "phone": "02 123 4567", "country": "TH"})
    assert anna["phone_normalized"] == "+6621234567"
    with pytest.raises(ValidationError, match="not a valid phone number in US"):
        crm.customers.update(anna["id"], {"country": "US"})
    updated = crm.customers.update(anna["id"], {"phone": "+1 415 555 0100", "country": "US"})
    assert updated["phone_normalized"] == "+14155550100"


def test_country_is_a_known_two_letter_code(crm: CRM) -> None:
    assert crm.customers.create({"name": "A", "country": " vn "})["country"] == "VN"
    assert crm.customers.create({"name": "B", "country": ""})["country"] is None
    for bad in ("XX", "Thailand", "T1", "ไท", 66):
        with pytest.raises(ValidationError) as err:
            crm.customers.create({"name": "C", "country": bad})
        assert set(err.value.errors) == {"country"}, bad
    with pytest.raises(ValidationError):
        crm.customers.find_duplicates(phone=THAI_NATIONAL, country="XX")
    assert crm.customers.count() == 2


def test_regions_of_the_crm_are_checked_when_it_is_built(crm_factory: Any) -> None:
    with pytest.raises(ValueError, match="region"):
        crm_factory(region="XX")
    with pytest.raises(ValueError, match="branch_regions"):
        crm_factory(branch_regions={"north": "Norway"})


def test_claims_follow_the_values_a_customer_holds(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "email": "anna@example.com", "phone": "(415) 555-0100"})
    ben = crm.customers.create({"name": "Ben", "email": "anna@example.com"}, allow_duplicate=True)
    assert claims(crm) == [("email", "anna@example.com", ben["id"]), ("phone", "+14155550100", anna["id"])]
    crm.customers.update(anna["id"], {"email": "anna@new.example", "phone": None})
    # Anna's old phone is released; the old email's row names Ben, who still holds it, so it stays
    assert claims(crm) == [("email", "anna@example.com", ben["id"]), ("email", "anna@new.example", anna["id"])]
    # the phone Anna gave up is free again
    assert crm.customers.create({"name": "Cleo", "phone": "+14155550100"})["phone_normalized"] == "+14155550100"


def test_keeping_a_shared_value_on_update_is_not_a_new_duplicate(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "email": "anna@example.com"})
    ben = crm.customers.create({"name": "Ben", "email": "anna@example.com"}, allow_duplicate=True)
    assert crm.customers.update(ben["id"], {"email": "ANNA@example.com", "name": "Ben B."})["name"] == "Ben B."
    crm.customers.update(anna["id"], {"phone": "(415) 555-0100"})
    with pytest.raises(DuplicateCustomerError) as err:  # only the value Ben gains is checked: the phone
        crm.customers.update(ben["id"], {"phone": "415 555 0100", "email": "anna@example.com"})
    assert err.value.existing_ids == [anna["id"]] and err.value.matched_on == ["phone"]


def claims(crm: CRM) -> list[tuple[str, str, int]]:
    with crm.session() as s:
        rows = s.execute(select(CustomerClaim.kind, CustomerClaim.value, CustomerClaim.customer_id))
        return sorted((k, v, c) for k, v, c in rows)


def test_reads_in_a_unit_of_work_see_its_own_writes(crm: CRM) -> None:
    with crm.transaction() as tx:
        anna = crm.customers.create({"name": "Anna", "email": "anna@example.com"}, tx=tx)
        crm.lifecycle.move(anna["id"], "active", cause="bought", tx=tx)
        call = crm.activities.log({"customer_id": anna["id"], "kind": "note", "subject": "hi"}, tx=tx)
        task = crm.tasks.create({"title": "Call Anna", "customer_id": anna["id"]}, tx=tx)
        assert crm.customers.get(anna["id"], tx=tx)["stage"] == "active"
        assert crm.customers.get_many([anna["id"], 999], tx=tx) == {anna["id"]: crm.customers.get(anna["id"], tx=tx)}
        assert crm.customers.count(tx=tx) == 1
        assert [h["to_stage"] for h in crm.lifecycle.history(anna["id"], tx=tx)] == ["lead", "active"]
        assert crm.activities.get(call["id"], tx=tx) == call
        assert crm.tasks.get(task["id"], tx=tx) == task
        assert crm.customers.find_duplicates(email="ANNA@example.com", tx=tx) == [anna["id"]]
        # outside the unit of work nothing is visible before it commits
        with pytest.raises(NotFound):
            crm.customers.get(anna["id"])
    assert crm.customers.get(anna["id"])["stage"] == "active"


def test_every_read_gives_dates_and_times_as_iso_text(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "birthday": "1990-02-03"})
    change = crm.lifecycle.move(anna["id"], "active", cause="bought")
    for record in (anna, crm.customers.get(anna["id"]), change, *crm.lifecycle.history(anna["id"])):
        for key in ("created_at", "updated_at", "stage_changed_at", "at"):
            if key in record:
                assert dt.datetime.fromisoformat(record[key]).utcoffset() == dt.timedelta(0)
    assert anna["birthday"] == "1990-02-03"
    assert change == {**crm.lifecycle.history(anna["id"])[-1]}


@settings(max_examples=300, deadline=None)
@given(
    region=st.sampled_from(["US", "CA", "GB", "TH", "DE", "BR"]),
    other=st.sampled_from(["US", "CA", "GB", "TH", "DE", "BR", "JM", "PR"]),
    digits=st.integers(min_value=0, max_value=10**7 - 1),
    international=st.booleans(),
)
def test_the_phone_hook_accepts_exactly_what_phonenumbers_calls_valid(
    region: str, other: str, digits: int, international: bool
) -> None:
    """The core's hook checks the region a number was read in first; the answer must be phonenumbers' own."""
    import phonenumbers

    from crmkit.defaults import crmkit_normalize_phone

    example = phonenumbers.example_number(other)
    assert example is not None
    national = str(example.national_number)
    raw = national[: max(0, len(national) - 7)] + f"{digits:07d}"
    if international:
        raw = f"+{example.country_code} {raw}"
    number = phonenumbers.parse(raw, region)
    try:
        normalized = crmkit_normalize_phone(raw, region)
    except ValueError:
        assert not phonenumbers.is_valid_number(number)
    else:
        assert phonenumbers.is_valid_number(number)
        assert normalized == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
