"""The one-at-a-time writes build their record from what they wrote, and write on the driver's cursor in a
savepoint of their own: the record is what a read gives, and a failed call leaves neither rows nor ORM
objects behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from crmkit import CRM, FieldSpec, Transaction, hookimpl
from crmkit.db.models import StageHistory, User

TYPED = {
    "name": "Anna",
    "email": "Anna@Example.COM",
    "phone": "(415) 555-0100",
    "tier": "gold",
    "score": 7,
    "vip": True,
    "country": "US",
}
#: the same customer as text, as a form posts it: marshmallow's path
POSTED = {**TYPED, "score": "7", "birthday": "1990-05-01", "balance": "12.5", "last_seen": "2026-01-02T03:04:05+02:00"}


@pytest.fixture
def rich(pcrm: CRM) -> CRM:
    pcrm.fields.define(FieldSpec("shoe", "decimal"))
    pcrm.fields.define(FieldSpec("met", "datetime"))
    return pcrm


@pytest.mark.parametrize("data", [TYPED, POSTED], ids=["typed", "posted"])
@pytest.mark.parametrize("joined", [False, True], ids=["own", "joined"])
def test_the_record_a_write_returns_is_the_record_a_read_gives(rich: CRM, data: dict[str, Any], joined: bool) -> None:
    extra = {"shoe": "41.50", "met": "2026-03-04T05:06:07.123456+07:00"}
    change = {"phone": "+66 81 234 5678", "country": "TH", "tier": "silver", "shoe": 42, "email": None}
    if joined:
        with rich.transaction() as tx:
            created = rich.customers.create({**data, **extra}, tx=tx)
            assert created == rich.customers.get(created["id"], tx=tx)
            changed = rich.customers.update(created["id"], change, tx=tx)
            assert changed == rich.customers.get(created["id"], tx=tx)
    else:
        created = rich.customers.create({**data, **extra})
        assert created == rich.customers.get(created["id"])
        changed = rich.customers.update(created["id"], change)
    assert rich.customers.get(created["id"]) == changed
    assert created["shoe"] == "41.50" and created["met"].startswith("2026-03-0")
    assert (changed["phone_normalized"], changed["tier"], changed["shoe"]) == ("+66812345678", "silver", "42.00")
    assert changed["email"] is None and changed["email_normalized"] is None
    assert changed["updated_at"] >= created["updated_at"] and changed["created_at"] == created["created_at"]
    with rich.session() as s:
        assert s.scalar(select(func.count()).select_from(StageHistory)) == 1


class Ghost:
    """Writes a user through the ORM, then refuses the customer."""

    plugin_name = "ghost"

    def __init__(self) -> None:
        self.made: list[User] = []  # held, so the session's weak identity map keeps them too

    @hookimpl
    def crmkit_customer_created(self, tx: Transaction, customer: Any) -> None:
        self.made.append(User(name=f"ghost of {customer['name']}"))
        tx.session.add(self.made[-1])
        tx.session.flush()
        if customer["name"] == "Refused":
            raise RuntimeError("refused")


def test_a_failed_call_in_a_unit_of_work_leaves_no_rows_and_no_orm_objects(crm_factory: Any) -> None:
    ghost = Ghost()
    crm = crm_factory([ghost])
    with crm.transaction() as tx:
        kept = User(name="kept")
        tx.session.add(kept)  # the caller's own pending object: flushed before the call's savepoint
        crm.customers.create({"name": "Anna", "email": "anna@example.com"}, tx=tx)
        with pytest.raises(RuntimeError, match="refused"):
            crm.customers.create({"name": "Refused", "email": "refused@example.com"}, tx=tx)
        names = sorted(u.name for u in tx.session if isinstance(u, User))
        assert names == ["ghost of Anna", "kept"]  # the refused one's user is gone from the session too
        assert kept.id is not None and kept.name == "kept"  # expired, and read again from its row
        assert [u.name for u in ghost.made] == ["ghost of Anna", "ghost of Refused"]
        crm.customers.create({"name": "Ben"}, tx=tx)
    with crm.session() as s:
        assert sorted(s.scalars(select(User.name))) == ["ghost of Anna", "ghost of Ben", "kept"]
    assert [c["name"] for c in crm.customers.list()] == ["Anna", "Ben"]
    assert crm.customers.find_duplicates(email="refused@example.com") == []


def test_a_birthday_in_the_future_somewhere_is_refused_through_marshmallow(crm: CRM) -> None:
    from crmkit import ValidationError

    with pytest.raises(ValidationError) as err:
        crm.customers.create({"name": "Anna", "birthday": dt.date.today() + dt.timedelta(days=3)})
    assert list(err.value.errors) == ["birthday"]


def test_an_orm_copy_of_the_customer_in_the_unit_of_work_sees_the_update(crm: CRM) -> None:
    from crmkit.db.models import Customer

    anna = crm.customers.create({"name": "Anna", "phone": "(415) 555-0100"})
    with crm.transaction() as tx:
        loaded = tx.session.get(Customer, anna["id"])
        assert loaded is not None and loaded.phone_normalized == "+14155550100"
        crm.customers.update(anna["id"], {"phone": "(415) 555-0101"}, tx=tx)
        assert loaded.phone_normalized == "+14155550101"
