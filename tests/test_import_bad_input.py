"""A 10,000-line file with every kind of bad line mixed in: each bad line is in the reject file with its line
number and reason, each good line is stored once, and the outcome is the one plain Python expects (the same
on SQLite and PostgreSQL: CI runs this file on both)."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crmkit_fitness import FitnessPlugin
from sqlalchemy import text

from crmkit import CRM
from crmkit.imports.values import ParseOptions

LINES = 10_000
GOALS = ("weight_loss", "muscle", "endurance")
HEADER = "Name,Email,Phone,Goal,Birthday"


def _good(i: int) -> tuple[str, dict[str, Any]]:
    name = f"Member {i}"
    if i % 97 == 0:
        name = "<script>alert('x')</script>"  # text is text: stored as written, never run
    elif i % 89 == 0:
        name = "Robert'); DROP TABLE crm_customers;--"
    email = f"m{i}@club.example"
    phone = f"+1 212 {200 + i // 10_000:03d} {i % 10_000:04d}"
    birthday = f"{1 + i % 28:02d}/{1 + i % 12:02d}/19{50 + i % 50:02d}"
    fields = [name, email, phone, GOALS[i % 3], birthday]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue(), {"name": name, "email": email}


#: (what is wrong, the line's bytes, a word the reason must hold)
BAD: list[tuple[str, bytes, str]] = [
    ("bad date", b"Bad Date,bd@club.example,,muscle,31/02/1990", "birthday"),
    ("impossible phone", b"Bad Phone,bp@club.example,12,muscle,", "phone"),
    ("unknown choice", b"Bad Goal,bg@club.example,,yoga,", "goal"),
    ("missing name", b",nn@club.example,,muscle,", "name"),
    ("NUL byte", b"Nul\x00Byte,nul@club.example,,muscle,", "NUL"),
    ("not UTF-8", b"Jos\xe9 Latin,jl@club.example,,muscle,", "UTF-8"),
    ("wrong delimiter", b"Semi;semi@club.example;;muscle;", "field"),
    ("too few fields", b"Short,short@club.example", "field"),
    ("too many fields", b"Long,long@club.example,,muscle,,extra,more", "field"),
]


def _file(seed: int = 7) -> tuple[bytes, dict[int, str], list[int], int]:
    """The file's bytes; the bad lines (line number -> the word their reason holds); the lines that repeat an
    earlier good line; how many distinct good customers."""
    rng = random.Random(seed)
    out = [b"\xef\xbb\xbf" + HEADER.encode()]  # a BOM, as spreadsheet programs write it
    bad: dict[int, str] = {}
    repeats: list[int] = []
    good_lines: list[bytes] = []
    i = 0
    while len(out) <= LINES:
        line_number = len(out) + 1
        roll = rng.random()
        if roll < 0.05:
            _, raw, word = BAD[rng.randrange(len(BAD))]
            out.append(raw)
            bad[line_number] = word
        elif roll < 0.07 and good_lines:
            out.append(rng.choice(good_lines))
            repeats.append(line_number)
        else:
            raw_text, _ = _good(i)
            i += 1
            good_lines.append(raw_text.encode())
            out.append(good_lines[-1])
    return b"\r\n".join(out) + b"\r\n", bad, repeats, i


@pytest.fixture
def fcrm(crm_factory: Any) -> CRM:
    return crm_factory([FitnessPlugin()])


def test_a_file_full_of_bad_lines_stores_every_good_line_once_and_rejects_the_rest(fcrm: CRM, tmp_path: Path) -> None:
    data, bad, repeats, distinct = _file()
    assert bad and repeats and distinct > 9000  # the file holds what the test is about
    assert {word for word in bad.values()} == {word for _, _, word in BAD}
    rejects = tmp_path / "rejects.csv"
    report = fcrm.imports.customers(
        io.BytesIO(data), format="csv", options=ParseOptions(date_format="dd/mm/yyyy"), rejects=rejects
    )
    assert report.counts == {"created": distinct, "updated": 0, "unchanged": 0, "skipped": len(repeats),
                             "rejected": len(bad)}  # fmt: skip
    with rejects.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [int(r[0]) for r in rows] == sorted(bad)
    for line, reasons, original in rows:
        assert bad[int(line)] in reasons, (line, reasons)
        assert original  # the line as it was, to fix and send again
    with fcrm.engine.connect() as conn:
        stored = conn.execute(text("SELECT name, email_normalized FROM crm_customers")).all()
    assert len(stored) == distinct
    emails = Counter(email for _, email in stored)
    assert max(emails.values()) == 1
    names = {name for name, _ in stored}
    assert "<script>alert('x')</script>" in names and "Robert'); DROP TABLE crm_customers;--" in names
    again = fcrm.imports.customers(io.BytesIO(data), format="csv", options=ParseOptions(date_format="dd/mm/yyyy"))
    assert again.counts["created"] == 0 and again.counts["rejected"] == len(bad)
    assert again.counts["unchanged"] == distinct
