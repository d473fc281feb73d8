"""Routes of `reports`: report pages with charts, exports, the steward's dashboard, and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from marketplace.auth import Role, requires
from marketplace.errors import ValidationFailed
from marketplace.exports import attachment
from marketplace.i18n import N_
from reports import charts, dashboard, figures, services, sheets
from reports.figures import SCOPE_LABELS, Figures, Period, Scope

STAFF = [requires(Role.STEWARD, Role.ADMIN, scope="reports:read")]
PAGES = [requires(Role.STEWARD, Role.ADMIN)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

ScopeParam = Annotated[
    str,
    QueryParameter(
        name="scope", description="district:ID, street:ID, community:ID or provider:ID; default: the first"
    ),
]
PeriodParam = Annotated[
    str, QueryParameter(description="a month (2026-11) or a quarter (2026-Q4); default: now")
]


async def _chosen(
    request: Request[Any, Any, Any], scope: str, period: str
) -> tuple[Scope, Period, list[Any]]:
    choices = await services.scope_choices(request.user)
    if not scope:
        if not choices:
            raise ValidationFailed.field(
                "scope", N_("No community is linked to your account yet: ask an administrator to link one.")
            )
        scope = choices[0].value
    return Scope.parse(scope), Period.parse(period or figures.current_month()), choices


def _query(report: services.Report) -> str:
    return f"scope={report.scope}&period={report.period.code}"


class ReportPages(Controller):
    """Monthly monitoring and quarterly evaluation, as pages with charts and tables."""

    path = "/reports"
    guards = PAGES
    include_in_schema = False

    @get("")
    async def show(
        self,
        request: Request[Any, Any, Any],
        scope_: ScopeParam = "",
        period: PeriodParam = "",
    ) -> Template:
        chosen_scope, chosen_period, choices = await _chosen(request, scope_, period)
        report = await services.report(request.user, chosen_scope, chosen_period)
        tables = sheets.sheets(report.figures) if report.figures else []
        context = {
            "report": report, "tables": tables, "chart": charts.bar_chart, "cell": sheets.cell,
            "choices": choices, "scope_labels": SCOPE_LABELS, "periods": figures.recent_periods(),
            "query": _query(report),
        }  # fmt: skip
        return Template("reports/report.html", context=context)

    @get("/export.csv")
    async def csv(
        self, request: Request[Any, Any, Any], scope_: ScopeParam = "", period: PeriodParam = ""
    ) -> Response[bytes] | Redirect:
        report = await services.report(request.user, *(await _chosen(request, scope_, period))[:2])
        if report.figures is None:
            return Redirect(f"/reports?{_query(report)}")
        return _export(report.figures, "csv")

    @get("/export.xlsx")
    async def xlsx(
        self, request: Request[Any, Any, Any], scope_: ScopeParam = "", period: PeriodParam = ""
    ) -> Response[bytes] | Redirect:
        report = await services.report(request.user, *(await _chosen(request, scope_, period))[:2])
        if report.figures is None:
            return Redirect(f"/reports?{_query(report)}")
        return _export(report.figures, "xlsx")


def _filename(f: Figures) -> str:
    return f"report-{f.scope.replace(':', '-')}-{f.period}"


@get("/dashboard", guards=[requires(Role.STEWARD)], include_in_schema=False)
async def steward_dashboard(request: Request[Any, Any, Any]) -> Template:
    board = await dashboard.for_steward(request.user)
    return Template("reports/dashboard.html", context={"board": board})


# -- API -------------------------------------------------------------------------------------------


class ReportOut(msgspec.Struct):
    """A report: ``ready`` when its figures are built and current; else its build's progress."""

    scope: str
    period: str
    state: str
    progress: int
    ready: bool
    built_at: datetime | None
    figures: Figures | None


class ScopeOut(msgspec.Struct):
    value: str
    kind: str
    name: str


def _report_out(report: services.Report) -> ReportOut:
    return ReportOut(
        scope=str(report.scope),
        period=report.period.code,
        state=report.state,
        progress=report.progress,
        ready=report.ready,
        built_at=report.built_at,
        figures=report.figures,
    )


async def _api_export(request: Request[Any, Any, Any], scope: str, period: str, kind: str) -> Response[Any]:
    chosen_scope, chosen_period, _ = await _chosen(request, scope, period)
    report = await services.report(request.user, chosen_scope, chosen_period)
    if report.figures is None:
        return Response(_report_out(report), status_code=202, media_type="application/json")
    return _export(report.figures, kind)


def _export(f: Figures, kind: str) -> Response[bytes]:
    if kind == "csv":
        return attachment(sheets.to_csv(f), f"{_filename(f)}.csv")
    return attachment(sheets.to_xlsx(f), f"{_filename(f)}.xlsx", XLSX)


class ReportApi(Controller):
    """Reports as JSON; a report not built yet answers 202 and is built in the background."""

    path = "/api/v1/reports"
    guards = STAFF
    tags = ["reports"]

    @get(
        "",
        summary="A report for a scope and a period",
        description="200 with the figures when the report is built and current; 202 while it is "
        "built (poll again; `progress` is in percent). A stale report's last figures come with 202.",
    )
    async def show(
        self, request: Request[Any, Any, Any], scope_: ScopeParam = "", period: PeriodParam = ""
    ) -> Response[ReportOut]:
        chosen_scope, chosen_period, _ = await _chosen(request, scope_, period)
        report = await services.report(request.user, chosen_scope, chosen_period)
        return Response(_report_out(report), status_code=200 if report.ready else 202)

    @get(
        "/export.csv",
        summary="A report as CSV",
        description="Every table of the report one after another (title, header, rows). "
        "202 with the build's progress (JSON) while the report is built for the first time.",
        media_type="text/csv",
    )
    async def csv(
        self, request: Request[Any, Any, Any], scope_: ScopeParam = "", period: PeriodParam = ""
    ) -> Response[Any]:
        return await _api_export(request, scope_, period, "csv")

    @get(
        "/export.xlsx",
        summary="A report as an Excel workbook",
        description="One worksheet per table. 202 with the build's progress (JSON) while the report "
        "is built for the first time.",
        media_type=XLSX,
    )
    async def xlsx(
        self, request: Request[Any, Any, Any], scope_: ScopeParam = "", period: PeriodParam = ""
    ) -> Response[Any]:
        return await _api_export(request, scope_, period, "xlsx")

    @get("/scopes", summary="The scopes the caller may ask reports for")
    async def scopes(self, request: Request[Any, Any, Any]) -> list[ScopeOut]:
        return [ScopeOut(c.value, c.kind, c.name) for c in await services.scope_choices(request.user)]


ROUTES: list[Any] = [ReportPages, steward_dashboard, ReportApi]
