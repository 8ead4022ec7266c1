"""examples/flask_app.py, driven through Flask's test client on the test database (SQLite or PostgreSQL).

Expected values come from what each test sends and from plain Python over the records it created, never
from the app's own answers; the OpenAPI document is checked by openapi-spec-validator and against real
responses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar, cast

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

import crmkit
from crmkit import CRM, FieldSpec, Transaction, hookimpl
from crmkit.db.models import Activity, Contact, Customer, Task, User

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crmkit_flask_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Flask finds an app's root folder through its module
    spec.loader.exec_module(module)
    return module


web = _load_example()
_View = TypeVar("_View", bound=Callable[..., Any])


def unit_of_work(view: _View) -> _View:
    """The example's decorator, typed: the example is loaded from its file, so mypy sees a module of Any."""
    return cast("_View", web.unit_of_work(view))


PLANS = ("basic", "gold", "silver")


class Gym:
    """A plugin with customer fields, so the app's schemas and filters cover plugin fields too."""

    plugin_name = "gym"

    @hookimpl
    def crmkit_register_fields(self) -> list[FieldSpec]:
        return [
            FieldSpec("plan", choices=PLANS, default="basic", index=True),
            FieldSpec("visits", "integer"),
            FieldSpec("fee", "decimal"),
        ]


@pytest.fixture
def crm(crm_factory: Callable[..., CRM]) -> CRM:
    crm = crm_factory([Gym()])
    crm.fields.define(FieldSpec("referrer", max_length=80))
    return crm


@pytest.fixture
def app(crm: CRM) -> Flask:
    app = web.create_app(crm)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def count(crm: CRM, table: Any, *where: Any) -> int:
    with crm.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0


def create(client: FlaskClient, **data: Any) -> dict[str, Any]:
    response = client.post("/customers", json=data)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_create_read_update(client: FlaskClient, crm: CRM) -> None:
    sent = {"name": "Anna Berg", "email": "Anna@Example.com", "plan": "gold", "visits": 3, "referrer": "Ben"}
    response = client.post("/customers", json=sent)
    assert response.status_code == 201
    anna = response.get_json()
    assert response.headers["Location"] == f"/customers/{anna['id']}"
    assert {k: anna[k] for k in sent} == sent
    assert anna["email_normalized"] == "anna@example.com"
    assert anna["stage"] == "lead"
    assert count(crm, Customer.__table__) == 1

    got = client.get(response.headers["Location"])
    assert got.status_code == 200
    assert got.get_json() == anna

    changed = client.patch(f"/customers/{anna['id']}", json={"plan": "silver", "fee": "12.50", "referrer": None})
    assert changed.status_code == 200, changed.get_json()
    after = client.get(f"/customers/{anna['id']}").get_json()
    assert after == changed.get_json()
    assert (after["plan"], after["fee"], after["referrer"], after["name"]) == ("silver", "12.50", None, "Anna Berg")


def test_duplicate_is_a_409_with_the_ids(client: FlaskClient, crm: CRM) -> None:
    anna = create(client, name="Anna Berg", email="anna@example.com")
    again = client.post("/customers", json={"name": "Anna B.", "email": " ANNA@example.com"})
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
    problem = again.get_json()
    assert (problem["status"], problem["existing_ids"], problem["matched_on"]) == (409, [anna["id"]], ["email"])
    assert count(crm, Customer.__table__) == 1

    ben = create(client, name="Ben Ortiz", email="ben@example.com")
    taken = client.patch(f"/customers/{ben['id']}", json={"email": "anna@example.com"})
    assert taken.status_code == 409
    assert taken.get_json()["existing_ids"] == [anna["id"]]
    assert client.get(f"/customers/{ben['id']}").get_json()["email"] == "ben@example.com"

    # the front desk has checked: a second Anna with the same address
    insist = client.post("/customers?allow_duplicate=true", json={"name": "Anna B.", "email": "anna@example.com"})
    assert insist.status_code == 201
    assert count(crm, Customer.__table__, Customer.email_normalized == "anna@example.com") == 2
    assert client.post("/customers?allow_duplicate=perhaps", json={"name": "Cleo"}).get_json()["errors"] == {
        "allow_duplicate": ["Not a valid boolean."]
    }


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"name": "", "email": "not an email"}, {"name", "email"}),
        ({"name": "Anna", "plan": "platinum", "visits": 1.5}, {"plan", "visits"}),
        ({"name": "Anna", "nickname": "An"}, {"nickname"}),
        ({"name": "Anna", "referrer": "x" * 81}, {"referrer"}),
        (["Anna"], {"_schema"}),
    ],
)
def test_bad_input_is_a_422_naming_the_fields(client: FlaskClient, crm: CRM, payload: Any, fields: set[str]) -> None:
    response = client.post("/customers", json=payload)
    assert response.status_code == 422
    problem = response.get_json()
    assert set(problem["errors"]) == fields
    assert all(problem["errors"][f] for f in fields)
    assert count(crm, Customer.__table__) == 0


