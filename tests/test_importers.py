"""Integrations as importers: the core's call log and receipts, a plugin's own importer, reimports that add
nothing, and revert. Expected rows are written out by hand per line."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from crmkit import CRM, ImporterSpec, PluginError, ValidationError, hookimpl


def _csv(*rows: list[Any]) -> io.BytesIO:
    """The rows as an uploaded CSV file (its name says its format)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "upload.csv"
    return upload


def _rows(crm: CRM, sql: str) -> list[tuple[Any, ...]]:
    with crm.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


CALLS = [
    ["uniqueid", "calldate", "src", "dst", "billsec", "type", "disposition"],
    ["c1", "2026-11-02 09:15:00", "(212) 555-0100", "+12125559999", "65", "inbound", "ANSWERED"],
    ["c2", "2026-11-02 10:00:00", "+12125559999", "212-555-0100", "0", "outbound", "NO ANSWER"],
    ["c3", "2026-11-02 11:30:00", "+12125550177", "+12125559999", "30", "inbound", "ANSWERED"],
    ["c1", "2026-11-02 09:15:00", "(212) 555-0100", "+12125559999", "65", "inbound", "ANSWERED"],
    ["c4", "2026-11-02 12:00:00", "+12125550100", "+12125559999", "30", "sideways", "ANSWERED"],
    ["c5", "not a time", "+12125550100", "+12125559999", "30", "inbound", "ANSWERED"],
]


def test_a_call_log_becomes_calls_of_the_customers_it_names(crm: CRM) -> None:
    anna = crm.customers.create({"name": "Anna", "phone": "+1 212 555 0100"})
    report = crm.imports.run("telephony", _csv(*CALLS))
    assert {o.line: o.action for o in report.preview} == {2: "created", 3: "created", 4: "rejected", 5: "skipped",
                                                          6: "rejected", 7: "rejected"}  # fmt: skip
    reasons = {o.line: o.reasons for o in report.preview if o.reasons}
    assert reasons[4] == ("no customer with phone +12125550177",)
    assert reasons[5] == ("duplicate of line 2",)
    assert reasons[6] == ("direction: 'sideways' is neither inbound nor outbound",)
    assert "start" in reasons[7][0]
    stored = _rows(crm, "SELECT customer_id, direction, status, duration_min, external_id, source, import_id"
                        " FROM crm_activities WHERE kind = 'call' ORDER BY external_id")  # fmt: skip
    assert stored == [(anna["id"], "inbound", "done", 2, "c1", "telephony", report.import_id),
                      (anna["id"], "outbound", "missed", 0, "c2", "telephony", report.import_id)]  # fmt: skip
    call = crm.activities.for_customer(anna["id"])[-1]
    assert call["occurred_at"] == "2026-11-02T09:15:00+00:00" and call["data"]["duration_seconds"] == 65


def test_importing_the_same_log_again_or_an_overlapping_one_adds_nothing_twice(crm: CRM) -> None:
    crm.customers.create({"name": "Anna", "phone": "+12125550100"})
    first = crm.imports.run("telephony", _csv(*CALLS[:3]))
    overlapping = crm.imports.run("telephony", _csv(CALLS[0], CALLS[2], ["c9", "2026-11-03 08:00:00",
                                  "+12125550100", "+12125559999", "5", "inbound", "ANSWERED"]))  # fmt: skip
    assert first.counts["created"] == 2
    assert overlapping.counts == {"created": 1, "updated": 0, "unchanged": 0, "skipped": 1, "rejected": 0}
    assert overlapping.preview[0].reasons == (f"already imported (import {first.import_id})",)
    assert _rows(crm, "SELECT count(*) FROM crm_activities") == [(3,)]


def test_unknown_callers_become_leads_only_when_asked_and_revert_takes_them_back(crm: CRM) -> None:
    report = crm.imports.run("telephony", _csv(CALLS[0], CALLS[3], CALLS[3]), settings={"create_unknown": True})
    assert report.counts["created"] == 1 and report.counts["skipped"] == 1
    (lead,) = crm.customers.search({"phone": "+12125550177"}).items
    assert (lead["name"], lead["source"], lead["stage"]) == ("Caller +12125550177", "telephony", "lead")
    assert crm.imports.revert(report.import_id or 0) == {"removed": 1, "restored": 0, "activities_removed": 1}
    assert crm.customers.count({}) == 0 and _rows(crm, "SELECT count(*) FROM crm_activities") == [(0,)]
    assert crm.imports.get(report.import_id or 0)["status"] == "reverted"


