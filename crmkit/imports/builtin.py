"""The importers the core ships: a phone system's call log and a till's receipts.

Both read what such systems export (CSV, XLSX or JSON lines; the header names below are the common ones,
any other can be named with ``columns=``), and both are idempotent: a call is identified by the phone
system's call id (or, when the export has none, by its start, caller and callee), a receipt by its
number, so importing the same export twice, or two exports that overlap, stores each event once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crmkit.imports.values import parse_value
from crmkit.specs import ImportContext, ImportedActivity, ImporterSpec

#: a call's disposition as phone systems write it -> the activity's status
_ANSWERED = {"answered", "answer", "completed", "connected", "ok", "done", "success"}
_MISSED = {"no answer", "noanswer", "no_answer", "missed", "busy", "failed", "cancel", "cancelled", "canceled",
           "congestion", "unanswered", "voicemail", "abandoned"}  # fmt: skip
_DIRECTIONS = {"in": "inbound", "inbound": "inbound", "incoming": "inbound", "out": "outbound",
               "outbound": "outbound", "outgoing": "outbound"}  # fmt: skip


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _value(kind: str, value: Any, context: ImportContext, what: str) -> Any:
    """The cell parsed as the import's options say; the reason names the column."""
    try:
        return parse_value(kind, value, context.options, field=what)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _moment(value: Any, context: ImportContext, what: str) -> dt.datetime:
    moment = _value("datetime", value, context, what)
    if not isinstance(moment, dt.datetime):
        raise ValueError(f"{what}: missing")
    return moment


def parse_call(values: Mapping[str, Any], context: ImportContext) -> ImportedActivity:
    """One call of a call log: the customer is the caller of an inbound call and the callee of an
    outbound one; answered calls are ``done``, the others ``missed``."""
    direction = _DIRECTIONS.get(_text(values.get("direction")).casefold())
    if direction is None:
        raise ValueError(f"direction: {_text(values.get('direction'))!r} is neither inbound nor outbound")
    start = _moment(values.get("start"), context, "start")
    caller, callee = _text(values.get("caller")), _text(values.get("callee"))
    customer = caller if direction == "inbound" else callee
    if not customer:
        raise ValueError(f"{'caller' if direction == 'inbound' else 'callee'}: missing")
    seconds = _value("integer", values.get("duration"), context, "duration") or 0
    if seconds < 0 or seconds > 24 * 3600:
        raise ValueError(f"duration: {seconds} seconds is not a call's length")
    disposition = _text(values.get("disposition")).casefold()
    status = "missed" if disposition in _MISSED else "done"
    if disposition and disposition not in _MISSED and disposition not in _ANSWERED:
        raise ValueError(f"disposition: unknown {disposition!r}")
    key = _text(values.get("call_id")) or f"{start.isoformat()}|{caller}|{callee}"
    data: dict[str, Any] = {"duration_seconds": seconds, "caller": caller, "callee": callee}
    if disposition:
        data["disposition"] = disposition
    subject = "Inbound call" if direction == "inbound" else "Outbound call"
    lead = {"name": f"Caller {customer}", "phone": customer, "source": "telephony"}
    return ImportedActivity(
        key=key[:200],
        customer=("phone", customer),
        values={
            "direction": direction,
            "occurred_at": start,
            "status": status,
            "subject": subject,
            "duration_min": math.ceil(seconds / 60),
            "data": data,
        },
        lead=lead if direction == "inbound" else None,
    )


def parse_receipt(values: Mapping[str, Any], context: ImportContext) -> ImportedActivity:
    """One receipt: the customer by the card field the settings name (``card_field``), or by phone or
    email; ``lines`` kept as the till wrote them (JSON text or a list is kept as a list)."""
    number = _text(values.get("receipt"))
    moment = _moment(values.get("time"), context, "time")
    total = _value("decimal", values.get("total"), context, "total")
    if not isinstance(total, Decimal) or total < 0:
        raise ValueError("total: must be an amount of zero or more")
    currency = (_text(values.get("currency")) or str(context.settings.get("currency", ""))).upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError("currency: give an ISO 4217 code in the file or in the importer's settings")
    who = _text(values.get("customer"))
    card_field = context.settings.get("card_field")
    if "@" in who:
        customer = ("email", who)
    elif card_field and not who.startswith("+"):
        customer = (str(card_field), who)
    else:
        customer = ("phone", who)
    data: dict[str, Any] = {"receipt": number}
    lines = values.get("lines")
    if isinstance(lines, list):
        data["lines"] = lines
    elif _text(lines):
        try:
            parsed = json.loads(_text(lines))
        except ValueError:
            parsed = _text(lines)
        data["lines"] = parsed
    return ImportedActivity(
        key=number[:200],
        customer=customer,
        values={
            "occurred_at": moment,
            "amount": total,
            "currency": currency,
            "subject": f"Receipt {number}",
            "data": data,
        },
    )


TELEPHONY = ImporterSpec(
    name="telephony",
    kind="call",
    parse=parse_call,
    label="Phone system call log",
    description="Calls from an IP telephony export, matched to customers by phone; unknown callers can become leads"
    " (settings create_unknown=True).",
    columns={
        "call_id": ("id", "uniqueid", "call uuid", "callid", "linkedid"),
        "start": ("started", "started_at", "start time", "calldate", "date", "time", "timestamp"),
        "caller": ("from", "src", "source number", "caller number", "caller id", "callerid"),
        "callee": ("to", "dst", "destination", "called number", "callee number"),
        "duration": ("billsec", "seconds", "duration (s)", "talk time"),
        "direction": ("type", "call type", "dir"),
        "disposition": ("status", "result", "outcome"),
    },
    required=("start", "caller", "callee", "direction"),
)

RECEIPTS = ImporterSpec(
    name="receipts",
    kind="purchase",
    parse=parse_receipt,
    label="Cash register receipts",
    description="Receipts from a till, matched to customers by card (settings card_field=...), phone or email.",
    columns={
        "receipt": ("receipt_id", "receipt no", "receipt number", "number", "id", "check", "check number"),
        "time": ("date", "datetime", "timestamp", "sold at", "created"),
        "customer": ("card", "card number", "card_number", "phone", "email", "customer card", "loyalty card"),
        "lines": ("items", "positions", "products"),
        "total": ("amount", "sum", "total amount", "grand total"),
        "currency": ("cur", "currency code"),
    },
    required=("receipt", "time", "customer", "total"),
)