def test_bad_update_is_a_422_and_changes_nothing(client: FlaskClient) -> None:
    anna = create(client, name="Anna Berg", plan="gold")
    for payload, field in (({"stage": "active"}, "stage"), ({"visits": "many"}, "visits"), ({"name": ""}, "name")):
        response = client.patch(f"/customers/{anna['id']}", json=payload)
        assert response.status_code == 422
        assert list(response.get_json()["errors"]) == [field]
    assert client.get(f"/customers/{anna['id']}").get_json() == anna


def test_a_body_that_is_not_json_is_a_problem(client: FlaskClient) -> None:
    response = client.post("/customers", data="name=Anna", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"
    broken = client.post("/customers", data="{", content_type="application/json")
    assert broken.status_code == 400
    assert broken.get_json()["status"] == 400


def test_not_found(client: FlaskClient, crm: CRM) -> None:
    for response in (
        client.get("/customers/999"),
        client.patch("/customers/999", json={"name": "Nobody"}),
        client.get(f"/customers/{2**40}"),  # beyond the id column: no such customer, not a driver error
    ):
        assert response.status_code == 404
        assert response.get_json()["kind"] == "customer"
    assert client.get("/no/such/page").status_code == 404
    assert count(crm, Customer.__table__) == 0


def test_log_an_activity(client: FlaskClient, crm: CRM) -> None:
    anna = create(client, name="Anna Berg")
    sent = {"customer_id": anna["id"], "kind": "payment", "amount": "49.90", "currency": "EUR"}
    response = client.post("/activities", json=sent)
    assert response.status_code == 201, response.get_json()
    logged = response.get_json()
    assert {k: logged[k] for k in sent} == sent
    assert count(crm, Activity.__table__, Activity.customer_id == anna["id"]) == 1

    unknown = client.post("/activities", json={**sent, "customer_id": 999})
    assert unknown.status_code == 422
    assert list(unknown.get_json()["errors"]) == ["customer_id"]
    negative = client.post("/activities", json={**sent, "amount": "-1"})
    assert negative.status_code == 422
    assert list(negative.get_json()["errors"]) == ["amount"]
    assert count(crm, Activity.__table__) == 1


def test_calendar_conflict_is_a_409(client: FlaskClient, crm: CRM) -> None:
    anna = create(client, name="Anna Berg")
    owner = crm.users.create({"name": "Lea"})
    contact = crm.customers.add_contact(anna["id"], {"name": "Anna Berg"})
    meeting = {
        "customer_id": anna["id"],
        "contact_id": contact["id"],
        "subject": "fitting",
        "kind": "meeting",
        "status": "planned",
        "owner_id": owner["id"],
        "occurred_at": "2026-03-06T15:00:00+00:00",
        "duration_min": 45,
    }
    first = client.post("/activities", json=meeting)
    assert first.status_code == 201, first.get_json()
    clash = client.post("/activities", json={**meeting, "occurred_at": "2026-03-06T15:30:00+00:00"})
    assert clash.status_code == 409
    assert clash.get_json()["conflicting_ids"] == [first.get_json()["id"]]
    assert count(crm, Activity.__table__) == 1
    booked = client.post("/activities?allow_conflict=1", json={**meeting, "occurred_at": "2026-03-06T15:30:00+00:00"})
    assert booked.status_code == 201
    assert count(crm, Activity.__table__) == 2


def test_a_request_is_one_unit_of_work(app: Flask, crm: CRM) -> None:
    """Every write of a request commits together when the view returns, or none does when it raises."""

    @app.post("/pair")
    @unit_of_work
    def pair(tx: Transaction) -> tuple[dict[str, Any], int]:
        data = web.body()
        first = crm.customers.create({"name": data["first"]}, tx=tx)
        crm.activities.log({"customer_id": first["id"], "kind": "note", "subject": "signed up"}, tx=tx)
        crm.customers.create({"name": data["second"]}, tx=tx)  # a ValidationError when empty
        return {"id": first["id"]}, 201

    client = app.test_client()
    assert client.post("/pair", json={"first": "Anna", "second": ""}).status_code == 422
    assert (count(crm, Customer.__table__), count(crm, Activity.__table__)) == (0, 0)
    assert client.post("/pair", json={"first": "Anna", "second": "Ben"}).status_code == 201
    with crm.engine.connect() as conn:
        assert sorted(conn.scalars(sa.select(Customer.name))) == ["Anna", "Ben"]
    assert count(crm, Activity.__table__) == 1


@pytest.mark.parametrize(
    ("error", "status", "extra"),
    [
        (crmkit.TransitionError("lead", "lost"), 409, {"from_stage": "lead", "to_stage": "lost"}),
        (crmkit.DatabaseBusyError("database is locked"), 503, {}),
        (crmkit.CalendarConflictError(3, [7, 9]), 409, {"owner_id": 3, "conflicting_ids": [7, 9]}),
        (crmkit.NotFound("activity", 5), 404, {"kind": "activity"}),
    ],
)
def test_errors_map_to_statuses(
    app: Flask, crm: CRM, error: crmkit.CRMError, status: int, extra: dict[str, Any]
) -> None:
    @app.post("/fail")
    @unit_of_work
    def fail(tx: Transaction) -> NoReturn:
        crm.customers.create({"name": "Anna"}, tx=tx)
        raise error

    response = app.test_client().post("/fail")
    assert response.status_code == status
    problem = response.get_json()
    assert {k: problem[k] for k in extra} == extra
    assert (problem["status"], problem["detail"]) == (status, str(error))
    if status == 503:
        assert response.headers["Retry-After"] == str(web.RETRY_AFTER)
    assert count(crm, Customer.__table__) == 0


def test_list_filters_and_pages_through_with_the_cursor(client: FlaskClient, crm: CRM) -> None:
    created = [
        create(client, name=f"{prefix} {i}", plan=PLANS[i % 3], visits=i)
        for i, prefix in enumerate(["Anna", "Ben", "Anton", "Cleo", "Andy", "Dora", "Anika", "Emil"] * 2)
    ]
    wanted = sorted(
        (c for c in created if c["plan"] in ("gold", "silver") and c["visits"] >= 2), key=lambda c: -c["id"]
    )
    assert len(wanted) > 6  # several pages of 3

    seen: list[dict[str, Any]] = []
    pages = 0
    query: dict[str, Any] = {"plan__in": "gold,silver", "visits__gte": "2", "order_by": "-id", "limit": "3"}
    while True:
        response = client.get("/customers", query_string=query)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages += 1
        assert len(page["items"]) <= 3
        seen.extend(page["items"])
        if page["next_cursor"] is None:
            assert "Link" not in response.headers
            break
        assert 'rel="next"' in response.headers["Link"]
        query = {**query, "after": page["next_cursor"]}
    assert seen == wanted
    counted = client.get("/customers", query_string={**query, "after": "", "count": "true"}).get_json()
    assert counted["count"] == len(wanted)
    # a full last page may or may not announce the empty one after it
    assert pages in (math.ceil(len(wanted) / 3), len(wanted) // 3 + 1)

    # the same filter with the values repeated instead of comma-separated, and a text prefix
    response = client.get("/customers?plan__in=gold&plan__in=silver&name__prefix=An&limit=200")
    expected = [c for c in created if c["plan"] in ("gold", "silver") and c["name"].startswith("An")]
    assert expected
    assert response.get_json()["items"] == sorted(expected, key=lambda c: c["id"])


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=many", f"limit={web.MAX_LIMIT + 1}", "stage=lead&stage=active", "after=not-a-cursor"],
)
def test_bad_list_parameters_are_a_422(client: FlaskClient, query: str) -> None:
    create(client, name="Anna")
    response = client.get(f"/customers?{query}")
    assert response.status_code == 422
    assert response.get_json()["errors"]


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    return properties


def test_openapi_document(client: FlaskClient, crm: CRM) -> None:
    doc = client.get("/openapi.json").get_json()
    validate_spec(doc)
    assert set(doc["paths"]) == {"/customers", "/customers/{customer_id}", "/activities", "/openapi.json"}
    assert set(doc["paths"]["/customers"]) == {"get", "post"}
    assert set(doc["paths"]["/customers/{customer_id}"]) == {"get", "patch"}
    schemas = doc["components"]["schemas"]
    assert {"Customer", "CustomerInput", "CustomerChanges", "Activity", "ActivityInput", "CustomerPage"} <= set(schemas)
    for name, schema in schemas.items():
        assert _properties(schema), name
        for field, prop in _properties(schema).items():
            assert "type" in prop or "$ref" in prop, f"{name}.{field} has no type: {prop}"

    customer_in, customer = schemas["CustomerInput"], schemas["Customer"]
    # core, plugin and run-time fields, with the limits crmkit checks
    assert customer_in["properties"]["name"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert customer_in["properties"]["plan"]["enum"] == [*PLANS, None]
    assert customer_in["properties"]["visits"] | {"nullable": True} == {
        "type": "integer",
        "format": "int32",
        "minimum": -(2**31),
        "maximum": 2**31 - 1,
        "nullable": True,
    }
    assert customer_in["properties"]["fee"]["type"] == "string"
    assert customer_in["properties"]["fee"]["format"] == "decimal"
    assert customer_in["properties"]["referrer"]["maxLength"] == 80
    assert customer_in["properties"]["birthday"]["format"] == "date"
    assert customer_in["properties"]["email"]["format"] == "email"
    assert customer_in["required"] == ["name"]
    assert customer_in["additionalProperties"] is False
    assert "stage" not in schemas["CustomerChanges"]["properties"]
    assert "required" not in schemas["CustomerChanges"]
    assert set(customer["properties"]) >= {"id", "plan", "visits", "fee", "referrer", "created_at"}
    assert customer["properties"]["created_at"] == {"type": "string", "format": "date-time"}
    assert customer["properties"]["fee"] == {"type": "string", "format": "decimal", "nullable": True}
    activity_in = schemas["ActivityInput"]["properties"]
    assert activity_in["duration_min"]["minimum"] == 0
    assert activity_in["duration_min"]["maximum"] == 24 * 60
    assert activity_in["occurred_at"]["format"] == "date-time"
    assert schemas["Activity"]["properties"]["amount"]["type"] == "string"


def test_responses_match_the_document(client: FlaskClient, crm: CRM) -> None:
    """The read model is what the output schemas describe: real responses validate against them."""
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    anna = create(client, name="Anna Berg", birthday="1990-04-01", plan="gold", fee="9.90", referrer="Ben")
    ben = create(client, name="Ben Ortiz")  # nearly everything null
    for record in (anna, ben, client.get(f"/customers/{anna['id']}").get_json()):
        OAS30Validator(schemas["Customer"]).validate(record)
    payment = {"customer_id": anna["id"], "kind": "payment", "amount": "49.90", "currency": "EUR"}
    activity = client.post("/activities", json=payment).get_json()
    OAS30Validator(schemas["Activity"]).validate(activity)
    problem = client.post("/customers", json={"name": ""}).get_json()
    OAS30Validator(schemas["ValidationProblem"]).validate(problem)


def test_the_document_follows_run_time_fields(client: FlaskClient, crm: CRM) -> None:
    before = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert "shoe_size" not in before["CustomerInput"]["properties"]
    crm.fields.define(FieldSpec("shoe_size", "integer"))
    after = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert after["CustomerInput"]["properties"]["shoe_size"]["type"] == "integer"
    assert after["Customer"]["properties"]["shoe_size"]["type"] == "integer"


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("customer_out", Customer),
        ("activity_out", Activity),
        ("task_out", Task),
        ("user_out", User),
        ("contact_out", Contact),
    ],
)
def test_output_schemas_say_which_fields_may_be_null(crm: CRM, name: str, model: Any) -> None:
    """An output field may be null exactly when its column may: the document promises what reads give."""
    schema = getattr(crm.schemas, name)
    columns = {c.name: c for c in model.__table__.c}
    shared = [f for f in schema.fields if f in columns]
    assert len(shared) > 3
    for field in shared:
        nullable = columns[field].nullable
        assert (schema.fields[field].allow_none, schema.fields[field].required) == (nullable, not nullable), field
    # plugin and run-time fields have no column here: they may always be null
    for field in set(schema.fields) - set(columns):
        assert schema.fields[field].allow_none, field


