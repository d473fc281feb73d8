"""The request pipeline: request ids and logs, the caller, the locale, CSRF and origin checks.

The application calls :func:`start_request` for every request; then the middleware run, in
order: ``Authenticate`` → ``CsrfAndOrigin`` → ``ApiRateLimit``.  Security headers and the
request log line are added in :func:`before_send`, which Litestar runs for every response,
even for unknown paths.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any

from litestar.config.csrf import CSRFConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from marketplace import accounts, i18n, logs, ratelimit, security
from marketplace.auth import Principal
from marketplace.settings import get_settings

log = logging.getLogger("cloudmarket.http")

LANG_COOKIE = "cm_lang"
CSRF_COOKIE = "cm_csrf"
CSRF_HEADER = "x-csrftoken"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9\-]{8,64}$")


def session_cookie_name() -> str:
    # The __Host- prefix makes browsers refuse the cookie unless Secure, host-only, Path=/.
    return "__Host-cm_session" if get_settings().https else "cm_session"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})  # type: ignore[return-value]


def is_api_path(path: str) -> bool:
    return path.startswith(("/api/", "/hsds/", "/schema"))


def start_request(scope: Scope) -> None:
    """Give a request an id, a client address and a start time, and set the log context.

    Called by the application itself for every HTTP request, before routing, so that even
    an unknown path gets an id in its log line, its response headers and its error body.
    """
    if scope["type"] == ScopeType.HTTP:
        headers = _headers(scope)
        settings = get_settings()
        state = _state(scope)
        incoming = headers.get("x-request-id", "")
        rid = (
            incoming if settings.trusted_proxies and _REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)
        )
        client = scope.get("client")
        ip = client[0] if client else ""
        if settings.trusted_proxies and headers.get("x-forwarded-for"):
            # The last address is the one our own proxy added; anything before it the client
            # may have written itself.
            ip = headers["x-forwarded-for"].split(",")[-1].strip()
        state.setdefault("started", time.perf_counter())
        state["request_id"] = rid
        state["headers"] = headers
        state["cookies"] = _cookies(headers)
        logs.request_id.set(rid)
        logs.client_ip.set(ip)


class Authenticate:
    """Finds the caller (bearer token or session cookie) and the locale to answer in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        headers: dict[str, str] = state.get("headers") or _headers(scope)
        cookies: dict[str, str] = state.get("cookies") or _cookies(headers)
        principal: Principal | None = None
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            principal = await accounts.principal_for_token(authorization[7:].strip())
            scope["auth"] = "token" if principal else "bad-token"  # type: ignore[typeddict-unknown-key]
        else:
            token = cookies.get(session_cookie_name())
            if token:
                user_id = await accounts.session_user_id(token)
                if user_id is not None:
                    principal = await accounts.principal_for_user(user_id, security.session_key(token))
                    state["session_token"] = token
            scope["auth"] = "session" if principal else None  # type: ignore[typeddict-unknown-key]
        scope["user"] = principal  # type: ignore[typeddict-unknown-key]
        locale = i18n.negotiate(
            principal.locale if principal else None,
            cookies.get(LANG_COOKIE),
            accept_language=headers.get("accept-language", ""),
        )
        state["locale"] = locale
        i18n.current_locale.set(locale)
        if principal is not None and principal.user_id is not None and _is_page_view(scope, state):
            from notifications.services import unread_count

            # One indexed count per page view, for the inbox badge in base.html.
            state["unread"] = await unread_count(principal.user_id)
        await self.app(scope, receive, send)


def _is_page_view(scope: Scope, state: dict[str, Any]) -> bool:
    """A browser GET of a page (not the API, static files or health checks) with a session."""
    path = scope.get("path", "")
    return (
        scope.get("method") == "GET"
        and "session_token" in state
        and not is_api_path(path)
        and not path.startswith(("/static/", "/healthz", "/readyz"))
    )


def _signed(scope: Scope) -> bool:
    """A route that a server calls with a signed body, not a browser."""
    handler = scope.get("route_handler")
    return bool(handler is not None and handler.opt.get("exclude_from_csrf"))


class CsrfAndOrigin:
    """Unsafe requests from a browser must come from this site and carry the CSRF token.

    Requests with a bearer token are exempt: a browser cannot attach one across sites; so are
    routes marked ``opt={"exclude_from_csrf": True}``, which check a webhook signature instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        settings = get_settings()
        self.csrf = CSRFMiddleware(
            app,
            CSRFConfig(
                secret=settings.secret_key,
                cookie_name=CSRF_COOKIE,
                header_name=CSRF_HEADER,
                cookie_secure=settings.https,
                cookie_httponly=True,
                cookie_samesite="lax",
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("auth") in {"token", "bad-token"} or _signed(scope):
            await self.app(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS:
            from marketplace.errors import PermissionDenied
            from marketplace.i18n import N_

            headers: dict[str, str] = _state(scope).get("headers") or _headers(scope)
            fetch_site = headers.get("sec-fetch-site", "")
            if fetch_site and fetch_site not in {"same-origin", "none"}:
                raise PermissionDenied(N_("This form was sent from another website and was refused."))
            origin = headers.get("origin")
            scheme = headers.get("x-forwarded-proto", scope.get("scheme", "http"))
            if origin and not security.origin_allowed(origin, headers.get("host", ""), scheme):
                raise PermissionDenied(N_("This form was sent from another website and was refused."))
        await self.csrf(scope, receive, send)


class ApiRateLimit:
    """Limits API calls per client, user or address, shared across processes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"].startswith(("/api/", "/hsds/")):
            principal: Principal | None = scope.get("user")
            if principal and principal.client_id:
                ident = f"c{principal.client_id}"
            elif principal and principal.user_id:
                ident = f"u{principal.user_id}"
            else:
                ident = f"ip{logs.client_ip.get()}"
            await ratelimit.check("api", ident, get_settings().api_rate_limit)
        await self.app(scope, receive, send)


def before_send(message: Message, scope: Scope) -> None:
    """Security headers on every response; ``no-store`` on personal pages; one log line."""
    if scope["type"] != ScopeType.HTTP:
        return
    state = _state(scope)
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in security.security_headers(get_settings().https):
            if name.decode() not in headers:
                headers[name.decode()] = value.decode()
        path = scope.get("path", "")
        if "cache-control" not in headers and (
            scope.get("user") is not None or not path.startswith("/static/")
        ):
            headers["cache-control"] = "no-store"
        if "request_id" in state:
            headers["x-request-id"] = state["request_id"]
        state["status"] = message["status"]
    elif message["type"] == "http.response.body" and not message.get("more_body", False):
        if state.get("logged"):
            return
        state["logged"] = True
        started = state.get("started")
        principal: Principal | None = scope.get("user")
        log.info(
            "request",
            extra={
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": state.get("status"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
                "user_id": principal.user_id if principal else None,
                "client_id": principal.client_id if principal else None,
            },
        )
