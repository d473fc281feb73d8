"""Passwords, API tokens and the HTTP security baseline (headers, origin checks)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from marketplace.settings import get_settings

MIN_PASSWORD_LENGTH = 8
TOKEN_PREFIX = "cm"  # noqa: S105 - a label, not a secret


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    if get_settings().password_hash_cost == "fast":  # noqa: S105
        # Only for tests: the same algorithm (argon2id) at the smallest cost.
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; spends the same time when there is no hash at all."""
    if not password_hash:
        _hasher().hash(password)  # keep timing alike for unknown phones
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


@dataclass(frozen=True)
class NewToken:
    """A freshly made API token: shown once, stored only as its prefix and hash."""

    token: str
    prefix: str
    digest: str


def token_digest(secret: str) -> str:
    # Tokens are 256 random bits, so one fast hash is enough; passwords need argon2.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_token() -> NewToken:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewToken(token=f"{TOKEN_PREFIX}_{prefix}_{secret}", prefix=prefix, digest=token_digest(secret))


def split_api_token(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token, or None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def digest_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(secret), digest)


def session_key(token: str) -> str:
    """Sessions are stored under a hash of the cookie, so a store dump holds no live cookie."""
    return hashlib.sha256(token.encode()).hexdigest()


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(self)"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if https:
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


def origin_allowed(origin: str, host: str, scheme: str) -> bool:
    """True if a browser's ``Origin`` is this site (the configured base URL or the Host)."""
    if origin == "null":
        return False
    parsed = urlparse(origin)
    base = get_settings().base_url
    if base:
        b = urlparse(base)
        if (parsed.scheme, parsed.netloc) == (b.scheme, b.netloc):
            return True
    return parsed.netloc == host and parsed.scheme in {scheme, "https"}