def test_public_schemas_all_convert(crm: CRM) -> None:
    """Every public schema becomes an OpenAPI schema whose every property has a type."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    from crmkit.openapi import register_fields

    plugin = MarshmallowPlugin()
    spec = APISpec("all", "1", "3.0.3", plugins=[plugin])
    register_fields(plugin)
    names = ["customer_in", "customer_out", "activity_in", "activity_out", "task_in", "task_out"]
    names += ["user_in", "user_out", "contact_in", "contact_out"]
    for name in names:
        spec.components.schema(name, schema=getattr(crm.schemas, name))
    doc = spec.to_dict()
    validate_spec({**doc, "paths": {}})
    for name in names:
        properties = doc["components"]["schemas"][name]["properties"]
        assert set(properties) == set(getattr(crm.schemas, name).fields)
        for field, prop in properties.items():
            assert prop.get("type"), f"{name}.{field}: {prop}"
    task_in = doc["components"]["schemas"]["task_in"]["properties"]
    assert (task_in["priority"]["minimum"], task_in["priority"]["maximum"]) == (0, 100)
    assert task_in["due_at"]["format"] == "date-time"


def test_register_fields_changes_only_its_own_document(crm: CRM) -> None:
    """apispec keeps its field mapping in a class attribute; crmkit's must not leak into other documents."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin
    from marshmallow import Schema, fields

    from crmkit.openapi import register_fields

    first = MarshmallowPlugin()
    APISpec("a", "1", "3.0.3", plugins=[first])
    register_fields(first)
    other = MarshmallowPlugin()
    spec = APISpec("b", "1", "3.0.3", plugins=[other])
    spec.components.schema("Plain", schema=Schema.from_dict({"price": fields.Decimal()})())
    assert spec.to_dict()["components"]["schemas"]["Plain"]["properties"]["price"] == {"type": "number"}
    assert first.converter is not None and other.converter is not None
    assert first.converter.field_mapping is not other.converter.field_mapping


def test_the_web_page_prints_what_it_says() -> None:
    """docs/web.md's self-contained blocks (those followed by what they print) run and print that."""
    from test_docs import DOCS, python_examples

    shown = [e for e in python_examples((DOCS / "web.md").read_text(encoding="utf-8")) if e.output is not None]
    assert len(shown) == 2
    for example in shown:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(example.code, f"docs/web.md:{example.line}", "exec"), {"__name__": "web_md"})
        assert printed.getvalue() == example.output, f"docs/web.md line {example.line}"
