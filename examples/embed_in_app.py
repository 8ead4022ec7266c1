"""An application that embeds crmkit: a small web shop's back office.

    python examples/embed_in_app.py [DATABASE_URL]

DATABASE_URL is any SQLAlchemy URL, e.g. ``sqlite:///shop.db`` or
``postgresql+psycopg://user@localhost/shop``. Give an empty database: the script creates its own
tables and refuses to run on one that already has customers. Without a URL it uses a temporary SQLite
file that is removed afterwards.

What it shows:

* one ``CRM`` object built at start-up and shared by the app's request handlers;
* crmkit's errors mapped to HTTP status codes in one place, and ``crm.schemas`` reused to validate a form;
* the app's own table (``shop_orders``) written in the same transaction as crmkit's records, so a
  failed checkout leaves neither an order nor a purchase behind;
* the app subscribing to crmkit events with a tiny plugin, and sending notifications only after commit;
* calendar conflicts, bulk ingestion of calls from a phone system, tasks and reminders.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import crmkit
from crmkit import CRM, Transaction, hookimpl
from crmkit.db import Customer

# The app's own tables live in the app's own MetaData. The foreign key names the Column object rather than
# the string "crm_customers.id", because crmkit's tables are not in this MetaData.
app_metadata = sa.MetaData()
orders = sa.Table(
    "shop_orders",
    app_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.ForeignKey(Customer.id), nullable=False, index=True),
    sa.Column("total", sa.Numeric(10, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

# crmkit's errors carry what an HTTP layer needs; the order matters only for subclasses (none here overlap)
STATUS: tuple[tuple[type[crmkit.CRMError], int], ...] = (
    (crmkit.ValidationError, 422),
    (crmkit.NotFound, 404),
    (crmkit.DuplicateCustomerError, 409),
    (crmkit.TransitionError, 409),
    (crmkit.CalendarConflictError, 409),
)


class Notifications:
    """The app's listener for crmkit events. Registered as a plugin; it never sends before commit."""

    plugin_name = "shopevents"

    def __init__(self) -> None:
        self.sent: list[str] = []

    @hookimpl
    def crmkit_stage_changed(self, tx: Transaction, change: Mapping[str, Any]) -> None:
        if change["from_stage"] is not None and change["to_stage"] == "active":
            customer_id = change["customer_id"]
            tx.after_commit(lambda: self.sent.append(f"thank-you email to customer {customer_id}"))


def respond(handler: Callable[[], Any]) -> tuple[int, Any]:
    """Run a request handler and turn crmkit's errors into an HTTP status and a body."""
    try:
        return 200, handler()
    except crmkit.CRMError as exc:
        for error_class, status in STATUS:
            if isinstance(exc, error_class):
                return status, getattr(exc, "errors", None) or str(exc)
        raise


class Shop:
    """The request handlers of the app. Each one is one call or one transaction against the CRM."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def sign_up(self, form: Mapping[str, Any]) -> dict[str, Any]:
        return self.crm.customers.create({**form, "source": "web"})

    def checkout(self, customer_id: int, total: str, currency: str, clerk_id: int) -> dict[str, Any]:
        """An order, its purchase activity and the customer's first move to ``active``, all or nothing."""
        crm = self.crm
        with crm.transaction(actor_id=clerk_id) as tx:
            order_id = tx.session.execute(
                orders.insert().values(customer_id=customer_id, total=Decimal(total), currency=currency)
            ).inserted_primary_key[0]
            crm.activities.log(
                {
                    "customer_id": customer_id,
                    "kind": "purchase",
                    "amount": total,
                    "currency": currency,
                    "subject": f"order {order_id}",
                    "owner_id": clerk_id,
                },
                tx=tx,
            )
            # crm.customers.get() reads in a session of its own; inside a unit of work, read through tx.session
            customer = tx.session.get(Customer, customer_id)
            if customer is None:
                raise crmkit.NotFound("customer", customer_id)
            if customer.stage == "lead":
                crm.lifecycle.move(customer_id, "active", cause=f"order {order_id}", tx=tx)
        return {"order_id": order_id}

    def book_meeting(self, customer_id: int, contact_id: int, owner_id: int, at: dt.datetime) -> dict[str, Any]:
        return self.crm.activities.log(
            {
                "customer_id": customer_id,
                "kind": "meeting",
                "status": "planned",
                "contact_id": contact_id,
                "owner_id": owner_id,
                "occurred_at": at,
                "duration_min": 45,
                "subject": "fitting",
                "result": "booked",
            }
        )


def run(url: str) -> int:
    notifications = Notifications()
    # the app decides which plugins it runs with; installed ones would change what this script prints
    with CRM(url, plugins=[notifications], load_entry_points=False) as crm:
        crm.create_schema()
        app_metadata.create_all(crm.engine)
        if crm.customers.count():
            print(f"refusing to run: {crm!r} already has customers; give an empty database", file=sys.stderr)
            return 2
        return demo(crm, Shop(crm), notifications)


