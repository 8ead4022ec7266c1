"""Customer import: mapping, matching, modes, history, dry run, reject file, record and revert.

Expected outcomes are written out by hand per line; counts are compared with what plain SQL finds.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from crmkit_fitness import FitnessPlugin
from sqlalchemy import select, text

from crmkit import CRM, ValidationError
from crmkit.db.models import ImportChange
from crmkit.errors import CRMError, NotFound
from crmkit.imports.service import ImportRevertError
from crmkit.imports.values import ParseOptions
from crmkit.testing import run_in_processes


@pytest.fixture
def fcrm(crm_factory: Any) -> CRM:
    return crm_factory([FitnessPlugin()])


def _csv(*rows: list[Any]) -> io.BytesIO:
    """The rows as an uploaded CSV file (its name says its format)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "upload.csv"
    return upload


def _count(crm: CRM, sql: str) -> int:
    with crm.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _id(value: int | None) -> int:
    assert value is not None
    return value


def _actions(report: Any) -> dict[int, str]:
    return {o.line: o.action for o in report.preview}


HEADER = ["Full name", "E-mail", "Mobile", "Goal", "Card number"]


def test_columns_map_by_name_label_and_alias_and_the_rest_is_reported(fcrm: CRM) -> None:
    report = fcrm.imports.customers(_csv([*HEADER, "Notes"], ["Anna", "anna@x.example", "", "muscle", "C1", "hi"]))
    assert report.mapping == {"Full name": "name", "E-mail": "email", "Mobile": "phone", "Goal": "goal",
                              "Card number": "card_number"}  # fmt: skip
    assert report.ignored_columns == ("Notes",)
    (anna,) = fcrm.customers.search({}).items
    assert [anna[k] for k in ("name", "email", "goal", "card_number")] == ["Anna", "anna@x.example", "muscle", "C1"]


def test_a_mapping_overrides_and_its_mistakes_are_refused_before_anything_is_written(fcrm: CRM) -> None:
    file = [["Who", "Contact", "Notes"], ["Anna", "anna@x.example", "x"]]
    report = fcrm.imports.customers(_csv(*file), mapping={"Who": "name", "Contact": "email", "Notes": None})
    assert report.counts["created"] == 1 and report.ignored_columns == ("Notes",)
    for mapping, field in (
        ({"Missing": "name"}, "Missing"),
        ({"Who": "nope"}, "Who"),
        ({"Who": "name", "Contact": "name"}, "Contact"),
    ):
        with pytest.raises(ValidationError) as err:
            fcrm.imports.customers(_csv(*file), mapping=mapping)
        assert field in err.value.errors
    with pytest.raises(ValidationError) as err:  # nothing maps to name: no new customer could be valid
        fcrm.imports.customers(_csv(["Contact"], ["a@x.example"]), mapping={"Contact": "email"})
    assert "name" in err.value.errors
    with pytest.raises(ValidationError) as err:
        fcrm.imports.customers(_csv(["Name"], ["A"]), match=("email",))
    assert "email" in err.value.errors
    assert fcrm.imports.list()[0]["counts"]["created"] == 1 and len(fcrm.imports.list()) == 1


def test_upsert_creates_updates_leaves_unchanged_and_skips_duplicates_of_the_file(fcrm: CRM) -> None:
    existing = fcrm.customers.create({"name": "Bea", "email": "bea@x.example", "phone": "+12125550111"})
    report = fcrm.imports.customers(
        _csv(
            ["Name", "Email", "Phone", "Goal"],
            ["Anna", "anna@x.example", "(212) 555-0100", "muscle"],  # 2 created
            ["Bea B.", "BEA@x.example", "", ""],  # 3 updated: name (the same address, written otherwise)
            ["Anna", "Anna@X.example", "", ""],  # 4 duplicate of line 2
            ["Cid", "", "212 555 0111", ""],  # 5 Bea's phone, name differs: updated
            ["Dee", "dee@x.example", "+12125550111", ""],  # 6 new email but Bea's phone: matches Bea
            ["Eve", "bea@x.example", "(212) 555-0100", ""],  # 7 Bea by email, Anna by phone: rejected
        )
    )
    assert _actions(report) == {2: "created", 3: "updated", 4: "skipped", 5: "skipped", 6: "skipped", 7: "rejected"}
    assert [o.reasons for o in report.preview if o.line in (4, 5, 6)] == [("duplicate of line 2",),
                                                                      ("duplicate of line 3",),
                                                                      ("duplicate of line 3",)]  # fmt: skip
    (rejected,) = report.rejected
    assert rejected.reasons == (f"matches more than one customer: {existing['id']} by email, "
                                f"{existing['id'] + 1} by phone",)  # fmt: skip
    bea = fcrm.customers.get(existing["id"])
    assert (bea["name"], bea["email"]) == ("Bea B.", "bea@x.example")  # the stored spelling of the address stays
    assert report.counts == {"created": 1, "updated": 1, "unchanged": 0, "skipped": 3, "rejected": 1}
    assert _count(fcrm, "SELECT count(*) FROM crm_customers") == 2


