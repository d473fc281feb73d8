"""Routes of `households`: stewards' registry pages, the resident's page, admin rules, and the API."""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import Body, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import File, Redirect, Template
from msgspec import structs

from households import activation, handoffs, importer, monitoring, services
from households.schemas import (
    EraseIn,
    FieldErrorOut,
    HealthNotesOut,
    HealthReadIn,
    HouseholdIn,
    HouseholdOut,
    HouseholdPage,
    HouseholdPatch,
    IdNumberOut,
    ImportCellError,
    ImportJobOut,
    ImportRowOut,
    ImportRowPage,
    MemberIn,
    MemberPatch,
    OverrideIn,
    ProxyIn,
    ProxyOut,
    ReasonIn,
    SignalBatchIn,
    SignalBatchOut,
    SignalResultOut,
    WarningPage,
    household_out,
    job_out,
    sent_fields,
    summary_out,
    warning_summary,
)
from households.signals import KINDS, MEASURES, SEVERITIES
from marketplace import accounts, audit, clock
from marketplace.auth import Role, logged_in, requires
from marketplace.errors import DomainError
from marketplace.i18n import gettext as _
from marketplace.middleware import session_cookie_name
from marketplace.settings import get_settings

Upload = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
STAFF = [requires(Role.STEWARD, Role.ADMIN)]
PER_PAGE = 20


