"""Signed webhook POSTs shared by every package that notifies partner systems (segment changes,
privacy notices to recipients): the signature, one attempt, and the retry backoff.

Signature (Stripe-style, so partners can reuse verification code): the header

    X-CDP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

Receivers recompute it over the raw body, compare in constant time and reject old timestamps
(replays). Secrets are derived, never stored: HMAC-SHA256 of the subscriber's id and a random
salt under a key derived from SECRET_KEY and a purpose, so a database dump alone cannot forge
deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings

from cdp.env import env_int

SIGNATURE_HEADER = "X-CDP-Signature"
# Attempts in all (the first plus retries), the first retry's delay, and the request timeout.
MAX_ATTEMPTS = env_int("CDP_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
RETRY_BASE_SECONDS = env_int("CDP_WEBHOOK_RETRY_BASE_SECONDS", 2, minimum=0)
TIMEOUT_SECONDS = 10


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx, retried), never followed: a delivery cannot be bounced to
    another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# The standard library's client: one POST needs no extra dependency.
_opener = urllib.request.build_opener(_NoRedirect)


def new_salt() -> str:
    return secrets.token_hex(16)


def derived_secret(purpose: bytes, subscriber_id: object, salt: str) -> str:
    """A subscriber's signing secret: shown once at creation, recomputed for every delivery."""
    key = hashlib.sha256(purpose + b"|" + settings.SECRET_KEY.encode()).digest()
    message = f"{subscriber_id}|{salt}".encode()
    return "whsec_" + hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300) -> bool:
    """What a receiver does (used by the tests and given in the README)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after `attempts` failed ones: base x 2^(attempts-1)."""
    return RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)


def signed_post(
    url: str, body: bytes, *, secret: str, delivery_id: str, user_agent: str = "cdp-webhooks/1"
) -> tuple[int | None, str]:
    """POST once; returns (HTTP status or None, error class name or ""). Never raises on a
    network failure, and never reports an exception's message: it may echo the URL's
    credentials."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("webhook URLs must be http(s)")  # checked on creation too
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        "X-CDP-Delivery": delivery_id,
    }
    request = urllib.request.Request(  # noqa: S310 (scheme checked just above)
        url, data=body, headers=headers, method="POST"
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        return None, type(exc).__name__


def gives_up(code: int | None, attempts: int) -> bool:
    """After this answer, is retrying pointless? 400 and 410 Gone cannot get better."""
    return attempts >= MAX_ATTEMPTS or (code is not None and code in (400, 410))
