"""crm.table(name): the validated CRUD service of a plugin's own table, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    func,
    select,
)

from crmkit import CRM, NotFound, ValidationError, hookimpl
from crmkit.db import UTCDateTime
from crmkit.tables import MAX_PAGE

_meta = MetaData()
ITEMS = Table(
    "shop_items",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("sku", String(12), nullable=False, unique=True),
    Column("title", String(40), nullable=False, info={"crmkit": {"min_length": 1}}),
    Column("notes", Text),
    Column("stock", Integer, nullable=False, default=0, info={"crmkit": {"min": 0}}),
    Column("views", BigInteger),
    Column("shelf", SmallInteger),
    Column("price", Numeric(6, 2), nullable=False),
    Column("weight", Float),
    Column("active", Boolean, nullable=False, default=True),
    Column("listed_on", Date),
    Column("restocked_at", UTCDateTime),
    Column("opens_at", Time),
    Column("attrs", JSON),
    Column("size", Enum("s", "m", "l", name="shop_size", native_enum=False)),
    Column("customer_id", ForeignKey("crm_customers.id", ondelete="SET NULL")),
)


class Shop:
    plugin_name = "shop"

    @hookimpl
    def crmkit_register_models(self) -> list[Any]:
        return [ITEMS]


@pytest.fixture
def shop(crm_factory: Any) -> CRM:
    return crm_factory([Shop()])


GOOD = {"sku": "A-1", "title": "Mat", "price": "19.90"}


def count(crm: CRM) -> int:
    with crm.session() as s:
        return int(s.scalar(select(func.count()).select_from(ITEMS)) or 0)


def test_a_full_row_round_trips_as_a_json_safe_record(shop: CRM) -> None:
    anna = shop.customers.create({"name": "Anna"})["id"]
    items = shop.table("shop_items")
    data = {
        "sku": "Y-7",
        "title": "Yoga mat",
        "notes": "thick",
        "stock": 3,
        "views": 2**40,
        "shelf": -2,
        "price": "1234.5",
        "weight": 1.25,
        "active": False,
        "listed_on": "2026-01-05",
        "restocked_at": "2026-01-05T12:00:00+02:00",
        "opens_at": "07:30",
        "attrs": {"colour": "blue", "tags": ["a", 1]},
        "size": "m",
        "customer_id": anna,
    }
    stored = items.insert(data)
    expected = {
        **data,
        "id": stored["id"],
        "price": "1234.50",
        "restocked_at": "2026-01-05T10:00:00+00:00",
        "opens_at": "07:30:00",
    }
    assert stored == expected
    assert items.get(stored["id"]) == expected
    changed = items.update(stored["id"], {"stock": 4, "notes": None, "size": "l"})
    assert changed == {**expected, "stock": 4, "notes": None, "size": "l"}
    assert items.get(stored["id"]) == changed


def test_defaults_apply_and_optional_columns_are_null(shop: CRM) -> None:
    stored = shop.table("shop_items").insert(GOOD)
    assert (stored["stock"], stored["active"], stored["notes"], stored["listed_on"]) == (0, True, None, None)
    assert stored["price"] == "19.90"


BAD = [
    ({"title": "Mat", "price": "1"}, "sku"),  # required
    ({**GOOD, "sku": "x" * 13}, "sku"),  # longer than String(12)
    ({**GOOD, "sku": "a\x00b"}, "sku"),
    ({**GOOD, "title": ""}, "title"),  # info: min_length 1
    ({**GOOD, "title": None}, "title"),  # not nullable
    ({**GOOD, "notes": "\ud800"}, "notes"),
    ({**GOOD, "stock": -1}, "stock"),  # info: min 0
    ({**GOOD, "stock": 2**31}, "stock"),
    ({**GOOD, "stock": 1.5}, "stock"),
    ({**GOOD, "stock": True}, "stock"),
    ({**GOOD, "views": 2**63}, "views"),
    ({**GOOD, "shelf": 2**15}, "shelf"),
    ({**GOOD, "price": "10000.00"}, "price"),  # Numeric(6, 2)
    ({**GOOD, "price": "1.005"}, "price"),
    ({**GOOD, "price": "NaN"}, "price"),
    ({**GOOD, "weight": float("inf")}, "weight"),
    ({**GOOD, "active": "maybe"}, "active"),
    ({**GOOD, "listed_on": "2200-01-01"}, "listed_on"),
    ({**GOOD, "listed_on": "yesterday"}, "listed_on"),
    ({**GOOD, "restocked_at": "9999-12-31T23:00:00Z"}, "restocked_at"),
    ({**GOOD, "opens_at": "25:00"}, "opens_at"),
    ({**GOOD, "attrs": {"x": float("nan")}}, "attrs"),
    ({**GOOD, "attrs": [1, 2]}, "attrs"),
    ({**GOOD, "size": "xl"}, "size"),
    ({**GOOD, "customer_id": 999}, "customer_id"),  # no such customer
    ({**GOOD, "customer_id": 2**31}, "customer_id"),
    ({**GOOD, "id": 5}, "id"),  # the key is the database's
    ({**GOOD, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("data", "field"), BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_bad_input_is_a_validation_error_naming_the_column(shop: CRM, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        shop.table("shop_items").insert(data)
    assert set(info.value.errors) == {field}
    assert count(shop) == 0


def test_a_taken_unique_value_is_refused_on_insert_and_update(shop: CRM) -> None:
    items = shop.table("shop_items")
    first = items.insert(GOOD)
    other = items.insert({**GOOD, "sku": "B-2"})
    with pytest.raises(ValidationError) as info:
        items.insert({**GOOD, "title": "Another"})
    assert set(info.value.errors) == {"sku"}
    with pytest.raises(ValidationError):
        items.update(other["id"], {"sku": "A-1"})
    assert items.update(first["id"], {"sku": "A-1"})["sku"] == "A-1"  # its own value is not "taken"
    assert count(shop) == 2


def test_update_and_get_of_a_missing_row_are_not_found(shop: CRM) -> None:
    items = shop.table("shop_items")
    with pytest.raises(NotFound):
        items.get(1)
    with pytest.raises(NotFound):
        items.update(1, {"stock": 2})
    with pytest.raises(NotFound):
        items.get(2**40)
    with pytest.raises(ValidationError):
        items.get("1")  # type: ignore[arg-type]
    stored = items.insert(GOOD)
    with pytest.raises(ValidationError) as info:
        items.update(stored["id"], {"price": "-"})
    assert set(info.value.errors) == {"price"}


def test_list_pages_by_key_and_filters_by_equality(shop: CRM) -> None:
    items = shop.table("shop_items")
    made = [items.insert({**GOOD, "sku": f"S-{i}", "shelf": i % 3, "notes": None if i % 2 else "n"}) for i in range(7)]
    ids = [m["id"] for m in made]
    assert [r["id"] for r in items.list(limit=3)] == ids[:3]
    assert [r["id"] for r in items.list(after=ids[2], limit=3)] == ids[3:6]
    assert [r["id"] for r in items.list(after=ids[5], limit=3)] == ids[6:]
    assert items.list(after=ids[6]) == []
    # by hand: shelves 0,1,2,0,1,2,0 and notes n,None,n,None,n,None,n
    assert [r["sku"] for r in items.list({"shelf": 0})] == ["S-0", "S-3", "S-6"]
    assert [r["sku"] for r in items.list({"shelf": "1", "notes": None})] == ["S-1"]
    with pytest.raises(ValidationError):
        items.list({"shelf": 2**15})  # beyond SmallInteger, like input
    with pytest.raises(ValidationError) as info:
        items.list({"colour": "red", "shelf": "x"})
    assert set(info.value.errors) == {"colour", "shelf"}
    for limit in (0, MAX_PAGE + 1, "5"):
        with pytest.raises(ValidationError):
            items.list(limit=limit)  # type: ignore[arg-type]


def test_writes_join_the_unit_of_work_and_reads_see_it(shop: CRM) -> None:
    items = shop.table("shop_items")
    with pytest.raises(RuntimeError), shop.transaction() as tx:
        stored = items.insert(GOOD, tx=tx)
        assert items.get(stored["id"], tx=tx)["sku"] == "A-1"
        assert [r["sku"] for r in items.list(tx=tx)] == ["A-1"]
        with pytest.raises(ValidationError):
            items.insert(GOOD, tx=tx)  # refused in a savepoint: the first insert survives it
        assert items.update(stored["id"], {"stock": 9}, tx=tx)["stock"] == 9
        raise RuntimeError("the caller gives up")
    assert count(shop) == 0
    with shop.transaction() as tx:
        items.insert(GOOD, tx=tx)
    assert [r["sku"] for r in items.list()] == ["A-1"]


def test_only_a_loaded_plugins_tables_have_a_service(shop: CRM) -> None:
    with pytest.raises(NotFound):
        shop.table("crm_customers")
    with pytest.raises(NotFound):
        shop.table("nope_items")
    assert shop.table("shop_items") is shop.table("shop_items")
