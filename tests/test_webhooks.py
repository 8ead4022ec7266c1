"""Outbound webhooks, against a local HTTP server the test starts: the JSON body, the signature a receiver
checks, the delivery id, retries with the outbox's backoff and Retry-After, permanent failures, delivery
after commit only, one endpoint per channel, and the receiver snippet of docs/webhooks.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import importlib.metadata
import io
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import select

from crmkit import CRM
from crmkit.db.models import OutboxMessage
from crmkit.errors import DeliveryError, PermanentDeliveryError
from crmkit.outbox import MAX_ATTEMPTS
from crmkit.webhooks import MAX_RETRY_AFTER, WebhookPlugin, sign, verify_signature

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
SECRET = "whsec-7f3a9c"
DOC = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


@attrs.frozen
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = attrs.field(factory=dict)
    hold: bool = False  # wait until the test releases the endpoint: the client times out first


@attrs.frozen
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_headers: Any  # as http.server gives them, looked up whatever the case (as any server does)


class Endpoint:
    """A webhook receiver on 127.0.0.1 that records each request and answers from a script (then 200)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.script: list[Answer] = []
        self.received: list[Request] = []
        self.release = threading.Event()
        self.respond: Callable[[Request], Answer] | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/crm?token=path-token"

    def answer(self, request: Request) -> Answer:
        with self.lock:
            self.received.append(request)
            if self.respond is not None:
                return self.respond(request)
            return self.script.pop(0) if self.script else Answer()


class Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        endpoint: Endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, self.headers)
        answer = endpoint.answer(request)
        if answer.hold:
            endpoint.release.wait(timeout=30)
        with contextlib.suppress(OSError):  # a client that timed out has gone
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def start_endpoint() -> Iterator[Callable[[], Endpoint]]:
    started: list[tuple[Endpoint, threading.Thread]] = []

    def start() -> Endpoint:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        endpoint = Endpoint(server)
        server.endpoint = endpoint  # type: ignore[attr-defined]
        # a short poll so that shutting the server down at teardown is quick
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        started.append((endpoint, thread))
        return endpoint

    yield start
    for endpoint, thread in started:
        endpoint.release.set()
        endpoint.server.shutdown()
        endpoint.server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def endpoint(start_endpoint: Callable[[], Endpoint]) -> Endpoint:
    return start_endpoint()


def webhook_crm(crm_factory: Any, endpoint: Endpoint, **options: Any) -> CRM:
    options = {"secret": SECRET, "channels": ("webhook",), "timeout": 5.0, **options}
    crm: CRM = crm_factory([WebhookPlugin(url=endpoint.url, **options)])
    return crm


def queue(crm: CRM, body: str, channel: str = "webhook", **fields: Any) -> int:
    """A pending message written without delivering it at once, as a message left for a later delivery."""
    with crm.transaction() as tx:
        message = OutboxMessage(channel=channel, body=body, **fields)
        tx.session.add(message)
        tx.session.flush()
        return message.id


def state(crm: CRM, message_id: int) -> dict[str, Any]:
    with crm.session() as s:
        m = s.get(OutboxMessage, message_id)
        assert m is not None
        return {"status": m.status, "attempts": m.attempts, "error": m.error, "next_attempt_at": m.next_attempt_at}


def hmac_hex(secret: str, text: bytes) -> str:
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


# -- what is sent ---------------------------------------------------------------------------------------