def test_running_a_file_again_adds_nothing_and_changes_nothing(fcrm: CRM) -> None:
    rows = [["Name", "Email", "Goal"], ["Anna", "anna@x.example", "muscle"], ["Anna 2", "anna@x.example", "sport"],
            ["Bo", "bo@x.example", ""]]  # fmt: skip
    first = fcrm.imports.customers(_csv(*rows))
    before = fcrm.customers.search({}).items
    second = fcrm.imports.customers(_csv(*rows))
    assert first.counts == {"created": 2, "updated": 0, "unchanged": 0, "skipped": 1, "rejected": 0}
    assert second.counts == {"created": 0, "updated": 0, "unchanged": 2, "skipped": 1, "rejected": 0}
    assert fcrm.customers.search({}).items == before


def test_create_mode_skips_matches_and_update_mode_skips_strangers(fcrm: CRM) -> None:
    fcrm.customers.create({"name": "Bea", "email": "bea@x.example"})
    rows = [["Name", "Email"], ["Bea 2", "bea@x.example"], ["New", "new@x.example"]]
    created = fcrm.imports.customers(_csv(*rows), mode="create")
    assert _actions(created) == {2: "skipped", 3: "created"}
    assert created.preview[0].reasons == ("customer 1 already has this email",)
    updated = fcrm.imports.customers(_csv(["Name", "Email"], ["Bea 3", "bea@x.example"], ["X", "x@x.example"]),
                                     mode="update")  # fmt: skip
    assert _actions(updated) == {2: "updated", 3: "skipped"}
    assert updated.preview[1].reasons == ("no customer matches (email)",)
    assert fcrm.customers.get(1)["name"] == "Bea 3" and _count(fcrm, "SELECT count(*) FROM crm_customers") == 2


def test_external_ids_match_within_their_system(fcrm: CRM) -> None:
    rows = [["External ID", "Name", "Email"], ["A-1", "Anna", "anna@x.example"], ["A-2", "Bo", ""]]
    first = fcrm.imports.customers(_csv(*rows), match=("external_id",), system="glofox")
    assert first.counts["created"] == 2
    renamed = fcrm.imports.customers(
        _csv(["External ID", "Name"], ["A-1", "Anna K."], ["A-2", "Bo"]), match=("external_id",), system="glofox"
    )
    assert _actions(renamed) == {2: "updated", 3: "unchanged"}
    assert fcrm.customers.get(_id(first.preview[0].customer_id))["name"] == "Anna K."
    other = fcrm.imports.customers(_csv(["External ID", "Name"], ["A-1", "Someone else"]), match=("external_id",),
                                   system="mindbody")  # fmt: skip
    assert other.counts["created"] == 1  # the same id in another system is another customer


def test_historical_dates_and_stage_keep_cohorts_true(fcrm: CRM) -> None:
    report = fcrm.imports.customers(
        _csv(
            ["Name", "Email", "Joined", "Status", "Since"],
            ["Anna", "a@x.example", "2021-03-04", "active", "2022-01-10T09:30:00+00:00"],
            ["Bo", "b@x.example", "2031-01-01", "", ""],
        ),
        mapping={"Since": "stage_changed_at"},
    )
    assert _actions(report) == {2: "created", 3: "rejected"}
    assert report.rejected[0].reasons == ("created_at: 2031-01-01T00:00:00+00:00 is in the future",)
    anna = fcrm.customers.get(_id(report.preview[0].customer_id))
    assert (anna["created_at"], anna["stage"], anna["stage_changed_at"]) == (
        "2021-03-04T00:00:00+00:00", "active", "2022-01-10T09:30:00+00:00")  # fmt: skip
    (move,) = fcrm.lifecycle.history(anna["id"])
    assert (move["to_stage"], move["at"], move["cause"]) == ("active", "2022-01-10T09:30:00+00:00",
                                                            f"import {report.import_id}")  # fmt: skip