async def form_data(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """A submitted form as a dict; ``groups`` (checkboxes) keeps all its values."""
    form = await request.form()
    data: dict[str, Any] = {key: form.get(key) for key in form}
    data["groups"] = form.getall("groups") if "groups" in form else []
    return data


def errors_of(exc: DomainError) -> dict[str, str]:
    errors = {e.field: e.text() for e in exc.errors}
    if not errors:
        errors["_form"] = exc.text()
    return errors


def _filters(
    *,
    level: int | None, group: str | None, category: str | None, status: str | None, community: int | None,
    q: str | None, sort: str | None,
) -> services.ListFilters:  # fmt: skip
    return services.ListFilters(
        level=level, group=group or None, category=category or None, status=status or None,
        community_id=community, q=q, sort=sort or "level",
    )  # fmt: skip


class HouseholdPages(Controller):
    """The stewards' registry: list, detail, forms, override, personal data actions."""

    path = "/households"
    guards = STAFF
    include_in_schema = False

    @get("")
    async def index(
        self,
        request: Request[Any, Any, Any],
        *,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        level: FromQuery[int | None] = None,
        group: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        community: FromQuery[int | None] = None,
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
    ) -> Template:
        filters = _filters(
            level=level, group=group, category=category, status=status, community=community, q=q, sort=sort
        )
        households = await services.list_households(request.user, filters, page, PER_PAGE)
        options = await services.form_options(request.user)
        return Template("households/list.html", context={"households": households, "f": filters, **options})

    @get("/new")
    async def new(self, request: Request[Any, Any, Any]) -> Template:
        options = await services.form_options(request.user)
        return Template(
            "households/form.html", context={"values": {}, "errors": {}, "household_id": None, **options}
        )

    @post("/new", status_code=200)
    async def create(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        data = await form_data(request)
        member = {k.removeprefix("members-0-"): v for k, v in data.items() if k.startswith("members-0-")}
        try:
            household_id = await services.create_household(request.user, data, [member])
        except DomainError as exc:
            options = await services.form_options(request.user)
            return Template(
                "households/form.html",
                context={"values": data, "errors": errors_of(exc), "household_id": None, **options},
                status_code=exc.status,
            )
        return Redirect(f"/households/{household_id}")

    @get("/{household_id:int}")
    async def show(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> Template:
        detail = await services.household_detail(request.user, household_id)
        options = await services.form_options(request.user)
        warnings = await _warnings_of(request, household_id)
        return Template(
            "households/detail.html", context={**detail, **options, **warnings, "errors": {}, "values": {}}
        )

    @get("/{household_id:int}/edit")
    async def edit(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> Template:
        detail = await services.household_detail(request.user, household_id)
        options = await services.form_options(request.user)
        stewards = await services.stewards_of(detail["household"]["community"])
        return Template(
            "households/form.html",
            context={
                "values": services.household_form_values(detail), "errors": {}, "household_id": household_id,
                "stewards": stewards, **options,
            },
        )  # fmt: skip

    @post("/{household_id:int}/edit", status_code=200)
    async def update(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.update_household(request.user, household_id, data)
        except DomainError as exc:
            detail = await services.household_detail(request.user, household_id)
            options = await services.form_options(request.user)
            stewards = await services.stewards_of(detail["household"]["community"])
            return Template(
                "households/form.html",
                context={
                    "values": {**data, "code": detail["household"]["code"]}, "errors": errors_of(exc),
                    "household_id": household_id, "stewards": stewards, **options,
                },
                status_code=exc.status,
            )  # fmt: skip
        return Redirect(f"/households/{household_id}")

    @get("/{household_id:int}/members/new")
    async def new_member(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> Template:
        await services.staff_household(request.user, household_id)
        options = await services.form_options(request.user)
        context = {"values": {}, "errors": {}, "household_id": household_id, "member_id": None, **options}
        return Template("households/member_form.html", context=context)

    @post("/{household_id:int}/members/new", status_code=200)
    async def add_member(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        return await self._save_member(request, household_id, None)

    @get("/{household_id:int}/members/{member_id:int}/edit")
    async def edit_member(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template:
        values = await services.member_for_edit(request.user, household_id, member_id)
        options = await services.form_options(request.user)
        context = {
            "values": values,
            "errors": {},
            "household_id": household_id,
            "member_id": member_id,
            **options,
        }
        return Template("households/member_form.html", context=context)

    @post("/{household_id:int}/members/{member_id:int}/edit", status_code=200)
    async def update_member(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template | Redirect:
        return await self._save_member(request, household_id, member_id)

    async def _save_member(
        self, request: Request[Any, Any, Any], household_id: int, member_id: int | None
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.save_member(request.user, household_id, data, member_id=member_id)
        except DomainError as exc:
            options = await services.form_options(request.user)
            data.pop("id_number", None)  # never echo an ID number back into a page
            return Template(
                "households/member_form.html",
                context={
                    "values": data, "errors": errors_of(exc), "household_id": household_id,
                    "member_id": member_id, **options,
                },
                status_code=exc.status,
            )  # fmt: skip
        return Redirect(f"/households/{household_id}")

    @post("/{household_id:int}/members/{member_id:int}/remove", status_code=200)
    async def remove_member(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.remove_member(
                request.user, household_id, member_id, reason=data.get("reason") or ""
            )
        except DomainError as exc:
            return await self._detail_with_errors(request, household_id, exc, data)
        return Redirect(f"/households/{household_id}")

    async def _detail_with_errors(
        self, request: Request[Any, Any, Any], household_id: int, exc: DomainError, data: dict[str, Any]
    ) -> Template:
        detail = await services.household_detail(request.user, household_id)
        options = await services.form_options(request.user)
        warnings = await _warnings_of(request, household_id)
        context = {**detail, **options, **warnings, "errors": errors_of(exc), "values": data}
        return Template("households/detail.html", context=context, status_code=exc.status)

    @get("/{household_id:int}/override")
    async def override_form(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> Template:
        detail = await services.household_detail(request.user, household_id)
        return Template(
            "households/override.html", context={**detail, "values": {}, "errors": {}, "levels": [1, 2, 3]}
        )

    @post("/{household_id:int}/override", status_code=200)
    async def override(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.override_level(
                request.user, household_id, level=data.get("level"), reason=data.get("reason") or "",
                until=data.get("until"),
            )  # fmt: skip
        except DomainError as exc:
            detail = await services.household_detail(request.user, household_id)
            context = {**detail, "values": data, "errors": errors_of(exc), "levels": [1, 2, 3]}
            return Template("households/override.html", context=context, status_code=exc.status)
        return Redirect(f"/households/{household_id}")

    @post("/{household_id:int}/override/clear", status_code=200)
    async def clear_override(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.clear_override(request.user, household_id, reason=data.get("reason") or "")
        except DomainError as exc:
            detail = await services.household_detail(request.user, household_id)
            context = {**detail, "values": data, "errors": errors_of(exc), "levels": [1, 2, 3]}
            return Template("households/override.html", context=context, status_code=exc.status)
        return Redirect(f"/households/{household_id}")

    @get("/{household_id:int}/members/{member_id:int}/reveal")
    async def reveal_form(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template:
        member = await services.member_for_edit(request.user, household_id, member_id)
        context = {"member": member, "household_id": household_id, "errors": {}, "id_number": None}
        return Template("households/reveal.html", context=context)

    @post("/{household_id:int}/members/{member_id:int}/reveal", status_code=200)
    async def reveal(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template:
        data = await form_data(request)
        member = await services.member_for_edit(request.user, household_id, member_id)
        context: dict[str, Any] = {
            "member": member,
            "household_id": household_id,
            "errors": {},
            "id_number": None,
        }
        try:
            context["id_number"] = await services.reveal_id_number(
                request.user, household_id, member_id, reason=data.get("reason") or ""
            )
        except DomainError as exc:
            return Template(
                "households/reveal.html",
                context={**context, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Template("households/reveal.html", context=context)

    @get("/{household_id:int}/members/{member_id:int}/health")
    async def health_form(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template:
        member = await services.member_for_edit(request.user, household_id, member_id)
        context = {"member": member, "household_id": household_id, "errors": {}, "health": None}
        return Template("households/health.html", context=context)

    @post("/{household_id:int}/members/{member_id:int}/health", status_code=200)
    async def read_health(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], member_id: FromPath[int]
    ) -> Template:
        data = await form_data(request)
        member = await services.member_for_edit(request.user, household_id, member_id)
        health = await services.read_health_notes(
            request.user, household_id, member_id, reason=data.get("reason") or ""
        )
        context = {"member": member, "household_id": household_id, "errors": {}, "health": health}
        return Template("households/health.html", context=context)

    @post("/{household_id:int}/consents", status_code=200)
    async def add_consent(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.add_consent(request.user, household_id, data)
        except DomainError as exc:
            return await self._detail_with_errors(request, household_id, exc, data)
        return Redirect(f"/households/{household_id}#consents")

    @post("/{household_id:int}/proxies", status_code=200)
    async def link_proxy(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.link_proxy(
                request.user, household_id, phone=data.get("phone") or "", name=data.get("display_name") or ""
            )
        except DomainError as exc:
            return await self._detail_with_errors(request, household_id, exc, data)
        return Redirect(f"/households/{household_id}#accounts")

    @post("/{household_id:int}/proxies/{user_id:int}/unlink", status_code=200)
    async def unlink_proxy(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], user_id: FromPath[int]
    ) -> Redirect:
        await services.unlink_proxy(request.user, household_id, user_id)
        return Redirect(f"/households/{household_id}#accounts")

    @get("/{household_id:int}/export")
    async def export_form(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> Template:
        household = await services.staff_household(request.user, household_id)
        return Template("households/export.html", context={"household": household, "errors": {}})

    @post("/{household_id:int}/export", status_code=200)
    async def export(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Response[Any] | Template:
        data = await form_data(request)
        try:
            exported = await services.export_household(
                request.user, household_id, reason=data.get("reason") or ""
            )
        except DomainError as exc:
            household = await services.staff_household(request.user, household_id)
            context = {"household": household, "errors": errors_of(exc)}
            return Template("households/export.html", context=context, status_code=exc.status)
        return _json_download(exported, f"household-{household_id}.json")

    @get("/{household_id:int}/erase")
    async def erase_form(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> Template:
        household = await services.staff_household(request.user, household_id)
        return Template("households/erase.html", context={"household": household, "errors": {}, "values": {}})

    @post("/{household_id:int}/erase", status_code=200)
    async def erase(
        self, request: Request[Any, Any, Any], household_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.erase_household(
                request.user,
                household_id,
                reason=data.get("reason") or "",
                confirm_code=data.get("confirm_code") or "",
            )
        except DomainError as exc:
            household = await services.staff_household(request.user, household_id)
            context = {"household": household, "errors": errors_of(exc), "values": data}
            return Template("households/erase.html", context=context, status_code=exc.status)
        return Redirect(f"/households/{household_id}")


async def _warnings_of(request: Request[Any, Any, Any], household_id: int) -> dict[str, Any]:
    """The household page's warnings section."""
    warnings = await monitoring.household_warnings(request.user, household_id)
    return {"warnings": warnings, "warning_labels": monitoring.labels()}


def _json_download(body: Any, filename: str) -> Response[Any]:
    return Response(
        json.dumps(body, ensure_ascii=False, indent=2, default=str),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


class ImportPages(Controller):
    """Uploading households: a dry run row by row, then the real run, with progress."""

    path = "/households/import"
    guards = STAFF
    include_in_schema = False

    @get("")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        jobs = await importer.recent_jobs(request.user)
        return Template("households/import.html", context={"jobs": jobs, "errors": {}})

    @post("", status_code=200)
    async def upload(self, request: Request[Any, Any, Any], data: Upload) -> Template | Redirect:
        upload = data.get("file")
        try:
            content = await upload.read() if isinstance(upload, UploadFile) else b""
            name = upload.filename if isinstance(upload, UploadFile) else ""
            job_id = await importer.start(request.user, filename=name, content=content, dry_run=True)
        except DomainError as exc:
            jobs = await importer.recent_jobs(request.user)
            return Template(
                "households/import.html",
                context={"jobs": jobs, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect(f"/households/import/{job_id}")

    @get("/template.csv")
    async def template(self) -> Response[bytes]:
        return Response(
            importer.template_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="households-template.csv"'},
        )

    @get("/{job_id:int}")
    async def show(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        errors_only: FromQuery[bool] = False,
    ) -> Template:
        job = await importer.job_for(request.user, job_id)
        rows = await importer.job_rows(request.user, job_id, only_errors=errors_only, page=page)
        context = {
            "job": job, "rows": rows, "errors_only": errors_only, "error_text": importer.error_text,
            "file_errors": importer.file_errors(job),
        }  # fmt: skip
        return Template("households/import_job.html", context=context)

    @post("/{job_id:int}/apply", status_code=200)
    async def apply(self, request: Request[Any, Any, Any], job_id: FromPath[int]) -> Redirect:
        real = await importer.apply(request.user, job_id)
        return Redirect(f"/households/import/{real}")


class ActivationPages(Controller):
    """A member whose phone is on record activates their account with a code sent to it."""

    path = "/activate"
    include_in_schema = False

    @get("")
    async def start(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        if request.scope.get("user") is not None:
            return Redirect("/")
        return Template("households/activate.html", context={"phone": "", "errors": {}})

    @post("", status_code=200)
    async def send(self, request: Request[Any, Any, Any]) -> Template:
        data = await form_data(request)
        try:
            phone = await activation.request_code(data.get("phone") or "")
        except DomainError as exc:
            context = {"phone": data.get("phone") or "", "errors": errors_of(exc)}
            return Template("households/activate.html", context=context, status_code=exc.status)
        return Template("households/activate_code.html", context={"phone": phone, "errors": {}})

    @post("/code", status_code=200)
    async def confirm(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        data = await form_data(request)
        phone = accounts.normalise_phone(data.get("phone") or "")
        try:
            user_id = await activation.activate(
                phone, data.get("code") or "", data.get("password") or "", data.get("password_again") or ""
            )
        except DomainError as exc:
            context = {"phone": phone, "errors": errors_of(exc)}
            return Template("households/activate_code.html", context=context, status_code=exc.status)
        return await _logged_in_redirect(request, user_id, "/my/household?welcome=1")


async def _logged_in_redirect(request: Request[Any, Any, Any], user_id: int, target: str) -> Redirect:
    """Start a session for a just-activated account, as a login does."""
    old = request.scope.get("state", {}).get("session_token")
    if old:
        await accounts.end_session(old)
    token = await accounts.start_session(user_id)
    await audit.record("login", user_id=user_id, via="activation")
    settings = get_settings()
    response = Redirect(target)
    response.set_cookie(
        session_cookie_name(), token, httponly=True, secure=settings.https, samesite="lax", path="/",
        max_age=settings.session_max_hours * 3600,
    )  # fmt: skip
    return response


class MyHousehold(Controller):
    """A resident's own household."""

    path = "/my/household"
    guards = [requires(Role.RESIDENT)]
    include_in_schema = False

    @get("")
    async def show(self, request: Request[Any, Any, Any]) -> Template:
        detail = await services.my_household(request.user)
        return Template("households/mine.html", context={"detail": detail, "labels": await services.labels()})

    @post("/export", status_code=200)
    async def export(self, request: Request[Any, Any, Any]) -> Response[Any]:
        household_id = await services.my_household_id(request.user)
        exported = await services.export_household(request.user, household_id)
        return _json_download(exported, "my-household.json")


class NeedLevelAdmin(Controller):
    """Administrators edit the need-level rules (kept with history) and the need groups."""

    path = "/admin"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("/need-levels")
    async def rules(self) -> Template:
        return Template("households/admin_rules.html", context=await services.rules_page())

    @post("/need-levels", status_code=200)
    async def save_rules(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        form = await request.form()
        rules, thresholds, note = services.rules_from_form(form)
        try:
            await services.save_rules(request.user, rules=rules, thresholds=thresholds, note=note)
        except DomainError as exc:
            context = await services.rules_page(rules=rules, thresholds=thresholds, note=note)
            return Template(
                "households/admin_rules.html",
                context={**context, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect("/admin/need-levels?saved=1")

    @get("/need-groups")
    async def groups(self) -> Template:
        groups = await services.need_groups()
        return Template(
            "households/admin_groups.html", context={"groups": groups, "errors": {}, "values": {}}
        )

    @post("/need-groups", status_code=200)
    async def add_group(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.add_need_group(
                request.user, code=data.get("code") or "", name_zh=data.get("name_zh") or "",
                name_en=data.get("name_en") or "",
            )  # fmt: skip
        except DomainError as exc:
            groups = await services.need_groups()
            context = {"groups": groups, "errors": errors_of(exc), "values": data}
            return Template("households/admin_groups.html", context=context, status_code=exc.status)
        return Redirect("/admin/need-groups")


# -- JSON API ----------------------------------------------------------------------------------


def _unreadable(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A body or query of the wrong shape is invalid input like any other: 422, the fields named."""
    from marketplace.app import unreadable_as_invalid  # the app imports these routes

    return unreadable_as_invalid(request, exc)


UNREADABLE_IS_INVALID: dict[Any, Any] = {ValidationException: _unreadable}


class HouseholdApi(Controller):
    """Households of the caller's communities (stewards, admins) or the caller's own (residents)."""

    path = "/api/v1/households"
    tags = ["households"]
    exception_handlers = UNREADABLE_IS_INVALID

    @get("", guards=STAFF, summary="List households")
    async def list_households(
        self,
        request: Request[Any, Any, Any],
        *,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = PER_PAGE,
        level: Annotated[int | None, QueryParameter(ge=1, le=3)] = None,
        group: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        community: FromQuery[int | None] = None,
        q: Annotated[
            str | None, QueryParameter(description="Name, phone, household code or ID suffix")
        ] = None,
        sort: Annotated[
            str | None, QueryParameter(description="level, code, updated, community; - for descending")
        ] = None,
    ) -> HouseholdPage:
        """Paginated and filterable; ID numbers never appear, only masked on the detail."""
        filters = _filters(
            level=level, group=group, category=category, status=status, community=community, q=q, sort=sort
        )
        result = await services.list_households(request.user, filters, page, per_page)
        return HouseholdPage(
            items=[summary_out(row) for row in result.items], page=result.page, per_page=result.per_page,
            total=result.total, pages=result.pages,
        )  # fmt: skip

    @post("", guards=STAFF, summary="Register a household")
    async def create(self, request: Request[Any, Any, Any], data: JSONBody[HouseholdIn]) -> HouseholdOut:
        body = structs.asdict(data)
        members = [structs.asdict(m) for m in data.members]
        household_id = await services.create_household(request.user, body, members)
        return household_out(await services.household_detail(request.user, household_id))

    @get("/mine", guards=[requires(Role.RESIDENT)], summary="My household")
    async def mine(self, request: Request[Any, Any, Any]) -> HouseholdOut:
        household_id = await services.my_household_id(request.user)
        return household_out(await services.household_detail(request.user, household_id))

    @get("/{household_id:int}", guards=[logged_in], summary="One household")
    async def show(self, request: Request[Any, Any, Any], household_id: FromPath[int]) -> HouseholdOut:
        """Members with masked ID numbers, the level and its explanation, the history."""
        return household_out(await services.household_detail(request.user, household_id))

    @patch(
        "/{household_id:int}",
        guards=STAFF,
        summary="Change some of a household's fields",
        description="Only the fields sent change; a field left out keeps its value and null clears an "
        "optional one (latitude, longitude, yearly_income, steward_id). A required field sent as null, "
        "an unknown field or a value of the wrong type is answered 422 naming the field. A change of "
        "category or groups scores the household again; every change shows in its history.",
    )
    async def update(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], data: JSONBody[HouseholdPatch]
    ) -> HouseholdOut:
        await services.update_household(request.user, household_id, sent_fields(data))
        return household_out(await services.household_detail(request.user, household_id))

    @post("/{household_id:int}/members", guards=STAFF, summary="Add a member")
    async def add_member(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], data: JSONBody[MemberIn]
    ) -> HouseholdOut:
        await services.save_member(request.user, household_id, structs.asdict(data))
        return household_out(await services.household_detail(request.user, household_id))

    @patch(
        "/{household_id:int}/members/{member_id:int}",
        guards=STAFF,
        summary="Change some of a member's fields",
        description="Only the fields sent change; a field left out keeps its value (an id_number left out "
        "or empty keeps the stored number) and null clears an optional one (phone, disability_grade, "
        "health). A required field sent as null, an unknown field or a value of the wrong type is answered "
        "422 naming the field. The household is scored again: age, disability grade and phone use count.",
    )
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        household_id: FromPath[int],
        member_id: FromPath[int],
        data: JSONBody[MemberPatch],
    ) -> HouseholdOut:
        await services.save_member(
            request.user, household_id, sent_fields(data), member_id=member_id, partial=True
        )
        return household_out(await services.household_detail(request.user, household_id))

    @post("/{household_id:int}/members/{member_id:int}/remove", guards=STAFF, summary="Remove a member")
    async def remove_member(
        self,
        request: Request[Any, Any, Any],
        household_id: FromPath[int],
        member_id: FromPath[int],
        data: JSONBody[ReasonIn],
    ) -> HouseholdOut:
        await services.remove_member(request.user, household_id, member_id, reason=data.reason)
        return household_out(await services.household_detail(request.user, household_id))

    @post("/{household_id:int}/level-override", guards=STAFF, summary="Set the level by hand")
    async def override(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], data: JSONBody[OverrideIn]
    ) -> HouseholdOut:
        await services.override_level(
            request.user, household_id, level=data.level, reason=data.reason, until=data.until
        )
        return household_out(await services.household_detail(request.user, household_id))

    @delete(
        "/{household_id:int}/level-override", guards=STAFF, summary="End a level override", status_code=200
    )
    async def clear_override(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], reason: FromQuery[str]
    ) -> HouseholdOut:
        await services.clear_override(request.user, household_id, reason=reason)
        return household_out(await services.household_detail(request.user, household_id))

    @post(
        "/{household_id:int}/members/{member_id:int}/id-number", guards=STAFF, summary="Read a full ID number"
    )
    async def reveal(
        self,
        request: Request[Any, Any, Any],
        household_id: FromPath[int],
        member_id: FromPath[int],
        data: JSONBody[ReasonIn],
    ) -> IdNumberOut:
        """Only for a steward of the household's community, with a reason; the read is audited."""
        number = await services.reveal_id_number(request.user, household_id, member_id, reason=data.reason)
        return IdNumberOut(member_id=member_id, id_number=number)

    @post(
        "/{household_id:int}/members/{member_id:int}/health-notes",
        guards=STAFF,
        summary="Read a member's health notes",
    )
    async def read_health(
        self,
        request: Request[Any, Any, Any],
        household_id: FromPath[int],
        member_id: FromPath[int],
        data: JSONBody[HealthReadIn],
    ) -> HealthNotesOut:
        """Only for a steward of the household's community (the reason is optional); the read is audited."""
        health = await services.read_health_notes(request.user, household_id, member_id, reason=data.reason)
        return HealthNotesOut(member_id=member_id, health=health)

    @post(
        "/{household_id:int}/export", guards=[logged_in], summary="Export everything held about a household"
    )
    async def export(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], data: JSONBody[ReasonIn]
    ) -> dict[str, Any]:
        """For the household itself or a steward of its community (with a reason); audited."""
        return await services.export_household(request.user, household_id, reason=data.reason)

    @post("/{household_id:int}/erase", guards=STAFF, summary="Erase a household's personal data")
    async def erase(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], data: JSONBody[EraseIn]
    ) -> HouseholdOut:
        await services.erase_household(
            request.user, household_id, reason=data.reason, confirm_code=data.confirm_code
        )
        return household_out(await services.household_detail(request.user, household_id))

    @post("/{household_id:int}/proxies", guards=STAFF, summary="Link a family member's account")
    async def link_proxy(
        self, request: Request[Any, Any, Any], household_id: FromPath[int], data: JSONBody[ProxyIn]
    ) -> ProxyOut:
        user_id = await services.link_proxy(
            request.user, household_id, phone=data.phone, name=data.display_name
        )
        return ProxyOut(user_id=user_id)


class ImportApi(Controller):
    """Household imports: upload (dry run or real), then poll the job and read its rows."""

    path = "/api/v1/household-imports"
    tags = ["households"]
    guards = STAFF
    exception_handlers = UNREADABLE_IS_INVALID

    @post("", summary="Upload a CSV or XLSX file")
    async def upload(
        self, request: Request[Any, Any, Any], data: Upload, dry_run: FromQuery[bool] = True
    ) -> ImportJobOut:
        upload = data.get("file")
        content = await upload.read() if isinstance(upload, UploadFile) else b""
        name = upload.filename if isinstance(upload, UploadFile) else ""
        job_id = await importer.start(request.user, filename=name, content=content, dry_run=dry_run)
        return job_out(await importer.job_for(request.user, job_id))

    @get("/{job_id:int}", summary="An import's progress and counts")
    async def show(self, request: Request[Any, Any, Any], job_id: FromPath[int]) -> ImportJobOut:
        return job_out(await importer.job_for(request.user, job_id))

    @get("/{job_id:int}/rows", summary="An import's rows, with their errors")
    async def rows(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        errors_only: FromQuery[bool] = False,
    ) -> ImportRowPage:
        error_text = importer.error_text
        result = await importer.job_rows(
            request.user, job_id, only_errors=errors_only, page=page, per_page=per_page
        )
        return ImportRowPage(
            items=[
                ImportRowOut(
                    row=r["row_number"], household_code=r["household_code"], action=r["action"],
                    errors=[ImportCellError(column=c, message=t) for c, t in error_text(r["errors"])],
                )
                for r in result.items
            ],
            page=result.page, per_page=result.per_page, total=result.total, pages=result.pages,
        )  # fmt: skip

    @post("/{job_id:int}/apply", summary="Carry out a dry run that found no errors")
    async def apply(self, request: Request[Any, Any, Any], job_id: FromPath[int]) -> ImportJobOut:
        real = await importer.apply(request.user, job_id)
        return job_out(await importer.job_for(request.user, real))


# -- monitoring → warning → verification → handling -------------------------------------------------


def _queue_filters(
    status: str | None, severity: str | None, mine: bool, overdue: bool
) -> monitoring.QueueFilters:
    return monitoring.QueueFilters(status=status or "", severity=severity or "", mine=mine, overdue=overdue)


async def _warning_page(
    request: Request[Any, Any, Any],
    warning_id: int,
    template: str,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    detail = await monitoring.warning_detail(request.user, warning_id)
    context = {
        **detail,
        "labels": await monitoring.page_labels(),
        "errors": errors or {},
        "values": values or {},
        "today": clock.local_now().date().isoformat(),
        "levels": [1, 2, 3],
        "carried_out": handoffs.carried_out(),
    }
    return Template(template, context=context, status_code=status_code)


class WarningPages(Controller):
    """The steward's warning queue, a warning with its signals and household, the visit and the decision."""

    path = "/warnings"
    guards = [requires(Role.STEWARD, Role.ADMIN)]
    include_in_schema = False

    @get("")
    async def index(
        self,
        request: Request[Any, Any, Any],
        *,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        status: FromQuery[str | None] = None,
        severity: FromQuery[str | None] = None,
        mine: FromQuery[bool] = False,
        overdue: FromQuery[bool] = False,
    ) -> Template:
        filters = _queue_filters(status, severity, mine, overdue)
        warnings = await monitoring.queue(request.user, filters, page, PER_PAGE)
        context = {"warnings": warnings, "f": filters, "labels": monitoring.labels()}
        return Template("households/warnings.html", context=context)

    @get("/{warning_id:int}")
    async def show(self, request: Request[Any, Any, Any], warning_id: FromPath[int]) -> Template:
        return await _warning_page(request, warning_id, "households/warning.html")

    @get("/{warning_id:int}/visit")
    async def visit_form(self, request: Request[Any, Any, Any], warning_id: FromPath[int]) -> Template:
        return await _warning_page(request, warning_id, "households/warning_visit.html")

    @post("/{warning_id:int}/visit", status_code=200)
    async def visit(self, request: Request[Any, Any, Any], warning_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        data: dict[str, Any] = {key: form.get(key) for key in form}
        data["needs"] = form.getall("needs") if "needs" in form else []
        photos = [
            monitoring.Photo(await upload.read(), upload.filename or "")
            for upload in (form.getall("photos") if "photos" in form else [])
            if isinstance(upload, UploadFile)
        ]
        try:
            await monitoring.record_visit(request.user, warning_id, data, photos)
        except DomainError as exc:
            data.pop("photos", None)
            return await _warning_page(
                request,
                warning_id,
                "households/warning_visit.html",
                errors=errors_of(exc),
                values=data,
                status_code=exc.status,
            )
        return Redirect(f"/warnings/{warning_id}")

    @get("/{warning_id:int}/handle")
    async def handle_form(self, request: Request[Any, Any, Any], warning_id: FromPath[int]) -> Template:
        return await _warning_page(request, warning_id, "households/warning_handle.html")

    @post("/{warning_id:int}/handle", status_code=200)
    async def handle(self, request: Request[Any, Any, Any], warning_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        data: dict[str, Any] = {key: form.get(key) for key in form}
        data["categories"] = form.getall("categories") if "categories" in form else []
        try:
            await monitoring.handle(request.user, warning_id, data)
        except DomainError as exc:
            return await _warning_page(
                request,
                warning_id,
                "households/warning_handle.html",
                errors=errors_of(exc),
                values=data,
                status_code=exc.status,
            )
        return Redirect(f"/warnings/{warning_id}")

    @post("/{warning_id:int}/reassign", status_code=200)
    async def reassign(
        self, request: Request[Any, Any, Any], warning_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await monitoring.reassign(request.user, warning_id, user_id=data.get("user_id"))
        except DomainError as exc:
            return await _warning_page(
                request, warning_id, "households/warning.html", errors=errors_of(exc), status_code=exc.status
            )
        return Redirect(f"/warnings/{warning_id}")

    @get("/{warning_id:int}/photos/{photo_id:int}")
    async def photo(
        self, request: Request[Any, Any, Any], warning_id: FromPath[int], photo_id: FromPath[int]
    ) -> File:
        path, content_type = await monitoring.photo(request.user, warning_id, photo_id)
        return File(
            path,
            media_type=content_type,
            content_disposition_type="inline",
            headers={"cache-control": "private, no-store"},
        )


class SignalPages(Controller):
    """A steward reports a signal by hand; reviewers deal with signals that matched nobody."""

    path = "/signals"
    guards = [requires(Role.STEWARD, Role.ADMIN)]
    include_in_schema = False

    @get("/new")
    async def new(self, household: FromQuery[str | None] = None) -> Template:
        values = {"household_code": household or "", "occurred_on": clock.local_now().date().isoformat()}
        return Template("households/signal_form.html", context=_signal_form(values, {}))

    @post("/new", status_code=200)
    async def report(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        data = await form_data(request)
        try:
            signal_id, warning_id = await monitoring.report_signal(request.user, data)
        except DomainError as exc:
            data.pop("id_number", None)  # never echo an ID number back into a page
            return Template(
                "households/signal_form.html",
                context=_signal_form(data, errors_of(exc)),
                status_code=exc.status,
            )
        if warning_id is not None:
            return Redirect(f"/warnings/{warning_id}?reported={signal_id}")
        return Redirect(f"/signals/new?reported={signal_id}")

    @get("/review")
    async def review(
        self, request: Request[Any, Any, Any], page: Annotated[int, QueryParameter(ge=1)] = 1
    ) -> Template:
        signals = await monitoring.unmatched(request.user, page)
        return Template(
            "households/signals_review.html", context={"signals": signals, "labels": monitoring.labels()}
        )

    @post("/review/rematch", status_code=200)
    async def rematch(self, request: Request[Any, Any, Any]) -> Redirect:
        matched = await monitoring.rematch(request.user)
        return Redirect(f"/signals/review?matched={matched}")

    @get("/{signal_id:int}")
    async def show(self, request: Request[Any, Any, Any], signal_id: FromPath[int]) -> Template:
        return await self._review_page(request, signal_id, {}, {})

    async def _review_page(
        self,
        request: Request[Any, Any, Any],
        signal_id: int,
        errors: dict[str, str],
        values: dict[str, Any],
        status_code: int = 200,
    ) -> Template:
        signal = await monitoring.signal_for_review(request.user, signal_id)
        options = await services.form_options(request.user)
        context = {
            **options,
            "signal": signal,
            "labels": monitoring.labels(),
            "errors": errors,
            "values": values,
        }
        return Template("households/signal_review.html", context=context, status_code=status_code)

    @post("/{signal_id:int}/match", status_code=200)
    async def match(self, request: Request[Any, Any, Any], signal_id: FromPath[int]) -> Template | Redirect:
        data = await form_data(request)
        try:
            warning_id = await monitoring.match_signal(
                request.user, signal_id, household_code=data.get("household_code") or ""
            )
        except DomainError as exc:
            return await self._review_page(request, signal_id, errors_of(exc), data, exc.status)
        return Redirect(f"/warnings/{warning_id}" if warning_id else "/signals/review")

    @post("/{signal_id:int}/candidate", status_code=200)
    async def candidate(
        self, request: Request[Any, Any, Any], signal_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            household_id = await monitoring.create_candidate(request.user, signal_id, data)
        except DomainError as exc:
            return await self._review_page(request, signal_id, errors_of(exc), data, exc.status)
        return Redirect(f"/households/{household_id}")

    @post("/{signal_id:int}/dismiss", status_code=200)
    async def dismiss(self, request: Request[Any, Any, Any], signal_id: FromPath[int]) -> Template | Redirect:
        data = await form_data(request)
        try:
            await monitoring.dismiss_signal(request.user, signal_id, reason=data.get("reason") or "")
        except DomainError as exc:
            return await self._review_page(request, signal_id, errors_of(exc), data, exc.status)
        return Redirect("/signals/review")


def _signal_form(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {"values": values, "errors": errors, "kinds": KINDS, "labels": monitoring.labels()}


class MonitoringAdmin(Controller):
    """Administrators: the overview, the warning rules (with history), signal files, duty and supervisors."""

    path = "/admin"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("/warnings")
    async def overview(self, request: Request[Any, Any, Any]) -> Template:
        figures = await monitoring.overview(request.user)
        return Template(
            "households/admin_warnings.html", context={"o": figures, "labels": monitoring.labels()}
        )

    @get("/warning-rules")
    async def rules(self) -> Template:
        return Template("households/admin_warning_rules.html", context=await warning_rules_page())

    @post("/warning-rules", status_code=200)
    async def save_rules(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        form = await request.form()
        rules, window, note = warning_rules_from_form(form)
        try:
            await monitoring.save_rules(request.user, rules=rules, window_hours=window, note=note)
        except DomainError as exc:
            context = await warning_rules_page(rules=rules, window_hours=window, note=note)
            return Template(
                "households/admin_warning_rules.html",
                context={**context, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect("/admin/warning-rules?saved=1")

    @get("/signals/upload")
    async def upload_form(self) -> Template:
        return Template("households/admin_signal_upload.html", context={"report": None, "errors": {}})

    @post("/signals/upload", status_code=200)
    async def upload(self, request: Request[Any, Any, Any], data: Upload) -> Template:
        upload = data.get("file")
        content = await upload.read() if isinstance(upload, UploadFile) else b""
        try:
            report = await monitoring.upload_csv(request.user, content)
        except DomainError as exc:
            return Template(
                "households/admin_signal_upload.html",
                context={"report": None, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Template("households/admin_signal_upload.html", context={"report": report, "errors": {}})

    @get("/signals/template.csv")
    async def template(self) -> Response[bytes]:
        return Response(
            monitoring.csv_template(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="signals-template.csv"'},
        )

    @get("/duty")
    async def duty(self, request: Request[Any, Any, Any]) -> Template:
        context = await monitoring.duty_page(request.user)
        return Template("households/admin_duty.html", context={**context, "errors": {}})

    @post("/duty/streets/{street_id:int}", status_code=200)
    async def set_supervisor(
        self, request: Request[Any, Any, Any], street_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await monitoring.set_supervisor(request.user, street_id, data.get("supervisor"))
        except DomainError as exc:
            context = await monitoring.duty_page(request.user)
            return Template(
                "households/admin_duty.html",
                context={**context, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect(f"/admin/duty#street-{street_id}")

    @post("/duty/communities/{community_id:int}", status_code=200)
    async def set_duty(
        self, request: Request[Any, Any, Any], community_id: FromPath[int]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await monitoring.set_duty_steward(request.user, community_id, data.get("duty_steward"))
        except DomainError as exc:
            context = await monitoring.duty_page(request.user)
            return Template(
                "households/admin_duty.html",
                context={**context, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect(f"/admin/duty#community-{community_id}")


BLANK_WARNING_RULES = 2


def warning_rules_from_form(form: Any) -> tuple[list[dict[str, Any]], str, str]:
    """The rules editor's rows (``rules-<n>-<part>``) as rule dicts; empty new rows are skipped."""
    rules, _, note = services.rules_from_form(form)
    return rules, str(form.get("window_hours") or ""), note


async def warning_rules_page(
    *, rules: list[dict[str, Any]] | None = None, window_hours: Any = None, note: str = ""
) -> dict[str, Any]:
    current = await monitoring.current_rules()
    shown = rules if rules is not None else [dict(r) for r in current.rules]
    return {
        "rules": shown + [{"new": True, "enabled": True} for _ in range(BLANK_WARNING_RULES)],
        "window_hours": window_hours if window_hours is not None else current.window_hours,
        "note": note,
        "version": current.version,
        "history": await monitoring.rule_history(),
        "kinds": [("any", _("Any kind")), *[(code, _(k.label)) for code, k in KINDS.items()]],
        "measures": [(code, _(label)) for code, label in MEASURES.items()],
        "severities": [(code, _(label)) for code, label in SEVERITIES.items()],
        "errors": {},
    }


class SignalApi(Controller):
    """Signals from other departments' systems: an integration token with the ``signals:write`` scope."""

    path = "/api/v1/signals"
    tags = ["monitoring"]
    guards = [requires(scope="signals:write")]
    exception_handlers = UNREADABLE_IS_INVALID

    @post("", summary="Send signals (1 to 1,000 per request)", status_code=200)
    async def receive(self, request: Request[Any, Any, Any], data: JSONBody[SignalBatchIn]) -> SignalBatchOut:
        """Each signal is checked alone and answered in ``results`` in the order sent: ``accepted``,
        ``duplicate`` (this event id was stored before with the same content) or ``rejected`` with
        the fields at fault.  Whether a person is on the registry is never said."""
        items = [structs.asdict(item) for item in data.signals]
        results = await monitoring.ingest(
            items, source="api", sender=f"c{request.user.client_id}", principal=request.user
        )
        return SignalBatchOut(
            accepted=sum(r.status == "accepted" for r in results),
            duplicate=sum(r.status == "duplicate" for r in results),
            rejected=sum(r.status == "rejected" for r in results),
            results=[
                SignalResultOut(
                    index=r.index,
                    event_id=r.event_id,
                    status=r.status,
                    signal_id=r.signal_id,
                    errors=[FieldErrorOut(field=e.field, message=e.text()) for e in r.errors],
                )
                for r in results
            ],
        )


class WarningApi(Controller):
    """The warning queue of the caller's communities, as JSON."""

    path = "/api/v1/warnings"
    tags = ["monitoring"]
    guards = STAFF
    exception_handlers = UNREADABLE_IS_INVALID

    @get("", summary="List warnings")
    async def list_warnings(
        self,
        request: Request[Any, Any, Any],
        *,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = PER_PAGE,
        status: Annotated[
            str | None, QueryParameter(description="open, verified or closed; none: not closed")
        ] = None,
        severity: Annotated[str | None, QueryParameter(description="high, medium or low")] = None,
        mine: FromQuery[bool] = False,
        overdue: FromQuery[bool] = False,
    ) -> WarningPage:
        """The most pressing first: by deadline, then severity."""
        result = await monitoring.queue(
            request.user, _queue_filters(status, severity, mine, overdue), page, per_page
        )
        return WarningPage(
            items=[warning_summary(row) for row in result.items],
            page=result.page,
            per_page=result.per_page,
            total=result.total,
            pages=result.pages,
        )


ROUTES: list[Any] = [
    HouseholdPages,
    ImportPages,
    ActivationPages,
    MyHousehold,
    NeedLevelAdmin,
    HouseholdApi,
    ImportApi,
    WarningPages,
    SignalPages,
    MonitoringAdmin,
    SignalApi,
    WarningApi,
]
