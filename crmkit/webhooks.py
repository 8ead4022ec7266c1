"""Outbound webhooks: the outbox delivers the messages of chosen channels as signed HTTP POSTs.

An app registers one :class:`WebhookPlugin` per endpoint::

    CRM(url, plugins=[WebhookPlugin(url="https://hooks.example.com/crm", secret=..., channels=("webhook",))])

and every outbox message of those channels (a trigger's ``MessageAction("webhook", ...)``, or
``crm.outbox.enqueue({"channel": "webhook", ...})``) is POSTed, after the transaction that wrote it
commits, as the JSON of :meth:`crmkit.outbox.Outbox.payload`. The request carries the message id in
``X-Crmkit-Delivery`` (a redelivery has the same one) and an HMAC-SHA256 signature in
``X-Crmkit-Signature: t=<unix time>,v1=<hex>`` over ``"<unix time>." + body``, which a receiver checks with
:func:`verify_signature`. A 2xx answer delivers the message; a 4xx other than 408 and 429 fails it at once
(:class:`~crmkit.errors.PermanentDeliveryError`); anything else (5xx, 408, 429, a redirect, a timeout, a
refused connection) is retried with the outbox's backoff, and not before a ``Retry-After`` the endpoint
sent. ``docs/webhooks.md`` is the guide. Only the standard library is used; nothing runs at import.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import http.client
import importlib.metadata
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import IO, Any

from crmkit.errors import DeliveryError, PermanentDeliveryError
from crmkit.hookspecs import hookimpl

__all__ = [
    "DELIVERY_HEADER",
    "MAX_RETRY_AFTER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "WebhookPlugin",
    "sign",
    "verify_signature",
]

log = logging.getLogger("crmkit")

#: The message's outbox id: the same on every redelivery, so a receiver can drop the ones it has handled.
DELIVERY_HEADER = "X-Crmkit-Delivery"
#: When the request was signed, in seconds since the epoch (the ``t`` of the signature, repeated).
TIMESTAMP_HEADER = "X-Crmkit-Timestamp"
#: ``t=<unix time>,v1=<hex HMAC-SHA256 of "<unix time>." + body>``.
SIGNATURE_HEADER = "X-Crmkit-Signature"
#: How far (seconds) a signature's time may be from the receiver's clock before :func:`verify_signature`
#: refuses it: a captured request cannot be replayed later than this.
TOLERANCE = 300.0
#: The longest ``Retry-After`` honoured: an endpoint asking for more does not park a message for longer.
MAX_RETRY_AFTER = dt.timedelta(days=1)
#: How much of a refusing endpoint's answer is kept in the message's error.
_EXCERPT = 200
#: 4xx statuses that mean "not now" rather than "never": Request Timeout and Too Many Requests.
_RETRYABLE_4XX = frozenset({408, 429})
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Crmkit-Signature`` value for ``body`` sent at ``timestamp`` (seconds since the epoch)."""
    digest = hmac.new(_key(secret), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str | bytes,
    body: bytes | str,
    header: str | None,
    *,
    tolerance: float | None = TOLERANCE,
    now: dt.datetime | None = None,
) -> bool:
    """Whether ``header`` (the request's ``X-Crmkit-Signature``) signs ``body`` with ``secret``, and was
    made within ``tolerance`` seconds of ``now`` (the current time when ``None``; ``tolerance=None`` skips
    the time check, e.g. to re-check a stored request).

    ``body`` must be the request's body exactly as received (bytes; a string is taken as its UTF-8), not
    JSON parsed and serialised again. Any ``v1`` signature in the header may match, so a sender moving to
    a new secret can send both. A missing or malformed header gives ``False``, never an exception.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(datetime.UTC))")
    if not header:
        return False
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if tolerance is not None:
        current = (now or dt.datetime.now(dt.UTC)).timestamp()
        if abs(current - timestamp) > tolerance:
            return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = sign(secret, raw, timestamp).partition(",v1=")[2]
    # compare every candidate in constant time: the time taken tells an attacker nothing
    return any(hmac.compare_digest(expected.encode(), s.encode("utf-8", "replace")) for s in signatures)


class WebhookPlugin:
    """Delivers the outbox messages of ``channels`` to the webhook at ``url`` (``http`` or ``https``).

    ``secret`` signs each request (share it with the receiver; it is never sent, logged or recorded).
    ``timeout`` (seconds) bounds the connection and each read of the answer; past it the try counts as
    failed and is retried. ``name`` is the plugin's name (several endpoints need different ones); by
    default ``webhook`` for the channel ``webhook``, else ``webhook_<first channel>``. Each channel should
    belong to one endpoint: the first plugin that accepts a message delivers it.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        channels: Iterable[str] = ("webhook",),
        timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook url must be an absolute http:// or https:// url")
        if not secret:
            raise ValueError("a webhook needs a secret to sign its requests")
        chosen = tuple(channels)
        if not chosen or any(not isinstance(c, str) or not _CHANNEL.match(c) for c in chosen):
            raise ValueError(f"channels must be lowercase channel names such as 'webhook', got {chosen!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        default = chosen[0] if chosen[0].startswith("webhook") else f"webhook_{chosen[0]}"
        self.plugin_name = name if name is not None else default[:31]
        if not _PLUGIN_NAME.match(self.plugin_name):
            raise ValueError(f"name must be a short lowercase identifier, got {self.plugin_name!r}")
        self.url = url
        self.channels = frozenset(chosen)
        self.timeout = float(timeout)
        self._secret = _key(secret)
        self._user_agent = f"crmkit/{_version()}"
        # a webhook answers where it is: a redirect is not followed (urllib would turn the POST into a GET
        # without the body, or replay the signed body elsewhere); it is a failed try, retried
        self._opener = urllib.request.build_opener(_NoRedirect())

    def __repr__(self) -> str:
        # the url's path or query often holds a token of its own: show where it goes, not how
        parts = urllib.parse.urlsplit(self.url)
        return f"WebhookPlugin(name={self.plugin_name!r}, host={parts.hostname!r}, channels={sorted(self.channels)})"

    @hookimpl
    def crmkit_send_message(self, message: Mapping[str, Any]) -> bool | None:
        if message.get("channel") not in self.channels:
            return None
        body = json.dumps(dict(message), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = int(time.time())
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": self._user_agent,
                DELIVERY_HEADER: str(message["id"]),
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(self._secret, body, timestamp),
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._refused(exc.code, exc.reason, exc.headers.get("Retry-After"), exc.fp) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"webhook {self.plugin_name!r}: {self._unreachable(exc)}") from None
        log.debug("webhook %r: delivered message %s (HTTP %s)", self.plugin_name, message["id"], status)
        return True

    def _refused(self, status: int, reason: object, retry_after: str | None, answer: IO[bytes] | None) -> Exception:
        """The error for an answer other than 2xx: permanent for a 4xx that retrying cannot change."""
        text = f"webhook {self.plugin_name!r}: HTTP {status}"
        if reason:
            text += f" {_oneline(str(reason))}"
        excerpt = _excerpt(answer)
        if excerpt:
            text += f": {excerpt}"
        if 300 <= status < 400:
            text += " (redirects are not followed)"
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            return PermanentDeliveryError(text)
        wait = _retry_after(retry_after, dt.datetime.now(dt.UTC))
        if wait is not None:
            text += f" (retry after {int(wait.total_seconds())} s)"
        return DeliveryError(text, retry_after=wait)

    def _unreachable(self, exc: Exception) -> str:
        """Why no answer came, in a few words (never the url, whose path may hold a token)."""
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            return f"no answer within {self.timeout:g} s"
        if isinstance(reason, http.client.HTTPException):  # it answered, but not in HTTP
            return f"bad answer: {type(reason).__name__}"
        if isinstance(reason, OSError) and reason.strerror:
            return f"connection failed: {_oneline(reason.strerror)}"
        return f"connection failed: {_oneline(str(reason)) or type(reason).__name__}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then reaches the caller as an HTTPError


def _retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as a wait from ``now``, at most
    ``MAX_RETRY_AFTER``; ``None`` when absent, unreadable or already past."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value[:12])
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - now).total_seconds()
    if seconds <= 0:
        return None
    return min(dt.timedelta(seconds=seconds), MAX_RETRY_AFTER)


def _excerpt(answer: IO[bytes] | None) -> str:
    """The start of a refusing endpoint's answer, on one line: often the reason in its own words."""
    if answer is None:
        return ""
    try:
        raw = answer.read(_EXCERPT)
    except (OSError, ValueError):
        return ""
    return _oneline(raw.decode("utf-8", "replace"))


def _oneline(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:_EXCERPT]


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _version() -> str:
    try:
        return importlib.metadata.version("crmkit")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0"
