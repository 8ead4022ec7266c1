"""crmkit inside a Flask web app: a small JSON API over customers and activities.

    python examples/flask_app.py [DATABASE_URL] [--host HOST] [--port PORT]

DATABASE_URL is any SQLAlchemy URL; without one the app serves ``crmkit-web.db``, a SQLite file in the
working directory (created with crmkit's tables if it does not exist). Then, from another terminal::

    curl -s -X POST localhost:5000/customers -H 'Content-Type: application/json' \\
         -d '{"name": "Anna Berg", "email": "anna@example.com"}'
    curl -s 'localhost:5000/customers?stage=lead&order_by=-created_at&limit=20'
    curl -s localhost:5000/openapi.json

``create_app(crm)`` is the part to copy. What it shows:

* one ``CRM`` built at start-up and shared by every request (it is safe to share: each call or unit of
  work has a session of its own);
* one crmkit unit of work per writing request (:func:`unit_of_work`), handed to every call as ``tx=``,
  committed before the response is sent and rolled back when the view raises, so a request's writes commit
  together or not at all;
* crmkit's errors mapped to HTTP status codes in one error handler, as ``application/problem+json``;
* lists with filters from the query string and a keyset cursor, through ``crm.customers.search``;
* an OpenAPI 3 document generated from ``crm.schemas`` with apispec, the plugins' and run-time fields
  included (:func:`openapi_document`).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Response, current_app, jsonify, request, url_for
from marshmallow import fields as mf
from werkzeug.exceptions import HTTPException

import crmkit
from crmkit import CRM, Transaction, migrate
from crmkit.limits import Int, check
from crmkit.openapi import register_fields

DEFAULT_URL = "sqlite:///crmkit-web.db"
#: The largest page a client may ask for: a page is built in memory and sent in one response.
MAX_LIMIT = 200
#: Query parameters of ``GET /customers`` that are not filters.
PAGING = ("order_by", "after", "limit", "count")
#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER = 1

# an error's HTTP status and the problem "title"; the first match wins, so subclasses come first
STATUS: tuple[tuple[type[crmkit.CRMError], int, str], ...] = (
    (crmkit.ValidationError, 422, "invalid input"),
    (crmkit.NotFound, 404, "not found"),
    (crmkit.DuplicateCustomerError, 409, "duplicate customer"),
    (crmkit.TransitionError, 409, "transition not allowed"),
    (crmkit.CalendarConflictError, 409, "calendar conflict"),
    (crmkit.DatabaseBusyError, 503, "database busy"),
)

View = TypeVar("View", bound=Callable[..., Any])


def create_app(crm: CRM) -> Flask:
    """A Flask app serving ``crm``. The caller owns ``crm``: create its schema before, close it after."""
    app = Flask(__name__)
    app.extensions["crmkit"] = crm

    # Reading requests make a single read call and open no unit of work: on SQLite a writing unit takes
    # the database's write lock, which a GET has no reason to hold.

    @app.get("/customers")
    def list_customers() -> Response:
        where = filters(request.args)
        limit = check(Int(min=1, max=MAX_LIMIT), request.args.get("limit", "50"), "limit", "invalid paging")
        page = crm.customers.search(
            where,
            order_by=request.args.get("order_by", "id"),
            after=request.args.get("after") or None,
            limit=limit,
        )
        listing: dict[str, Any] = {"items": page.items, "next_cursor": page.next_cursor}
        if flag("count"):  # on request only: counting every match costs more than reading a page
            listing["count"] = crm.customers.count(where)
        response = jsonify(listing)
        if page.next_cursor is not None:
            following: dict[str, Any] = {**request.args.to_dict(flat=False), "after": page.next_cursor}
            response.headers["Link"] = f'<{url_for("list_customers", **following)}>; rel="next"'
        return response

    @app.get("/customers/<int:customer_id>")
    def get_customer(customer_id: int) -> Response:
        return jsonify(crm.customers.get(customer_id))

    @app.post("/customers")
    @unit_of_work
    def create_customer(tx: Transaction) -> tuple[Response, int, dict[str, str]]:
        customer = crm.customers.create(body(), allow_duplicate=flag("allow_duplicate"), tx=tx)
        return jsonify(customer), 201, {"Location": url_for("get_customer", customer_id=customer["id"])}

    @app.patch("/customers/<int:customer_id>")
    @unit_of_work
    def update_customer(customer_id: int, tx: Transaction) -> Response:
        changes = body()
        return jsonify(crm.customers.update(customer_id, changes, allow_duplicate=flag("allow_duplicate"), tx=tx))

    @app.post("/activities")
    @unit_of_work
    def log_activity(tx: Transaction) -> tuple[Response, int]:
        return jsonify(crm.activities.log(body(), allow_conflict=flag("allow_conflict"), tx=tx)), 201

    @app.get("/openapi.json")
    def openapi() -> Response:
        # built per request: an admin may add a run-time field while the app runs, and the document
        # must show it as the schemas do
        return jsonify(openapi_document(crm))

    @app.errorhandler(crmkit.CRMError)
    def crm_error(exc: crmkit.CRMError) -> Response:
        for error_class, status, title in STATUS:
            if isinstance(exc, error_class):
                response = problem(status, title, str(exc), **details(exc))
                if status == 503:
                    response.headers["Retry-After"] = str(RETRY_AFTER)
                return response
        raise exc  # a PluginError is a bug in the deployment: a 500, as any other

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return problem(status, exc.name, exc.description or exc.name)

    return app


def crm_of(app: Flask) -> CRM:
    crm: CRM = app.extensions["crmkit"]
    return crm


def unit_of_work(view: View) -> View:
    """Run the view in one crmkit unit of work, passed as its ``tx`` argument. The unit commits when the view
    returns, before Flask sends the response: a client never gets a 201 for a write that a failed commit
    then lost. When the view raises, everything it wrote is rolled back and the error handlers answer."""

    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        with crm_of(current_app).transaction() as tx:
            return view(*args, tx=tx, **kwargs)

    return run  # type: ignore[return-value]


def body() -> Any:
    """The request's JSON. Whether it is an object is crmkit's to check: it answers with a field error."""
    return request.get_json()  # a body that is not JSON: Flask's 400 or 415, turned into a problem


def flag(name: str) -> bool:
    """A yes/no query parameter (``?allow_duplicate=true``): the client has seen the 409 and insists."""
    value: bool = check(_FLAG, request.args.get(name, "false"), name, "invalid parameter")
    return value


_FLAG = mf.Boolean()


def filters(args: Any) -> dict[str, Any]:
    """``where`` for ``crm.customers.search`` from a query string: ``stage=lead``, ``plan__in=gold,silver``
    (or ``plan__in=gold&plan__in=silver``), ``created_at__gte=2026-01-01T00:00:00Z``. Values stay text:
    crmkit reads them as the field's type and answers a bad one with a ValidationError."""
    where: dict[str, Any] = {}
    for key in args:
        if key in PAGING:
            continue
        values = args.getlist(key)
        if key.endswith("__in"):
            where[key] = [item for value in values for item in value.split(",") if item]
        elif len(values) > 1:
            raise crmkit.ValidationError({key: ["given more than once; use __in for several values"]}, "invalid filter")
        else:
            where[key] = values[0]
    return where


