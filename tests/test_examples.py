"""The runnable examples run, on SQLite and on the PostgreSQL named by CRMKIT_TEST_DATABASE_URL.

Each example gets a database of its own: a SQLite file in ``tmp_path``, or a fresh PostgreSQL schema
selected through libpq's ``options=-csearch_path=...`` in the URL, dropped afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from crmkit.testing import database_url, fresh_database_url

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(tmp_path, "crmkit_ex", "example.db") as url:
        yield url


def run_example(name: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), url], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def tables_in(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_example_url_is_isolated(example_url: str) -> None:
    """On PostgreSQL the URL must land in the dedicated schema, or examples would share tables."""
    engine = create_engine(example_url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                assert str(conn.execute(text("SELECT current_schema()")).scalar()).startswith("crmkit_ex_")
        assert set(inspect(engine).get_table_names()) == set()
    finally:
        engine.dispose()


def test_embed_in_app(example_url: str, tmp_path: Path) -> None:
    result = run_example("embed_in_app.py", example_url, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    dialect = "sqlite" if database_url() is None else "postgresql"
    assert lines[0] == f"crmkit on {dialect}, plugins: shopevents"
    for expected in (
        "form check: {'email': ['Not a valid email address.']}",
        "sign up Anna: 200 stage=lead phone=+14155550101",
        "sign up Ben: 200",
        "checkout Anna: 200 {'order_id': 1}",
        "checkout Ben with a bad currency: 422 {'currency': ['ISO 4217 code', 'required for a purchase']}",
        # the failed checkout left neither the app's order nor a stage change behind
        "orders stored: 1",
        "Ben is still a lead",
        "notifications sent: ['thank-you email to customer 1']",
        "revenue from active customers: 1 order(s), 59.90",
        "book a fitting at 15:00: 200",
        "calls ingested: 2, rejected: [(2, ['customer_id']), (3, ['direction'])]",
        "open tasks for Sam: ['Call Ben back']",
        "reminders due at 09:30: ['Call Ben back']",
        "open tasks after the call: 0",
        "customer Anna Berg: active, activities: call, meeting, purchase",
        "customer Ben Ortiz: lead, activities: call",
    ):
        assert expected in lines, f"missing {expected!r} in:\n{result.stdout}"
    assert any(line.startswith("sign up Anna again: 409 duplicate customer") for line in lines)
    assert any(line.startswith("book another at 15:30: 409 calendar conflict") for line in lines)
    assert {"crm_customers", "shop_orders"} <= tables_in(example_url)


def test_custom_plugin(example_url: str, tmp_path: Path) -> None:
    result = run_example("custom_plugin.py", example_url, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in (
        "plugins: dental",
        "fields: insurance, insurance_number, allergies, recall_months, last_checkup",
        "personal data: insurance_number, allergies",
        "dentist's tables: dental_chart, dental_customer",
        "from new_patient a patient may go to: active, lost",
        "Anna Berg: stage=new_patient lifecycle=lead insurance=private recall_months=6",
        "Ben Ortiz: stage=new_patient lifecycle=lead insurance=none recall_months=6",
        "insurance 'gold' rejected: Must be one of: none, public, private.",
        "move rejected: transition not allowed: 'new_patient' -> 'recall_due'",
        "treatment rejected: procedure: required for a treatment, tooth: required for a treatment",
        "chart: tooth 36 extraction",
        "chart: tooth 14 filling",
        # the hook's refusal rolled back the activity it was called for, and queued letters were dropped
        "activities of Anna before: 2",
        "crown on tooth 36 refused: tooth 36 was extracted on 2026-03-02",
        "activities of Anna after: 2",
        "chart rows of Anna: 2",
        "letters queued by the refused write: 0",
        "booking refused: overlaps 1 treatment(s) of the dentist",
        "private patient checked up: Anna Berg on 2026-03-02",
        "history: None -> new_patient (created)",
        "history: new_patient -> active (first treatment)",
        "history: active -> recall_due (recall interval reached)",
    ):
        assert expected in lines, f"missing {expected!r} in:\n{result.stdout}"
    outbox = [line.removeprefix("outbox: ") for line in lines if line.startswith("outbox: ")]
    assert outbox == [
        "welcome letter to Anna Berg",
        "welcome letter to Ben Ortiz",
        "aftercare leaflet (extraction, tooth 36)",
        "aftercare leaflet (filling, tooth 14)",
    ]
    assert {"dental_customer", "dental_chart", "crmkit_alembic_version"} <= tables_in(example_url)


@pytest.mark.parametrize("name", ["embed_in_app.py", "custom_plugin.py"])
def test_examples_refuse_a_database_with_customers(name: str, example_url: str, tmp_path: Path) -> None:
    assert run_example(name, example_url, tmp_path).returncode == 0
    again = run_example(name, example_url, tmp_path)
    assert again.returncode == 2
    assert "already has customers" in again.stderr


@pytest.mark.parametrize("name", ["embed_in_app.py", "custom_plugin.py"])
def test_examples_default_to_a_temporary_sqlite_file(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == [], "the example left files behind in its working directory"