def test_values_are_parsed_as_the_user_says(fcrm: CRM) -> None:
    options = ParseOptions(date_format="dd/mm/yyyy", choices={"goal": {"Lose weight": "weight_loss"}},
                           phone_region="GB")  # fmt: skip
    report = fcrm.imports.customers(
        _csv(["Name", "Birthday", "Goal", "Phone"], ["Anna", "04/03/1990", "Lose weight", "020 7946 0958"]),
        options=options,
    )
    anna = fcrm.customers.get(_id(report.preview[0].customer_id))
    assert (anna["birthday"], anna["goal"], anna["phone_normalized"]) == ("1990-03-04", "weight_loss", "+442079460958")


def test_a_dry_run_reports_exactly_what_the_run_does_and_writes_nothing(fcrm: CRM) -> None:
    fcrm.customers.create({"name": "Bea", "email": "bea@x.example"})
    rows = [["Name", "Email", "Goal"], ["Anna", "anna@x.example", "muscle"], ["Bea 2", "bea@x.example", ""],
            ["Anna", "anna@x.example", ""], ["", "nobody@x.example", "yoga"]]  # fmt: skip
    dry = fcrm.imports.customers(_csv(*rows), dry_run=True)
    assert dry.import_id is None and dry.dry_run
    assert _count(fcrm, "SELECT count(*) FROM crm_customers") == 1
    assert _count(fcrm, "SELECT count(*) FROM crm_imports") == 0
    assert fcrm.customers.get(1)["name"] == "Bea"
    real = fcrm.imports.customers(_csv(*rows))
    assert dry.counts == real.counts == {"created": 1, "updated": 1, "unchanged": 0, "skipped": 1, "rejected": 1}
    strip = [(o.line, o.action, o.fields, o.reasons) for o in dry.preview]
    assert strip == [(o.line, o.action, o.fields, o.reasons) for o in real.preview] and strip


def test_the_preview_holds_the_first_lines_and_the_totals_all(fcrm: CRM) -> None:
    rows = [["Name", "Email"]] + [[f"M{i}", f"m{i}@x.example"] for i in range(30)]
    report = fcrm.imports.customers(_csv(*rows), dry_run=True, preview=5)
    assert [o.line for o in report.preview] == [2, 3, 4, 5, 6] and report.counts["created"] == 30


