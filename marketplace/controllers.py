"""Routes of the app shell: health, login and logout, each role's home, admin of integrations."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from msgspec import Struct

from marketplace import accounts, admin, db, kv, navigation
from marketplace.auth import Principal, Role, logged_in, requires
from marketplace.broker import broker
from marketplace.errors import DomainError, ValidationFailed
from marketplace.i18n import N_, SUPPORTED
from marketplace.middleware import LANG_COOKIE, session_cookie_name
from marketplace.pagination import PageNumber
from marketplace.settings import get_settings

log = logging.getLogger("cloudmarket.app")
Form = URLEncodedBody[dict[str, str]]
READY_TIMEOUT_S = 2.0


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _check(name: str, coro: Any) -> str:
    """ "ok", or the kind of failure; the full error (hosts, ports) goes to the log only."""
    try:
        await asyncio.wait_for(coro, READY_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness check timed out", extra={"dependency": name})
        return "timeout"
    except Exception as exc:
        log.warning(
            "readiness check failed", extra={"dependency": name, "error": f"{type(exc).__name__}: {exc}"}
        )
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _ping_broker() -> None:
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()


@get("/readyz", include_in_schema=False)
async def readyz() -> Response[dict[str, str]]:
    """The database and the broker answer; 503 with the reason when one does not."""
    checks = {
        "database": await _check("database", db.ping()),
        "broker": await _check("broker", asyncio.to_thread(_ping_broker)),
        "cache": await _check("cache", kv.ping()),
    }
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "unavailable", **checks}
    return Response(body, status_code=200 if ready else 503)


class AuthController(Controller):
    path = ""
    include_in_schema = False

    @get("/login")
    async def login_form(
        self,
        request: Request[Any, Any, Any],
        next_: Annotated[str | None, QueryParameter(name="next")] = None,
    ) -> Template | Redirect:
        if request.scope.get("user") is not None:
            return Redirect(_safe_next(next_))
        return Template("login.html", context={"next": _safe_next(next_), "errors": {}, "phone": ""})

    @post("/login", status_code=200)
    async def login(self, request: Request[Any, Any, Any], data: Form) -> Template | Redirect:
        phone, password = data.get("phone", ""), data.get("password", "")
        target = _safe_next(data.get("next"))
        try:
            done = await accounts.login(phone, password)
        except DomainError as exc:
            return Template(
                "login.html",
                context={
                    "next": target,
                    "phone": phone,
                    "message": exc.text() if not exc.errors else "",
                    "errors": {e.field: e.text() for e in exc.errors},
                },
                status_code=exc.status,
                headers={"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None,
            )
        old = request.scope.get("state", {}).get("session_token")
        if old:
            await accounts.end_session(old)
        response = Redirect(target)
        settings = get_settings()
        response.set_cookie(
            session_cookie_name(),
            done.token,
            httponly=True,
            secure=settings.https,
            samesite="lax",
            path="/",
            max_age=settings.session_max_hours * 3600,
        )
        return response

    @post("/logout", guards=[logged_in], status_code=200)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        token = request.scope.get("state", {}).get("session_token")
        principal: Principal = request.user
        if token:
            await accounts.end_session(token, user_id=principal.user_id)
        response = Redirect("/login")
        response.delete_cookie(session_cookie_name(), path="/")
        return response

    @post("/lang", status_code=200)
    async def set_language(self, request: Request[Any, Any, Any], data: Form) -> Redirect:
        """Choose the language of the pages; kept on the account when logged in."""
        locale = data.get("locale", "")
        if locale not in SUPPORTED:
            raise ValidationFailed.field("locale", N_("Choose one of the offered languages."))
        principal: Principal | None = request.scope.get("user")
        if principal is not None and principal.user_id is not None:
            await accounts.set_locale(principal.user_id, locale)
        response = Redirect(_safe_next(data.get("next")))
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True, path="/")
        return response


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Each role lands on its own page; visitors see what the service is and the login."""
    principal: Principal | None = request.scope.get("user")
    if principal is None or principal.role is None:
        return Template("welcome.html")
    return Template("home.html", context={"menu": navigation.menu_for(principal), "principal": principal})


class AdminController(Controller):
    path = "/admin"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("/api-clients")
    async def api_clients(self) -> Template:
        return Template(
            "admin/api_clients.html", context={"clients": await accounts.list_api_clients(), "issued": None}
        )

    @post("/api-clients", status_code=200)
    async def create_api_client(self, request: Request[Any, Any, Any], data: Form) -> Template:
        scopes = [s for s in data.get("scopes", "").replace(",", " ").split() if s]
        issued = await accounts.create_api_client(
            data.get("name", ""), scopes, created_by=request.user.user_id
        )
        return Template(
            "admin/api_clients.html",
            context={"clients": await accounts.list_api_clients(), "issued": issued},
        )

    @post("/api-clients/{client_id:int}/revoke", status_code=200)
    async def revoke_api_client(self, request: Request[Any, Any, Any], client_id: FromPath[int]) -> Redirect:
        await accounts.revoke_api_client(client_id, by_user_id=request.user.user_id)
        return Redirect("/admin/api-clients")

    @get("/jobs")
    async def job_failures(self, page: PageNumber = 1) -> Template:
        return Template("admin/jobs.html", context=await admin.job_overview(page))

    @get("/audit")
    async def audit_log(
        self,
        page: PageNumber = 1,
        action: FromQuery[str | None] = None,
    ) -> Template:
        return Template("admin/audit.html", context=await admin.audit_page(page, action))


class MeResponse(Struct):
    user_id: int | None
    role: str | None
    display_name: str
    client_id: int | None
    scopes: list[str]


@get("/api/v1/me", tags=["accounts"], summary="Who am I", guards=[logged_in])
async def me(request: Request[Any, Any, Any]) -> MeResponse:
    """The caller as the service sees it: user, role and, for integrations, scopes."""
    p: Principal = request.user
    return MeResponse(
        user_id=p.user_id,
        role=str(p.role) if p.role else None,
        display_name=p.display_name,
        client_id=p.client_id,
        scopes=sorted(p.scopes),
    )


ROUTES: list[Any] = [healthz, readyz, AuthController, home, AdminController, me]