def test_a_message_is_posted_as_signed_json_after_commit(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    anna = crm.customers.create({"name": "Anna"})["id"]
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stored = crm.outbox.enqueue(
        {"channel": "webhook", "customer_id": anna, "subject": "lapsed", "body": "Anna lapsed ü", "source": "app"}
    )
    after = dt.datetime.now(dt.UTC)
    [request] = endpoint.received
    assert request.path == "/hooks/crm?token=path-token"
    message = json.loads(request.body)
    assert message == {
        "id": stored["id"],
        "channel": "webhook",
        "customer_id": anna,
        "subject": "lapsed",
        "body": "Anna lapsed ü",
        "source": "app",
        "source_id": None,
        "created_at": message["created_at"],
    }
    assert before <= dt.datetime.fromisoformat(message["created_at"]) <= after
    assert message["created_at"].endswith("+00:00")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"crmkit/{importlib.metadata.version('crmkit')}"
    assert request.headers["x-crmkit-delivery"] == str(stored["id"])
    # the signature, computed here by hand: HMAC-SHA256 of "<timestamp>." + the raw body
    timestamp = request.headers["x-crmkit-timestamp"]
    assert before.timestamp() <= int(timestamp) <= after.timestamp()
    expected = hmac_hex(SECRET, timestamp.encode() + b"." + request.body)
    assert request.headers["x-crmkit-signature"] == f"t={timestamp},v1={expected}"
    assert SECRET not in request.body.decode() and SECRET not in str(request.headers)
    assert state(crm, stored["id"])["status"] == "sent"


def test_the_signature_verifies_only_with_the_secret_the_body_and_in_time(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    crm.outbox.enqueue({"channel": "webhook", "body": "hello"})
    [request] = endpoint.received
    header = request.headers["x-crmkit-signature"]
    signed_at = dt.datetime.fromtimestamp(int(request.headers["x-crmkit-timestamp"]), dt.UTC)
    assert verify_signature(SECRET, request.body, header)
    assert verify_signature(SECRET.encode(), request.body.decode(), header)  # bytes secret, str body
    assert not verify_signature("whsec-other", request.body, header)
    assert not verify_signature(SECRET, request.body.replace(b"hello", b"hellO"), header)
    assert not verify_signature(SECRET, request.body + b" ", header)
    # within the tolerance of the receiver's clock, either way, and not past it
    assert verify_signature(SECRET, request.body, header, now=signed_at + dt.timedelta(seconds=300))
    assert verify_signature(SECRET, request.body, header, now=signed_at - dt.timedelta(seconds=300))
    assert not verify_signature(SECRET, request.body, header, now=signed_at + dt.timedelta(seconds=301))
    assert not verify_signature(SECRET, request.body, header, now=signed_at - dt.timedelta(seconds=301))
    assert verify_signature(SECRET, request.body, header, tolerance=10, now=signed_at + dt.timedelta(seconds=10))
    assert not verify_signature(SECRET, request.body, header, tolerance=10, now=signed_at + dt.timedelta(seconds=11))
    assert verify_signature(SECRET, request.body, header, tolerance=None, now=signed_at + dt.timedelta(days=9))
    # a signature moved to another time does not verify: the timestamp is signed too
    t, v1 = header.split(",")
    later = f"t={int(t[2:]) + 60},{v1}"
    assert not verify_signature(SECRET, request.body, later, tolerance=None)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=,v1=", "v1=abc", "t=1700000000", "t=abc,v1=00", "t=1700000000,v1=zz", "t=١٢,v1=00"],
)
def test_a_malformed_signature_header_is_refused_without_raising(header: str | None) -> None:
    assert verify_signature(SECRET, b"{}", header, tolerance=None) is False


def test_any_v1_signature_may_match_so_a_secret_can_be_rotated() -> None:
    body, t = b'{"id":1}', 1_800_000_000
    new, old = hmac_hex("new", b"1800000000." + body), hmac_hex("old", b"1800000000." + body)
    header = f"t={t},v1={new},v1={old}"
    now = dt.datetime.fromtimestamp(t, dt.UTC)
    assert verify_signature("new", body, header, now=now)
    assert verify_signature("old", body, header, now=now)
    assert not verify_signature("other", body, header, now=now)
    assert sign("new", body, t) == f"t={t},v1={new}"
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_signature("new", body, header, now=dt.datetime(2027, 1, 15, 8, 0))


# -- outcomes -------------------------------------------------------------------------------------------


def test_a_5xx_is_retried_after_the_backoff_and_then_delivered(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hello")
    endpoint.script = [Answer(500, b"database down\n\x00 try later")]
    assert crm.outbox.deliver(now=T0) == 0
    assert state(crm, message) == {
        "status": "pending",
        "attempts": 1,
        "error": "DeliveryError: webhook 'webhook': HTTP 500 Internal Server Error: database down try later",
        "next_attempt_at": T0 + MINUTE,  # the outbox's first backoff
    }
    assert crm.outbox.deliver(now=T0 + MINUTE - dt.timedelta(seconds=1)) == 0
    assert len(endpoint.received) == 1  # not tried before the backoff is over
    assert crm.outbox.deliver(now=T0 + MINUTE) == 1
    assert state(crm, message)["status"] == "sent"
    first, second = endpoint.received
    # the same message, the same delivery id: the receiver can drop the second if it handled the first
    assert first.body == second.body and json.loads(first.body)["id"] == message
    assert first.headers["x-crmkit-delivery"] == second.headers["x-crmkit-delivery"] == str(message)
    assert verify_signature(SECRET, second.body, second.headers["x-crmkit-signature"])


@pytest.mark.parametrize(("status", "reason"), [(410, "Gone"), (400, "Bad Request"), (401, "Unauthorized")])
def test_a_4xx_fails_the_message_at_once(crm_factory: Any, endpoint: Endpoint, status: int, reason: str) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hello")
    endpoint.script = [Answer(status, b"")]
    assert crm.outbox.deliver(now=T0) == 0
    after = state(crm, message)
    assert (after["status"], after["attempts"]) == ("failed", 1)
    assert after["error"] == f"PermanentDeliveryError: webhook 'webhook': HTTP {status} {reason}"
    assert crm.outbox.deliver(now=T0 + dt.timedelta(days=1)) == 0
    assert len(endpoint.received) == 1  # never tried again
    assert crm.outbox.pending() == []


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_408_429_and_5xx_are_retried(crm_factory: Any, endpoint: Endpoint, status: int) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hello")
    endpoint.script = [Answer(status)]
    assert crm.outbox.deliver(now=T0) == 0
    after = state(crm, message)
    assert (after["status"], after["attempts"], after["next_attempt_at"]) == ("pending", 1, T0 + MINUTE)
    assert after["error"].startswith(f"DeliveryError: webhook 'webhook': HTTP {status} ")


def test_a_redirect_is_not_followed_and_is_retried(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hello")
    endpoint.script = [Answer(301, b"", {"Location": "/elsewhere"})]
    assert crm.outbox.deliver(now=T0) == 0
    assert [r.path for r in endpoint.received] == ["/hooks/crm?token=path-token"]  # no second request
    assert state(crm, message)["status"] == "pending"
    assert state(crm, message)["error"] == (
        "DeliveryError: webhook 'webhook': HTTP 301 Moved Permanently (redirects are not followed)"
    )


def test_retry_after_in_seconds_holds_the_message_back_longer_than_the_backoff(
    crm_factory: Any, endpoint: Endpoint
) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hello")
    endpoint.script = [Answer(429, b"slow down", {"Retry-After": "600"})]
    assert crm.outbox.deliver(now=T0) == 0
    assert state(crm, message) == {
        "status": "pending",
        "attempts": 1,
        "error": "DeliveryError: webhook 'webhook': HTTP 429 Too Many Requests: slow down (retry after 600 s)",
        "next_attempt_at": T0 + dt.timedelta(seconds=600),
    }
    assert crm.outbox.deliver(now=T0 + dt.timedelta(seconds=599)) == 0
    assert len(endpoint.received) == 1
    assert crm.outbox.deliver(now=T0 + dt.timedelta(seconds=600)) == 1
    assert len(endpoint.received) == 2


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hello")
    endpoint.script = [Answer(503, b"", {"Retry-After": "5"})]
    assert crm.outbox.deliver(now=T0) == 0
    assert state(crm, message)["next_attempt_at"] == T0 + MINUTE


def test_retry_after_as_a_date_and_beyond_the_cap(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    dated, capped, past, unreadable = (queue(crm, f"m{i}") for i in range(4))
    in_an_hour = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    endpoint.script = [
        Answer(503, b"", {"Retry-After": format_datetime(in_an_hour, usegmt=True)}),
        Answer(503, b"", {"Retry-After": "31536000"}),  # a year
        Answer(503, b"", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Answer(503, b"", {"Retry-After": "soon"}),
    ]
    assert crm.outbox.deliver(now=T0) == 0
    # the date is read against the real clock, and the wait added to the outbox's now
    wait = state(crm, dated)["next_attempt_at"] - T0
    assert dt.timedelta(minutes=59) < wait <= dt.timedelta(hours=1)
    assert state(crm, capped)["next_attempt_at"] == T0 + MAX_RETRY_AFTER == T0 + dt.timedelta(days=1)
    assert state(crm, past)["next_attempt_at"] == T0 + MINUTE
    assert state(crm, unreadable)["next_attempt_at"] == T0 + MINUTE


def test_an_endpoint_that_does_not_answer_in_time_is_retried(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint, timeout=0.2)
    message = queue(crm, "hello")
    endpoint.script = [Answer(200, hold=True)]  # it will answer only once released
    assert crm.outbox.deliver(now=T0) == 0
    endpoint.release.set()
    assert state(crm, message) == {
        "status": "pending",
        "attempts": 1,
        "error": "DeliveryError: webhook 'webhook': no answer within 0.2 s",
        "next_attempt_at": T0 + MINUTE,
    }
    assert crm.outbox.deliver(now=T0 + MINUTE) == 1
    assert len(endpoint.received) == 2


def test_an_endpoint_that_refuses_connections_is_retried_until_the_attempts_are_spent(crm_factory: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    crm = crm_factory([WebhookPlugin(url=f"http://127.0.0.1:{port}/x", secret=SECRET)])
    message = queue(crm, "hello")
    at = T0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert crm.outbox.deliver(now=at) == 0
        after = state(crm, message)
        assert after["attempts"] == attempt
        assert after["error"] == "DeliveryError: webhook 'webhook': connection failed: Connection refused"
        at = after["next_attempt_at"]
    assert state(crm, message)["status"] == "failed"


def test_the_secret_and_the_url_are_never_logged_nor_recorded(
    crm_factory: Any, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    plugin = crm.plugin_manager.get_plugin("webhook")
    sent, refused = queue(crm, "a"), queue(crm, "b")
    endpoint.script = [Answer(200), Answer(503, b"nope")]
    with caplog.at_level(logging.DEBUG):
        assert crm.outbox.deliver(now=T0) == 1
    recorded = [state(crm, m)["error"] or "" for m in (sent, refused)]
    assert recorded[1].startswith("DeliveryError: webhook 'webhook': HTTP 503")
    assert "delivered message" in caplog.text
    for text in (caplog.text, *recorded, repr(plugin)):
        assert SECRET not in text
        assert "path-token" not in text and "/hooks/crm" not in text


# -- when and where -------------------------------------------------------------------------------------


def test_a_rolled_back_unit_of_work_sends_nothing(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    anna = crm.customers.create({"name": "Anna"})["id"]
    with pytest.raises(RuntimeError), crm.transaction() as tx:
        crm.outbox.enqueue({"channel": "webhook", "customer_id": anna, "body": "never"}, tx=tx)
        assert endpoint.received == []  # not before commit either
        raise RuntimeError("the caller changed its mind")
    assert endpoint.received == []
    assert crm.outbox.deliver(now=T0) == 0
    assert endpoint.received == []
    with crm.session() as s:
        assert s.scalars(select(OutboxMessage.id)).all() == []
    with crm.transaction() as tx:
        kept = crm.outbox.enqueue({"channel": "webhook", "customer_id": anna, "body": "kept"}, tx=tx)
        assert endpoint.received == []
    assert [json.loads(r.body)["id"] for r in endpoint.received] == [kept["id"]]


def test_two_endpoints_each_get_their_own_channels(crm_factory: Any, start_endpoint: Callable[[], Endpoint]) -> None:
    billing, marketing = start_endpoint(), start_endpoint()
    crm = crm_factory(
        [
            WebhookPlugin(url=billing.url, secret="billing-secret", channels=("billing",)),
            WebhookPlugin(url=marketing.url, secret="marketing-secret", channels=("marketing", "newsletter")),
        ]
    )
    assert {"webhook_billing", "webhook_marketing"} <= set(dict(crm.plugin_manager.list_name_plugin()))
    crm.outbox.enqueue_many(
        [
            {"channel": "billing", "body": "invoice 1"},
            {"channel": "marketing", "body": "promo"},
            {"channel": "newsletter", "body": "May news"},
            {"channel": "billing", "body": "invoice 2"},
        ]
    )
    assert [json.loads(r.body)["body"] for r in billing.received] == ["invoice 1", "invoice 2"]
    assert [json.loads(r.body)["body"] for r in marketing.received] == ["promo", "May news"]
    for request in billing.received:
        assert verify_signature("billing-secret", request.body, request.headers["x-crmkit-signature"])
        assert not verify_signature("marketing-secret", request.body, request.headers["x-crmkit-signature"])
    for request in marketing.received:
        assert verify_signature("marketing-secret", request.body, request.headers["x-crmkit-signature"])


def test_a_channel_no_webhook_delivers_is_left_to_other_gateways(crm_factory: Any, endpoint: Endpoint) -> None:
    crm = webhook_crm(crm_factory, endpoint)
    message = queue(crm, "hi", channel="sms")
    assert crm.outbox.deliver(now=T0) == 0
    assert endpoint.received == []
    assert state(crm, message)["error"] == "no gateway delivered channel 'sms'"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        ({"url": "hooks.example.com/crm"}, "http:// or https://"),
        ({"secret": ""}, "needs a secret"),
        ({"channels": ()}, "channels must be"),
        ({"channels": ("Web Hook",)}, "channels must be"),
        ({"timeout": 0}, "timeout must be"),
        ({"name": "Webhook-1"}, "name must be"),
    ],
)
def test_a_misconfigured_webhook_fails_when_built(options: dict[str, Any], problem: str) -> None:
    arguments = {"url": "https://hooks.example.com/crm", "secret": SECRET} | options
    with pytest.raises(ValueError, match=re.escape(problem)):
        WebhookPlugin(**arguments)


def test_the_delivery_errors_are_crmkit_errors() -> None:
    retry = DeliveryError("busy", retry_after=dt.timedelta(seconds=30))
    assert (str(retry), retry.retry_after) == ("busy", dt.timedelta(seconds=30))
    permanent = PermanentDeliveryError("gone")
    assert isinstance(permanent, DeliveryError) and permanent.retry_after is None


# -- the guide ------------------------------------------------------------------------------------------


def test_the_guides_receiver_accepts_crmkits_requests_and_refuses_the_rest(
    crm_factory: Any, endpoint: Endpoint
) -> None:
    """The receiver of docs/webhooks.md, run as written behind the local endpoint."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        compile(block, str(DOC), "exec")
    [receiver] = [b for b in blocks if "def receive(" in b]
    guide: dict[str, Any] = {"__name__": "webhooks_guide"}
    exec(compile(receiver, str(DOC), "exec"), guide)
    printed = io.StringIO()
    endpoint.respond = lambda request: Answer(guide["receive"](request.received_headers, request.body), b"")
    crm = crm_factory([WebhookPlugin(url=endpoint.url, secret=guide["SECRET"])])
    anna = crm.customers.create({"name": "Anna"})["id"]
    with contextlib.redirect_stdout(printed):
        stored = crm.outbox.enqueue({"channel": "webhook", "customer_id": anna, "body": "Anna lapsed"})
        assert state(crm, stored["id"])["status"] == "sent"
        # a redelivery of the same message (a lost answer) is answered 200 and not handled twice
        [request] = endpoint.received
        headers = {"X-Crmkit-Signature": request.headers["x-crmkit-signature"], "X-Crmkit-Delivery": str(stored["id"])}
        assert guide["receive"](headers, request.body) == 200
    assert printed.getvalue() == f"message {stored['id']} about customer {anna}: Anna lapsed\n"
    # an altered body, or one signed with another secret, is refused
    assert guide["receive"](headers, request.body.replace(b"lapsed", b"paid")) == 401
    impostor = crm_factory([WebhookPlugin(url=endpoint.url, secret="not-the-secret")])
    message = impostor.outbox.enqueue({"channel": "webhook", "body": "forged"})
    after = state(impostor, message["id"])
    assert after["status"] == "failed"
    assert after["error"] == "PermanentDeliveryError: webhook 'webhook': HTTP 401 Unauthorized"