def test_the_reject_file_has_every_bad_line_its_number_and_every_reason(fcrm: CRM, tmp_path: Path) -> None:
    rows = [["Name", "Email", "Goal", "Birthday"], ["Anna", "anna@x.example", "muscle", ""],
            ["Bo", "not-an-email", "yoga", "1990-01-01"], ["", "c@x.example", "", "tomorrow"],
            ["Dee", "d@x.example", "", ""]]  # fmt: skip
    rejects = tmp_path / "rejects.csv"
    report = fcrm.imports.customers(_csv(*rows), rejects=rejects)
    with rejects.open(newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["line", "reasons", "original"]
    assert [(r[0], r[2]) for r in written[1:]] == [
        ("3", "Bo,not-an-email,yoga,1990-01-01"),
        ("4", ",c@x.example,,tomorrow"),
    ]
    assert "goal" in written[1][1] and "email" in written[1][1]  # both reasons of line 3, not only the first
    assert "birthday" in written[2][1]
    assert report.counts == {"created": 2, "updated": 0, "unchanged": 0, "skipped": 0, "rejected": 2}


def test_every_import_is_recorded(fcrm: CRM) -> None:
    user = fcrm.users.create({"name": "Office", "role": "manager"})
    report = fcrm.imports.customers(_csv(["Name"], ["Anna"]), source_name="members.csv", actor_id=user["id"])
    record = fcrm.imports.get(_id(report.import_id))
    assert {k: record[k] for k in ("importer", "source_name", "format", "mode", "status", "actor_id")} == {
        "importer": "customers", "source_name": "members.csv", "format": "csv", "mode": "upsert", "status": "done",
        "actor_id": user["id"]}  # fmt: skip
    assert record["counts"]["created"] == 1 and record["settings"]["mapping"] == {"Name": "name"}
    assert record["finished_at"] >= record["started_at"]
    with pytest.raises(NotFound):
        fcrm.imports.get(_id(report.import_id) + 1)


def test_revert_removes_what_it_created_and_restores_what_it_changed(fcrm: CRM) -> None:
    bea = fcrm.customers.create({"name": "Bea", "email": "bea@x.example", "goal": "health"})
    report = fcrm.imports.customers(
        _csv(
            ["External ID", "Name", "Email", "Goal"],
            ["1", "Anna", "anna@x.example", "muscle"],
            ["2", "Bea B.", "bea@x.example", "sport"],
        ),
    )
    anna_id = report.preview[0].customer_id
    assert fcrm.imports.revert(_id(report.import_id)) == {"removed": 1, "restored": 1, "activities_removed": 0}
    bea_now = fcrm.customers.get(bea["id"])
    assert (bea_now["name"], bea_now["goal"]) == ("Bea", "health")
    with pytest.raises(NotFound):
        fcrm.customers.get(_id(anna_id))
    for table in ("crm_customer_claims", "crm_customer_keys", "crm_stage_history", "fitness_customer"):
        assert _count(fcrm, f"SELECT count(*) FROM {table} WHERE customer_id = {anna_id}") == 0, table
    assert fcrm.imports.get(_id(report.import_id))["status"] == "reverted"
    fcrm.customers.create({"name": "Anna", "email": "anna@x.example"})  # her address is free again
    with pytest.raises(CRMError, match="reverted already"):
        fcrm.imports.revert(_id(report.import_id))


def test_revert_refuses_to_lose_later_changes_and_changes_nothing(fcrm: CRM) -> None:
    bea = fcrm.customers.create({"name": "Bea", "email": "bea@x.example"})
    report = fcrm.imports.customers(
        _csv(["Name", "Email"], ["Anna", "anna@x.example"], ["Bea B.", "bea@x.example"], ["Cid", "cid@x.example"])
    )
    anna, _, cid = (o.customer_id for o in report.preview)
    fcrm.customers.update(bea["id"], {"name": "Beatrice"})
    call = {"kind": "call", "direction": "outbound", "occurred_at": "2026-01-01T10:00:00+00:00"}
    fcrm.activities.log({"customer_id": anna, **call})
    with pytest.raises(ImportRevertError) as err:
        fcrm.imports.revert(_id(report.import_id))
    assert err.value.problems == [
        f"customer {bea['id']} (line 3) changed since: name",
        f"customer {anna} has 1 row(s) in crm_activities since the import",
    ]
    assert fcrm.customers.get(_id(cid))["name"] == "Cid" and fcrm.customers.get(bea["id"])["name"] == "Beatrice"
    assert fcrm.imports.get(_id(report.import_id))["status"] == "done"


def test_the_ledger_keeps_what_was_created_not_what_the_crm_derives_from_it(fcrm: CRM) -> None:
    report = fcrm.imports.customers(_csv(["Name", "Email", "Mobile", "Goal"],
                                         ["Anna", "Anna@X.example", "(212) 200-0001", "muscle"]))  # fmt: skip
    anna = _id(report.preview[0].customer_id)
    with fcrm.engine.connect() as conn:
        (after,) = conn.execute(select(ImportChange.after).where(ImportChange.customer_id == anna)).scalars()
    record = fcrm.customers.get(anna)
    assert after == {
        "id": anna, "name": "Anna", "email": "Anna@X.example", "phone": "(212) 200-0001", "stage": "lead",
        "stage_changed_at": record["stage_changed_at"], "created_at": record["created_at"], "goal": "muscle",
    }  # fmt: skip
    assert record["email_normalized"] == "anna@x.example" and record["phone_normalized"] == "+12122000001"
    fcrm.customers.update(anna, {"email": "anna@y.example"})
    with pytest.raises(ImportRevertError) as err:  # the email is named; its normalised form follows it
        fcrm.imports.revert(_id(report.import_id))
    assert err.value.problems == [f"customer {anna} (line 2) changed since: email"]
    fcrm.customers.update(anna, {"email": "Anna@X.example"})
    assert fcrm.imports.revert(_id(report.import_id))["removed"] == 1


def test_a_file_that_cannot_be_read_at_all_is_one_clear_error(fcrm: CRM) -> None:
    for bad in ({"mode": "merge"}, {"match": ("name",)}, {"chunk_size": 0}, {"system": ""}):
        with pytest.raises(ValidationError):
            fcrm.imports.customers(_csv(["Name"], ["A"]), **bad)
    assert _count(fcrm, "SELECT count(*) FROM crm_imports") == 0


def test_chunks_commit_one_by_one_and_the_counts_span_them(fcrm: CRM) -> None:
    rows = [["Name", "Email"]] + [[f"M{i}", f"m{i % 7}@x.example"] for i in range(20)]
    report = fcrm.imports.customers(_csv(*rows), chunk_size=3)
    assert report.counts == {"created": 7, "updated": 0, "unchanged": 0, "skipped": 13, "rejected": 0}
    assert _count(fcrm, "SELECT count(*) FROM crm_customers") == 7


def test_inside_a_unit_of_work_the_import_is_part_of_it(fcrm: CRM) -> None:
    with pytest.raises(RuntimeError), fcrm.transaction() as tx:
        fcrm.imports.customers(_csv(["Name"], ["Anna"]), tx=tx)
        assert fcrm.customers.count({}, tx=tx) == 1
        raise RuntimeError("the caller changes its mind")
    assert _count(fcrm, "SELECT count(*) FROM crm_customers") == 0
    assert _count(fcrm, "SELECT count(*) FROM crm_imports") == 0


def _import_worker(database: tuple[str, dict[str, Any]], start: Any, data: bytes) -> dict[str, int]:
    url, options = database
    crm = CRM(url, plugins=[FitnessPlugin()], load_entry_points=False, engine_options=options)
    try:
        start()
        return crm.imports.customers(io.BytesIO(data), format="csv", chunk_size=10).counts
    finally:
        crm.close()


def test_two_processes_importing_one_file_store_each_customer_once(fcrm: CRM) -> None:
    rows = [["Name", "Email", "Phone"]] + [[f"M{i}", f"m{i}@x.example", f"+1212555{1000 + i}"] for i in range(60)]
    data = _csv(*rows).getvalue()
    outcomes = run_in_processes(_import_worker, fcrm, [(data,), (data,)])
    assert _count(fcrm, "SELECT count(*) FROM crm_customers") == 60
    assert _count(fcrm, "SELECT count(DISTINCT email_normalized) FROM crm_customers") == 60
    assert sum(o["created"] for o in outcomes) == 60
    assert all(o["rejected"] == 0 for o in outcomes) and all(sum(o.values()) == 60 for o in outcomes)


def test_a_json_lines_key_first_seen_after_the_header_rejects_its_line(
    crm: CRM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from crmkit.imports import sources

    monkeypatch.setattr(sources, "JSONL_PEEK", 2)  # what 1,000 lines without the key would do
    upload = io.BytesIO(
        b'{"name": "Anna", "email": "anna@example.com"}\n'
        b'{"name": "Boris", "email": null}\n'
        b'{"name": "Cleo", "phone": "+4930123456", "email": "cleo@example.com"}\n'
        b'{"name": "Dora", "phone": null, "email": "dora@example.com"}\n'
    )
    upload.name = "people.jsonl"
    report = crm.imports.customers(upload, rejects=tmp_path / "rejects.csv")
    assert (report.counts["created"], report.counts["rejected"]) == (3, 1)
    (cleo,) = report.rejected
    assert cleo.line == 3
    assert cleo.reasons == (
        "has the key 'phone' that the first 2 lines of the file do not have: its value would be lost; "
        "put the key in an early line (null is enough)",
    )
    assert sorted(c["name"] for c in crm.customers.list()) == ["Anna", "Boris", "Dora"]