def details(exc: crmkit.CRMError) -> dict[str, Any]:
    """What a client needs to act on ``exc`` beyond its message."""
    if isinstance(exc, crmkit.ValidationError):
        return {"errors": exc.errors}
    if isinstance(exc, crmkit.DuplicateCustomerError):
        return {"existing_ids": exc.existing_ids, "matched_on": exc.matched_on}
    if isinstance(exc, crmkit.CalendarConflictError):
        return {"owner_id": exc.owner_id, "conflicting_ids": exc.conflicting_ids}
    if isinstance(exc, crmkit.TransitionError):
        return {"from_stage": exc.source, "to_stage": exc.target}
    if isinstance(exc, crmkit.NotFound):
        return {"kind": exc.kind}
    return {}


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document."""
    response = jsonify({"status": status, "title": title, "detail": detail, **extra})
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


# -- the OpenAPI document --------------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _problem(description: str, schema: str = "Problem") -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref(schema)}}}


def _problem_schema(**extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "title", "detail"],
        "properties": {
            "status": {"type": "integer"},
            "title": {"type": "string"},
            "detail": {"type": "string"},
            **extra,
        },
    }


_IDS = {"type": "array", "items": {"type": "integer"}}


def _flag_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "boolean", "default": False}}


def openapi_document(crm: CRM) -> dict[str, Any]:
    """The app's OpenAPI 3 document; its schemas are ``crm.schemas``, so they carry this CRM's plugin and
    run-time fields and the limits crmkit checks (see :mod:`crmkit.openapi`)."""
    marshmallow = MarshmallowPlugin()
    spec = APISpec("crmkit web example", "1.0.0", "3.0.3", plugins=[marshmallow])
    register_fields(marshmallow)
    schemas = crm.schemas
    changes = type(schemas.customer_in)(partial=True, exclude=("stage",))  # what PATCH takes
    for name, schema in (
        ("Customer", schemas.customer_out),
        ("CustomerInput", schemas.customer_in),
        ("CustomerChanges", changes),
        ("Activity", schemas.activity_out),
        ("ActivityInput", schemas.activity_in),
    ):
        spec.components.schema(name, schema=schema)
    spec.components.schema(
        "CustomerPage",
        {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("Customer")},
                "next_cursor": {"type": "string", "nullable": True, "description": "null on the last page"},
                "count": {"type": "integer", "description": "how many customers match, with ?count=true"},
            },
        },
    )
    spec.components.schema("Problem", _problem_schema())
    spec.components.schema(
        "ValidationProblem",
        _problem_schema(
            errors={
                "type": "object",
                "description": "the problems of each field, by field name",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            }
        ),
    )
    spec.components.schema(
        "ConflictProblem",
        _problem_schema(
            existing_ids={**_IDS, "description": "duplicate customer: the customers with the same email or phone"},
            matched_on={"type": "array", "items": {"type": "string", "enum": ["email", "phone"]}},
            conflicting_ids={**_IDS, "description": "calendar conflict: the overlapping activities"},
        ),
    )
    invalid = _problem("invalid input: the problems of each field", "ValidationProblem")
    busy = {**_problem("another writer held the database; nothing was written, retry"), "headers": _RETRY_AFTER}
    customer_id = {"name": "customer_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    allow_duplicate = _flag_parameter("allow_duplicate", "store it although a customer has the same email or phone")
    allow_conflict = _flag_parameter("allow_conflict", "book it although the owner has another activity then")
    spec.path(
        path="/customers",
        operations={
            "get": {
                "summary": "List customers, filtered, one page at a time",
                "parameters": _LIST_PARAMETERS,
                "responses": {"200": _json("CustomerPage", "a page of customers"), "422": invalid},
            },
            "post": {
                "summary": "Create a customer",
                "parameters": [allow_duplicate],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CustomerInput")}}},
                "responses": {
                    "201": _json("Customer", "the customer as stored"),
                    "409": _problem("a customer with the same email or phone exists", "ConflictProblem"),
                    "422": invalid,
                    "503": busy,
                },
            },
        },
    )
    spec.path(
        path="/customers/{customer_id}",
        operations={
            "get": {
                "summary": "Read a customer",
                "parameters": [customer_id],
                "responses": {"200": _json("Customer", "the customer"), "404": _problem("no such customer")},
            },
            "patch": {
                "summary": "Change some fields of a customer (the stage moves through the lifecycle, not here)",
                "parameters": [customer_id, allow_duplicate],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CustomerChanges")}},
                },
                "responses": {
                    "200": _json("Customer", "the customer as stored"),
                    "404": _problem("no such customer"),
                    "409": _problem("another customer has this email or phone", "ConflictProblem"),
                    "422": invalid,
                    "503": busy,
                },
            },
        },
    )
    spec.path(
        path="/activities",
        operations={
            "post": {
                "summary": "Log an activity",
                "parameters": [allow_conflict],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ActivityInput")}}},
                "responses": {
                    "201": _json("Activity", "the activity as stored"),
                    "409": _problem("the owner has another calendar activity then", "ConflictProblem"),
                    "422": invalid,
                    "503": busy,
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {}}}},
            }
        },
    )
    return spec.to_dict()


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}

_LIST_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "where",
        "in": "query",
        "style": "form",
        "explode": True,
        "description": (
            "Filters, one query parameter each, on core, plugin and run-time fields: `stage=lead`, "
            "`plan__in=gold,silver`, `created_at__gte=2026-01-01T00:00:00Z`, `name__prefix=An`, "
            "`card_number__isnull=true`."
        ),
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    {
        "name": "order_by",
        "in": "query",
        "description": "a field, or -field for descending",
        "schema": {"type": "string", "default": "id"},
    },
    {
        "name": "after",
        "in": "query",
        "description": "the next_cursor of the previous page",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    },
    _flag_parameter("count", "add how many customers match the filters, over all pages"),
]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Serve crmkit's web example.")
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"SQLAlchemy URL (default {DEFAULT_URL})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv[1:])
    with CRM(args.url) as crm:
        if not sa.inspect(crm.engine).has_table("crm_customers"):
            crm.create_schema()
        elif not migrate.up_to_date(crm):
            print(f"{crm!r} needs migrating first: crmkit db upgrade --url {args.url}", file=sys.stderr)
            return 2
        create_app(crm).run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
