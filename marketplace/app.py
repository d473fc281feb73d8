"""The Litestar application: one factory wiring every package's routes, errors and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router

from marketplace import audit, db, i18n, kv, logs, outbox
from marketplace.broker import new_worker
from marketplace.errors import (
    DomainError,
    FieldError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    ValidationFailed,
)
from marketplace.i18n import N_
from marketplace.middleware import (
    ApiRateLimit,
    Authenticate,
    CsrfAndOrigin,
    before_send,
    is_api_path,
    start_request,
)
from marketplace.settings import Settings, get_settings
from marketplace.templating import ROOT, template_config

log = logging.getLogger("cloudmarket.app")

# Every package that serves pages or API routes, in the order their routes are registered.
ROUTE_MODULES = (
    "marketplace.controllers",
    "marketplace.catalog_controllers",
    "notifications.controllers",
    "households.controllers",
    "providers.controllers",
    "orders.controllers",
    "reports.controllers",
)


def collect_routes() -> list[Any]:
    routes: list[Any] = []
    for name in ROUTE_MODULES:
        routes.extend(importlib.import_module(name).ROUTES)
    return routes


# -- errors --------------------------------------------------------------------------------------


def wants_json(request: Request[Any, Any, Any]) -> bool:
    if is_api_path(request.url.path):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _problem(
    request: Request[Any, Any, Any], status: int, code: str, text: str, errors: list[FieldError], **extra: Any
) -> Response[Any]:
    body = {
        "type": f"about:blank#{code}",
        "title": text,
        "status": status,
        "code": code,
        "detail": text,
        "errors": [{"field": e.field, "message": e.text()} for e in errors],
        "request_id": logs.request_id.get(),
        **extra,
    }
    return Response(body, status_code=status, media_type="application/problem+json")


def _page(
    status: int,
    text: str,
    errors: list[FieldError],
    *,
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response[Any]:
    return Template(
        "error.html",
        context={
            "status": status,
            "message": text,
            "errors": [(e.field, e.text()) for e in errors],
            "request_id": logs.request_id.get(),
        },
        status_code=status,
        headers=headers,
        background=background,
    )


def _locale_from(request: Request[Any, Any, Any]) -> None:
    """Errors raised before the locale was chosen (unknown paths) still speak the browser's language."""
    state = request.scope.get("state", {})
    if "locale" not in state:
        i18n.current_locale.set(
            i18n.negotiate(
                request.cookies.get("cm_lang"),
                accept_language=request.headers.get("accept-language", ""),
            )
        )


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    _locale_from(request)
    background = None
    if isinstance(exc, PermissionDenied):
        background = BackgroundTask(
            audit.record,
            "permission_denied",
            principal=request.scope.get("user"),
            target_type="path",
            target_id=request.url.path[:64],
            method=request.method,
        )
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if wants_json(request):
        response = _problem(request, exc.status, exc.code, exc.text(), exc.errors)
        response.background = background
        if headers:
            response.headers.update(headers)
        return response
    if isinstance(exc, NotAuthenticated) and request.method == "GET":
        return Redirect(f"/login?next={request.url.path}")
    return _page(exc.status, exc.text(), exc.errors, headers=headers, background=background)


_HTTP_MESSAGES = {
    400: N_("The request could not be read. Check what you entered and try again."),
    401: NotAuthenticated.default_message,
    403: PermissionDenied.default_message,
    404: NotFound.default_message,
    405: N_("This address does not accept this kind of request."),
    413: N_("The upload is too large."),
    429: N_("Too many requests. Please wait a moment and try again."),
    503: Unavailable.default_message,
}
_CSRF_MESSAGE = N_(
    "The form had expired or did not come from this site, so it was not sent. Reload the page and try again."
)


_FIELD_IN_MESSAGE = re.compile(r"(unknown|required) field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '([^']+)'")


def _field_name(key: str) -> str:
    """A body path as the forms name the field: ``members[0].name`` → ``members-0-name``."""
    return re.sub(r"\[(\d+)\]", r"-\1", key).replace(".", "-")


def unreadable_fields(exc: ValidationException) -> list[FieldError]:
    """The fields of a body or query that did not parse, each with what to fix."""
    errors = []
    for item in exc.extra or []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("key") or item.get("source") or "body")
        message = N_("This value is missing or has the wrong form.")
        found = _FIELD_IN_MESSAGE.search(str(item.get("message") or ""))
        if found:  # the whole body was named: the field is in the message
            kind, field_name = found.groups()
            name = f"{name}.{field_name}" if name not in ("data", "body") else field_name
            message = (
                N_("This field is not known here; check its name in the API documentation.")
                if kind == "unknown"
                else N_("This field is required.")
            )
        errors.append(FieldError(_field_name(name), message, {}))
    missing = _MISSING_PARAMETER.search(str(exc.detail))
    if not errors and missing:
        errors.append(FieldError(missing.group(1), N_("This field is required."), {}))
    return errors


