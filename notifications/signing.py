"""Signatures of outgoing HTTP requests (webhooks and the SMS gateway), per Standard Webhooks.

The receiver gets ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, so any Standard
Webhooks library verifies them, and a replayed request is refused by its timestamp.
Secrets look like ``whsec_<base64>``; a gateway secret without that prefix is used as text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
TOLERANCE_SECONDS = 5 * 60


def new_secret() -> str:
    """A fresh signing secret (24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_bytes(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return secret.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three signature headers for one request."""
    timestamp = int(at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


def verify(secret: str, request_headers: dict[str, str], body: bytes, now: datetime) -> bool:
    """True if the headers sign this body with this secret and the timestamp is recent."""
    try:
        message_id = request_headers["webhook-id"]
        timestamp = int(request_headers["webhook-timestamp"])
        offered = request_headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in offered)