def test_receipts_match_by_card_phone_or_email(crm_factory: Any) -> None:
    from crmkit_fitness import FitnessPlugin

    crm = crm_factory([FitnessPlugin()])
    anna = crm.customers.create({"name": "Anna", "email": "anna@x.example", "card_number": "C-17"})
    bo = crm.customers.create({"name": "Bo", "phone": "+12125550101"})
    lines = json.dumps([{"item": "Water", "qty": 2, "price": "1.50"}])
    report = crm.imports.run(
        "receipts",
        _csv(
            ["Receipt No", "Date", "Card", "Items", "Total", "Currency"],
            ["R1", "2026-11-02T10:00:00+01:00", "C-17", lines, "3,00", "EUR"],
            ["R2", "2026-11-02T11:00:00+00:00", "+1 212 555 0101", "", "12,50", ""],
            ["R3", "2026-11-02T12:00:00+00:00", "ANNA@x.example", "", "-1", "EUR"],
            ["R4", "2026-11-02T12:00:00+00:00", "C-99", "", "1", "EUR"],
        ),
        settings={"card_field": "card_number", "currency": "usd"},
        options=_decimal_comma(),
    )
    assert {o.line: o.action for o in report.preview} == {2: "created", 3: "created", 4: "rejected", 5: "rejected"}
    assert report.rejected[0].reasons == ("total: must be an amount of zero or more",)
    assert report.rejected[1].reasons == ("no customer with card_number C-99",)
    stored = _rows(crm, "SELECT customer_id, amount, currency, external_id FROM crm_activities ORDER BY external_id")
    assert [(c, Decimal(str(a)), cur, r) for c, a, cur, r in stored] == [
        (anna["id"], Decimal("3.00"), "EUR", "R1"),
        (bo["id"], Decimal("12.50"), "USD", "R2"),
    ]
    (r1,) = [a for a in crm.activities.for_customer(anna["id"]) if a["external_id"] == "R1"]
    assert r1["occurred_at"] == "2026-11-02T09:00:00+00:00" and r1["data"]["lines"][0]["item"] == "Water"


def _decimal_comma() -> Any:
    from crmkit.imports.values import ParseOptions

    return ParseOptions(decimal_comma=True)


def test_a_plugin_declares_its_own_importer(pcrm: CRM, probe: Any) -> None:
    anna = pcrm.customers.create({"name": "Anna", "email": "anna@x.example"})
    assert pcrm.imports.importers()["probe_notes"].owner == "probe"
    report = pcrm.imports.run(
        "probe_notes",
        io.BytesIO(
            b'{"reference": "n1", "mail": "ANNA@x.example", "text": "hello"}\n'
            b'{"reference": "n2", "mail": "anna@x.example", "text": "bad one"}\n'
            b'{"reference": "n3", "mail": "nobody@x.example"}\n'
        ),
        format="jsonl",
    )
    assert [(o.line, o.action, o.reasons) for o in report.preview] == [
        (1, "created", ()),
        (2, "rejected", ("text: 'bad one' is refused by the probe",)),
        (3, "rejected", ("no customer with email nobody@x.example",)),
    ]
    (note,) = pcrm.activities.for_customer(anna["id"])
    assert [note[k] for k in ("kind", "subject", "source", "external_id")] == ["chat", "hello", "probe_notes", "n1"]
    pcrm.imports.revert(report.import_id or 0)
    assert ("activities_removed", ["n1"]) in probe.events  # told before they went, so it could undo its part
    assert pcrm.activities.for_customer(anna["id"]) == []


def test_a_file_without_an_importer_s_required_columns_is_refused_whole(crm: CRM) -> None:
    with pytest.raises(ValidationError) as err:
        crm.imports.run("telephony", _csv(["calldate", "src"], ["2026-11-02 09:15:00", "+12125550100"]))
    assert set(err.value.errors) == {"callee", "direction"}
    with pytest.raises(ValidationError, match="unknown importer 'pbx'"):
        crm.imports.run("pbx", _csv(["a"], ["b"]))
    assert crm.imports.list() == []


def test_a_dry_run_of_an_importer_writes_nothing(crm: CRM) -> None:
    crm.customers.create({"name": "Anna", "phone": "+12125550100"})
    dry = crm.imports.run("telephony", _csv(*CALLS), dry_run=True)
    real = crm.imports.run("telephony", _csv(*CALLS))
    assert dry.counts == real.counts and dry.counts["created"] == 2 and dry.import_id is None
    assert [(o.line, o.action, o.reasons) for o in dry.preview] == [(o.line, o.action, o.reasons) for o in real.preview]


class _Broken:
    plugin_name = "broken"

    @hookimpl
    def crmkit_register_importers(self) -> list[ImporterSpec]:
        return [ImporterSpec("broken_feed", kind="no_such_kind", parse=lambda values, context: None)]


def test_an_importer_of_an_unknown_kind_fails_when_the_crm_is_built(crm_factory: Any) -> None:
    with pytest.raises(PluginError, match="unknown activity kind 'no_such_kind'"):
        crm_factory([_Broken()])


def test_importer_declarations_are_checked_at_load_time() -> None:
    with pytest.raises(ValueError, match="required columns"):
        ImporterSpec("x_feed", kind="note", parse=lambda v, c: None, columns={"a": ()}, required=("b",))
    with pytest.raises(ValueError, match="parse must be callable"):
        ImporterSpec("x_feed", kind="note", parse="nope")