def unreadable_as_invalid(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """For routes whose unreadable input is answered like any invalid input: 422, the fields named."""
    return domain_error_handler(request, ValidationFailed(errors=unreadable_fields(exc)))


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own errors (unknown path, unreadable body, CSRF) in the person's language."""
    _locale_from(request)
    status = exc.status_code
    if isinstance(exc, ValidationException):
        # Bodies and query parameters that do not parse: name the field, in our words.
        errors = unreadable_fields(exc)
        domain: DomainError = ValidationFailed(errors=errors)
        domain_status = 400
        return (
            _problem(request, domain_status, "invalid_request", domain.text(), errors)
            if wants_json(request)
            else _page(domain_status, domain.text(), errors)
        )
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        text = i18n.gettext(_CSRF_MESSAGE)
        background = BackgroundTask(
            audit.record,
            "csrf_rejected",
            principal=request.scope.get("user"),
            target_type="path",
            target_id=request.url.path[:64],
        )
        if wants_json(request):
            response = _problem(request, 403, "csrf_failed", text, [])
            response.background = background
            return response
        return _page(403, text, [], background=background)
    if isinstance(exc, NotAuthorizedException) and not wants_json(request) and request.method == "GET":
        return Redirect(f"/login?next={request.url.path}")
    text = i18n.gettext(_HTTP_MESSAGES.get(status, N_("The request cannot be carried out.")))
    code = {
        404: "not_found",
        405: "method_not_allowed",
        401: "not_authenticated",
        403: "permission_denied",
    }.get(status, "error")
    if wants_json(request):
        return _problem(request, status, code, text, [])
    return _page(status, text, [])


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log the trace with the request id; show the person only that id."""
    _locale_from(request)
    if _is_unavailable(exc):
        log.error("dependency unavailable", extra={"error": type(exc).__name__, "path": request.url.path})
        text = i18n.gettext(Unavailable.default_message)
        if wants_json(request):
            response = _problem(request, 503, "unavailable", text, [])
            response.headers["Retry-After"] = "30"
            return response
        return _page(503, text, [], headers={"Retry-After": "30"})
    if _is_unstorable_input(exc):
        # A value the database cannot hold: an id past 2**31 names no record (404), any other
        # such value is bad input (400).
        log.info("input out of the database's range", extra={"path": request.url.path})
        status = 404 if any(_out_of_range(v) for v in request.path_params.values()) else 400
        text = i18n.gettext(_HTTP_MESSAGES[status])
        if wants_json(request):
            return _problem(request, status, "not_found" if status == 404 else "invalid_request", text, [])
        return _page(status, text, [])
    log.exception("unhandled error", extra={"path": request.url.path})
    text = i18n.gettext(
        N_(
            "Something went wrong on our side. The error has been recorded; "
            "please try again. Reference: %(ref)s"
        ),
        ref=logs.request_id.get(),
    )
    if wants_json(request):
        return _problem(request, 500, "internal_error", text, [])
    return _page(500, text, [])


# asyncpg's errors for a server that is gone, restarting or refusing connections.
_DATABASE_DOWN = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "InterfaceError",
    "TooManyConnectionsError",
    "AdminShutdownError",
    "CrashShutdownError",
    "ConnectionFailureError",
    "ConnectionRejectionError",
    "PostgresConnectionError",
    # asyncpg's state machine gives up on a connection the server ended in the middle of a query
    "InternalClientError",
}


def _is_unavailable(exc: BaseException) -> bool:
    """The database or Redis cannot be reached (a restart, an outage): the request may be retried."""
    import redis.exceptions

    for error in _chain(exc):
        if isinstance(
            error,
            (ConnectionError, TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
        ):
            return True
        if isinstance(error, OSError) and "Connect call failed" in str(error):  # every address refused
            return True
        if type(error).__name__ in _DATABASE_DOWN:
            return True
    return False


# PostgreSQL refuses a NUL character in text ("\x00" in a search, "\u0000" in JSON).
_UNSTORABLE_TEXT = {"CharacterNotInRepertoireError", "UntranslatableCharacterError"}


def _is_unstorable_input(exc: BaseException) -> bool:
    """A value from the request that the database cannot take (past its integer range, a NUL character)."""
    for error in _chain(exc):
        if isinstance(error, OverflowError):  # sqlite3: larger than a 64-bit integer
            return True
        if type(error).__name__ == "DataError" and str(error).startswith("invalid input for query argument"):
            return True
        if type(error).__name__ in _UNSTORABLE_TEXT:
            return True
    return False


def _out_of_range(value: Any) -> bool:
    return isinstance(value, int) and not -(2**31) <= value < 2**31


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# -- the schema of errors -------------------------------------------------------------------------

PROBLEM = "Problem"
_PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="An error (RFC 9457 problem details), its message in the caller's language",
    required=["type", "title", "status", "code", "detail", "errors", "request_id"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "code": Schema(type=OpenAPIType.STRING, description="validation_failed, not_found, unavailable, ..."),
        "detail": Schema(type=OpenAPIType.STRING),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            description="The fields at fault, each with what to fix",
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["field", "message"],
                properties={
                    "field": Schema(type=OpenAPIType.STRING),
                    "message": Schema(type=OpenAPIType.STRING),
                },
            ),
        ),
        "request_id": Schema(type=OpenAPIType.STRING, description="Quote it when reporting a problem"),
    },
)


def document_problems(app: Litestar) -> None:
    """Every error an operation documents is what the error handlers send: a problem document.

    Litestar describes its own errors as ``{status_code, detail, extra}`` in JSON; this service
    answers every error with ``application/problem+json`` (see :func:`_problem`).
    """
    from litestar._openapi.plugin import OpenAPIPlugin

    openapi = app.plugins.get(OpenAPIPlugin).provide_openapi()
    openapi.components.schemas[PROBLEM] = _PROBLEM_SCHEMA
    reference = Reference(ref=f"#/components/schemas/{PROBLEM}")
    for path_item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            for status, response in ((operation.responses or {}) if operation else {}).items():
                if status[0] in "45" and isinstance(response, OpenAPIResponse):
                    response.content = {"application/problem+json": OpenAPIMediaType(schema=reference)}


# -- lifespan ----------------------------------------------------------------------------------


def lifespan_for(settings: Settings, run_jobs: bool) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            await db.open_pool()
            await db.ping()
        except Exception as exc:
            raise RuntimeError(f"cannot reach the database at DATABASE_URL: {exc}") from exc
        try:
            await kv.ping()
        except Exception as exc:
            raise RuntimeError(f"cannot reach Redis at REDIS_URL: {exc}") from exc
        worker = None
        relay: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if run_jobs:
            worker = new_worker()
            worker.start()
            relay = asyncio.create_task(outbox.run_relay(stop))
            log.info("in-process worker started", extra={"threads": settings.worker_threads})
        try:
            yield
        finally:
            stop.set()
            if relay is not None:
                with contextlib.suppress(Exception):
                    await relay
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            await kv.close()
            await db.close_pool()

    return lifespan


class CloudMarketApp(Litestar):
    """Litestar, with the request context set before routing (see ``start_request``)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start_request(scope)
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, run_jobs: bool | None = None) -> Litestar:
    """The web application; ``run_jobs`` runs the worker in-process (default: when embedded)."""
    settings = settings or get_settings()
    logs.configure(settings.log_level)
    if run_jobs is None:
        run_jobs = not settings.redis_url
    static = create_static_files_router(
        path="/static", directories=[ROOT / "marketplace" / "static"], name="static", include_in_schema=False
    )
    return CloudMarketApp(
        route_handlers=[*collect_routes(), static],
        middleware=[
            Authenticate,
            DefineMiddleware(CsrfAndOrigin),
            ApiRateLimit,
        ],
        before_send=[before_send],
        exception_handlers={
            DomainError: domain_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        template_config=template_config(),
        openapi_config=OpenAPIConfig(
            title="Cloud Supermarket API",
            version="1",
            description="Service-type social assistance: households, providers, orders. "
            "Authenticate with `Authorization: Bearer <token>` (integration clients) or a session cookie.",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer"),
                    "smsGateway": SecurityScheme(
                        type="apiKey",
                        name="webhook-signature",
                        security_scheme_in="header",
                        description="The SMS gateway signs per Standard Webhooks "
                        "(CLOUDMARKET_SMS_GATEWAY_SECRET)",
                    ),
                }
            ),
            security=[{"bearer": []}],
        ),
        response_cache_config=ResponseCacheConfig(),
        lifespan=[lifespan_for(settings, run_jobs)],
        on_startup=[document_problems],
        state=State({"settings": settings}),
        request_max_body_size=50 * 1024 * 1024,
        logging_config=None,  # marketplace.logs configures logging once per process
        debug=False,
    )
