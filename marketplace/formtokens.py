"""One-time form tokens: a form that books or pays is carried out once, however often it is sent.

A page puts ``{{ once_input() }}`` in such a form: a hidden field holding a random nonce, the
user it was made for and its expiry, signed with the secret key (so issuing needs no storage).
The handler calls :func:`spend` first: the first sending of a token returns True; a second
sending (a double click, a reload after POST, the back button) returns False, and the handler
shows what the first one did instead of doing it again.  Spent tokens are counted in
``marketplace.kv`` (Redis when set, shared by every process), for as long as a token lives.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from jinja2 import pass_context
from markupsafe import Markup

from marketplace import kv
from marketplace.errors import ValidationFailed
from marketplace.i18n import N_
from marketplace.settings import get_settings

FIELD = "_once"
LIFETIME_SECONDS = 6 * 3600

EXPIRED = N_("This form is too old to send. Reload the page and fill it in again.")


def _sign(body: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"form-token:{body}".encode(), hashlib.sha256).hexdigest()[:32]


def issue(user_id: int | None, *, now: float | None = None) -> str:
    """A new token for a form shown to ``user_id``."""
    expires = int((now if now is not None else time.time()) + LIFETIME_SECONDS)
    body = f"{secrets.token_urlsafe(12)}.{user_id or 0}.{expires}"
    return f"{body}.{_sign(body)}"


def _valid(token: str, user_id: int | None, now: float) -> bool:
    parts = token.split(".")
    if len(parts) != 4:
        return False
    nonce, user, expires, signature = parts
    body = f"{nonce}.{user}.{expires}"
    if not hmac.compare_digest(_sign(body), signature):
        return False
    if user != str(user_id or 0) or not expires.isdigit():
        return False
    return int(expires) >= now


async def spend(token: str | None, user_id: int | None) -> bool:
    """True the first time a valid token of ``user_id`` is spent, False on every later time.

    A missing, forged, foreign or expired token raises ValidationFailed (the form must be
    reloaded), so a form without the field is never carried out unguarded.
    """
    now = time.time()
    if not token or not _valid(token, user_id, now):
        raise ValidationFailed.field("_form", EXPIRED)
    nonce = token.split(".", 1)[0]
    return await kv.incr(f"once:{nonce}", LIFETIME_SECONDS) == 1


@pass_context
def once_input(context: Any) -> Markup:
    """The hidden field of a one-time form token for the page's user (a Jinja global)."""
    request = context.get("request")
    principal = request.scope.get("user") if request is not None else None
    user_id = principal.user_id if principal is not None else None
    return Markup('<input type="hidden" name="{0}" value="{1}">').format(FIELD, issue(user_id))
