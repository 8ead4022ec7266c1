"""Regenerate docs/example-report.html: the average-check report over a small, seeded dataset.

Run ``python docs/gen_example_report.py`` after changing the report templates or charts;
``--check`` exits 1 when the committed file is stale (the test suite runs it).
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import tempfile
from pathlib import Path

from crmkit import CRM

TARGET = Path(__file__).with_name("example-report.html")
NOW = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC)


def build() -> str:
    rnd = random.Random(20260701)
    with tempfile.TemporaryDirectory() as tmp:
        crm = CRM(f"sqlite:///{tmp}/example.db", load_entry_points=False)
        crm.create_schema()
        ids = [crm.customers.create({"name": f"Customer {i}"})["id"] for i in range(60)]
        purchases = []
        for month in range(1, 7):
            for cid in rnd.sample(ids, 20 + month * 3):
                for _ in range(rnd.choice((1, 1, 1, 2, 3))):
                    when = dt.datetime(2026, month, rnd.randint(1, 28), rnd.randint(8, 20), tzinfo=dt.UTC)
                    amount = rnd.choice((19.9, 29.9, 49.0, 79.0, 120.0))
                    purchases.append(
                        {
                            "customer_id": cid,
                            "kind": "purchase",
                            "amount": f"{amount:.2f}",
                            "currency": "EUR",
                            "occurred_at": when.isoformat(),
                        }
                    )
        assert crm.activities.ingest(purchases).ok
        html = crm.reports.render(
            "crm.average_check", {"since": "2026-01-01", "until": "2026-07-01"}, format="html", now=NOW
        )
        crm.close()
        return html


def main(argv: list[str]) -> int:
    html = build()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != html:
            print(f"{TARGET} is stale: run python docs/gen_example_report.py")
            return 1
        return 0
    TARGET.write_text(html, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
