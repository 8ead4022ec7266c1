"""Claim rows: how two writers of the same normalised email or phone are made to take turns.

A write that sets a customer's normalised email or phone first upserts one ``crm_customer_claims`` row per
value (``INSERT ... ON CONFLICT (kind, value) DO UPDATE``). The upsert takes that row's lock, so a second
transaction claiming the same value waits until the first has committed or rolled back; only then does it
run its duplicate check, which under PostgreSQL's READ COMMITTED (a fresh snapshot per statement) sees
the first writer's customer. On SQLite writers are serialised anyway (``BEGIN IMMEDIATE``); the rows are
written there too so both databases hold the same data.

Rows are taken in one global order, sorted by (kind, value), so two writers can never wait for each
other in a circle. A claim row is a lock, not the truth: ``customer_id`` names the last writer, and a row
left behind by a value nobody holds any more is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, delete
from sqlalchemy.orm import Session

from crmkit.db.functions import upsert_insert
from crmkit.db.models import CustomerClaim

#: (kind, value): ``("email", "anna@example.com")`` or ``("phone", "+14155550100")``.
Claim = tuple[str, str]


def claims_of(email_normalized: str | None, phone_normalized: str | None) -> set[Claim]:
    """The claims a customer with these normalised values holds."""
    out: set[Claim] = set()
    if email_normalized:
        out.add(("email", email_normalized))
    if phone_normalized:
        out.add(("phone", phone_normalized))
    return out


def take_claims(session: Session, take: Mapping[Claim, int], release: Mapping[Claim, int] | None = None) -> None:
    """Upsert the rows of ``take`` (claim -> customer id) and delete those of ``release`` that still name
    the customer given, all in (kind, value) order so that concurrent writers never deadlock.

    Call it before the duplicate check of the same transaction: the check then runs after any concurrent
    writer of these values has finished.
    """
    release = release or {}
    insert = upsert_insert(session)
    table = CustomerClaim.__table__
    for kind, value in sorted(take.keys() | release.keys()):
        if (kind, value) in take:
            stmt = insert(table).values(kind=kind, value=value, customer_id=take[kind, value])
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["kind", "value"], set_={"customer_id": stmt.excluded.customer_id}
                )
            )
        else:
            session.execute(
                delete(table).where(
                    and_(
                        table.c.kind == kind,
                        table.c.value == value,
                        table.c.customer_id == release[kind, value],
                    )
                )
            )