def demo(crm: CRM, shop: Shop, notifications: Notifications) -> int:
    print(f"crmkit on {crm.engine.dialect.name}, plugins: {', '.join(crm.plugins)}")
    clerk = crm.users.create({"name": "Sam Clerk", "role": "operator"})
    stylist = crm.users.create({"name": "Lea Stylist", "role": "manager"})

    # -- sign-ups, validated by the same schema the CRM uses, before anything is written
    form = {"name": "Anna Berg", "email": "anna@example", "phone": "+1 415 555 0101"}
    print(f"form check: {crm.schemas.customer_in.validate(form)}")
    status, anna = respond(lambda: shop.sign_up({**form, "email": "anna@example.com"}))
    print(f"sign up Anna: {status} stage={anna['stage']} phone={anna['phone_normalized']}")
    status, body = respond(lambda: shop.sign_up({"name": "Anna B.", "phone": "(415) 555-0101"}))
    print(f"sign up Anna again: {status} {body}")
    status, ben = respond(lambda: shop.sign_up({"name": "Ben Ortiz", "email": "ben@example.com"}))
    print(f"sign up Ben: {status}")

    # -- checkout: the app's order row and crmkit's rows commit together
    status, body = respond(lambda: shop.checkout(anna["id"], "59.90", "EUR", clerk["id"]))
    print(f"checkout Anna: {status} {body}")
    status, body = respond(lambda: shop.checkout(ben["id"], "19.00", "eur", clerk["id"]))
    print(f"checkout Ben with a bad currency: {status} {body}")
    with crm.engine.connect() as conn:
        print(f"orders stored: {conn.scalar(sa.select(sa.func.count()).select_from(orders))}")
    print(f"Ben is still a {crm.customers.get(ben['id'])['stage']}")
    print(f"notifications sent: {notifications.sent}")

    # -- a report that joins the app's table with crmkit's
    with crm.session() as session:
        query = (
            sa.select(Customer.lifecycle, sa.func.count(orders.c.id), sa.func.sum(orders.c.total))
            .join(orders, orders.c.customer_id == Customer.id)
            .group_by(Customer.lifecycle)
        )
        for lifecycle, count, total in session.execute(query):
            print(f"revenue from {lifecycle} customers: {count} order(s), {Decimal(total):.2f}")

    # -- the calendar: a meeting over another meeting of the same owner is refused
    contact = crm.customers.add_contact(anna["id"], {"name": "Anna Berg", "role": "customer"})
    friday = dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.UTC)
    status, _ = respond(lambda: shop.book_meeting(anna["id"], contact["id"], stylist["id"], friday))
    print(f"book a fitting at 15:00: {status}")
    later = friday + dt.timedelta(minutes=30)
    status, body = respond(lambda: shop.book_meeting(anna["id"], contact["id"], stylist["id"], later))
    print(f"book another at 15:30: {status} {body}")

    # -- calls from the phone system arrive in bulk; bad rows are reported, good ones kept
    calls = [
        {"customer_id": anna["id"], "kind": "call", "direction": "inbound", "duration_min": 4},
        {"customer_id": ben["id"], "kind": "call", "direction": "outbound", "duration_min": 2},
        {"customer_id": 999, "kind": "call", "direction": "inbound"},
        {"customer_id": ben["id"], "kind": "call"},
    ]
    report = crm.activities.ingest(calls)
    print(f"calls ingested: {report.inserted}, rejected: {[(r.index, sorted(r.errors)) for r in report.rejected]}")

    # -- a follow-up task with a reminder
    due = dt.datetime(2026, 3, 9, 10, 0, tzinfo=dt.UTC)
    task = crm.tasks.create(
        {
            "title": "Call Ben back",
            "reason": "checkout failed",
            "customer_id": ben["id"],
            "assignee_id": clerk["id"],
            "due_at": due,
            "remind_at": due - dt.timedelta(hours=1),
            "priority": 10,
        }
    )
    print(f"open tasks for Sam: {[t['title'] for t in crm.tasks.open(assignee_id=clerk['id'])]}")
    print(f"reminders due at 09:30: {[t['title'] for t in crm.tasks.reminders_due(due - dt.timedelta(minutes=30))]}")
    crm.tasks.complete(task["id"])
    print(f"open tasks after the call: {len(crm.tasks.open(assignee_id=clerk['id']))}")

    # -- where everyone stands
    for customer in crm.customers.iter():
        kinds = sorted({a["kind"] for a in crm.activities.for_customer(customer["id"])})
        print(f"customer {customer['name']}: {customer['stage']}, activities: {', '.join(kinds)}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        return run(argv[1])
    with tempfile.TemporaryDirectory() as folder:
        return run(f"sqlite:///{Path(folder) / 'shop.db'}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
