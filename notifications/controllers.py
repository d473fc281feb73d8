"""Routes of `notifications`: the inbox, preferences, the admin pages and their API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from msgspec import Struct

from marketplace.auth import Principal, Role, logged_in, requires
from marketplace.errors import DomainError
from marketplace.pagination import Page, PageNumber
from notifications import services
from notifications.events import CHANNEL_LABELS, CHOOSABLE, EVENTS, Channel

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
PageNo = PageNumber


def _safe_link(link: str) -> str:
    """Inbox links are site paths; anything else goes back to the inbox."""
    return link if link.startswith("/") and not link.startswith("//") and "\\" not in link else "/inbox"


def channels_from_form(data: dict[str, str]) -> dict[str, list[str]]:
    """``ch.<event>.<channel>=on`` checkboxes → {event: [channels]}; every listed event is present."""
    chosen: dict[str, list[str]] = {name: [] for name in data.get("events", "").split()}
    for key, value in data.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "ch" and value:
            chosen.setdefault(parts[1], []).append(parts[2])
    return chosen


def _errors(exc: DomainError) -> dict[str, str]:
    return {e.field: e.text() for e in exc.errors}


# -- pages -----------------------------------------------------------------------------------------


class InboxController(Controller):
    path = "/inbox"
    guards = [logged_in]
    include_in_schema = False

    @get("/")
    async def inbox(
        self, request: Request[Any, Any, Any], page: PageNo = 1, unread: FromQuery[bool] = False
    ) -> Template:
        items = await services.inbox_page(request.user, page=page, unread=unread)
        return Template("notifications/inbox.html", context={"items": items, "unread_only": unread})

    @post("/{item_id:int}/open", status_code=303)
    async def open_item(self, request: Request[Any, Any, Any], item_id: FromPath[int]) -> Redirect:
        link = await services.mark_read(request.user, item_id)
        return Redirect(_safe_link(link) if link else "/inbox", status_code=303)

    @post("/{item_id:int}/read", status_code=303)
    async def read_item(self, request: Request[Any, Any, Any], item_id: FromPath[int]) -> Redirect:
        await services.mark_read(request.user, item_id)
        return Redirect("/inbox", status_code=303)

    @post("/read-all", status_code=303)
    async def read_all(self, request: Request[Any, Any, Any]) -> Redirect:
        await services.mark_all_read(request.user)
        return Redirect("/inbox", status_code=303)


class PreferencesController(Controller):
    path = "/notifications/preferences"
    guards = [logged_in]
    include_in_schema = False

    @get("/")
    async def form(self, request: Request[Any, Any, Any], saved: FromQuery[bool] = False) -> Template:
        prefs = await services.get_preferences(request.user)
        return Template("notifications/preferences.html", context=_prefs_context(prefs, saved=saved))

    @post("/", status_code=303)
    async def save(self, request: Request[Any, Any, Any], data: Form) -> Template | Redirect:
        quiet = data.get("quiet_enabled") == "on"
        try:
            await services.save_preferences(
                request.user,
                email=data.get("email", ""),
                quiet_start=data.get("quiet_start", "") if quiet else "",
                quiet_end=data.get("quiet_end", "") if quiet else "",
                channels_by_event=channels_from_form(data),
            )
        except DomainError as exc:
            prefs = await services.get_preferences(request.user)
            prefs.email, prefs.quiet_start, prefs.quiet_end = (
                data.get("email", ""),
                data.get("quiet_start", ""),
                data.get("quiet_end", ""),
            )
            context = _prefs_context(prefs, errors=_errors(exc), quiet=quiet)
            return Template("notifications/preferences.html", context=context, status_code=exc.status)
        return Redirect("/notifications/preferences?saved=true", status_code=303)


def _prefs_context(
    prefs: services.Preferences,
    *,
    saved: bool = False,
    errors: dict[str, str] | None = None,
    quiet: bool | None = None,
) -> dict[str, Any]:
    return {
        "prefs": prefs,
        "saved": saved,
        "errors": errors or {},
        "quiet_on": prefs.quiet_enabled if quiet is None else quiet,
        "channel_labels": CHANNEL_LABELS,
        "choosable": [c.value for c in CHOOSABLE],
    }


class AdminNotificationsController(Controller):
    path = "/admin/notifications"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("/deliveries")
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        *,
        page: PageNo = 1,
        status: FromQuery[str] = "",
        channel: FromQuery[str] = "",
        event: FromQuery[str] = "",
        user_id: FromQuery[int | None] = None,
    ) -> Template:
        filters = services.LogFilter(status=status, channel=channel, event=event, user_id=user_id)
        log = await services.delivery_log(request.user, filters, page=page)
        return Template("notifications/admin_deliveries.html", context=_log_context(log, filters))

    @post("/deliveries/{delivery_id:int}/retry", status_code=303)
    async def retry(self, request: Request[Any, Any, Any], delivery_id: FromPath[int]) -> Redirect:
        await services.retry_delivery(request.user, delivery_id)
        return Redirect("/admin/notifications/deliveries?status=queued", status_code=303)

    @get("/webhooks")
    async def webhooks(self, request: Request[Any, Any, Any]) -> Template:
        return Template("notifications/admin_webhooks.html", context=await _webhooks_context(request.user))

    @post("/webhooks", status_code=200)
    async def create_webhook(self, request: Request[Any, Any, Any], data: Form) -> Template:
        chosen = [
            key.removeprefix("event.") for key, value in data.items() if key.startswith("event.") and value
        ]
        try:
            created = await services.create_webhook(
                request.user,
                name=data.get("name", ""),
                url=data.get("url", ""),
                events=chosen,
                include_phone=data.get("include_phone") == "on",
            )
        except DomainError as exc:
            context = await _webhooks_context(request.user, errors=_errors(exc), form=data)
            return Template("notifications/admin_webhooks.html", context=context, status_code=exc.status)
        context = await _webhooks_context(request.user, created=created)
        return Template("notifications/admin_webhooks.html", context=context)

    @post("/webhooks/{webhook_id:int}/enable", status_code=303)
    async def enable(self, request: Request[Any, Any, Any], webhook_id: FromPath[int]) -> Redirect:
        await services.set_webhook_active(request.user, webhook_id, True)
        return Redirect("/admin/notifications/webhooks", status_code=303)

    @post("/webhooks/{webhook_id:int}/disable", status_code=303)
    async def disable(self, request: Request[Any, Any, Any], webhook_id: FromPath[int]) -> Redirect:
        await services.set_webhook_active(request.user, webhook_id, False)
        return Redirect("/admin/notifications/webhooks", status_code=303)

    @get("/webhooks/{webhook_id:int}/delete")
    async def confirm_delete(self, request: Request[Any, Any, Any], webhook_id: FromPath[int]) -> Template:
        hook = await services.get_webhook(request.user, webhook_id)
        return Template("notifications/admin_webhook_delete.html", context={"hook": hook})

    @post("/webhooks/{webhook_id:int}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], webhook_id: FromPath[int]) -> Redirect:
        await services.delete_webhook(request.user, webhook_id)
        return Redirect("/admin/notifications/webhooks", status_code=303)


def _log_context(log: Page, filters: services.LogFilter) -> dict[str, Any]:
    return {
        "log": log,
        "filters": filters,
        "statuses": services.STATUSES,
        "status_labels": services.STATUS_LABELS,
        "channels": [c.value for c in Channel],
        "channel_labels": CHANNEL_LABELS,
        "events": EVENTS,
    }


async def _webhooks_context(
    principal: Principal,
    *,
    created: services.NewWebhook | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "hooks": await services.list_webhooks(principal),
        "created": created,
        "errors": errors or {},
        "form": form or {},
        "events": EVENTS,
    }


@get("/notifications/sms-sandbox", include_in_schema=False)
async def sms_sandbox(
    request: Request[Any, Any, Any], page: PageNo = 1, phone: FromQuery[str] = ""
) -> Template:
    """Texts the sandbox gateway received (admins; everyone in embedded demos)."""
    messages = await services.sandbox_messages(request.scope.get("user"), phone=phone, page=page)
    return Template("notifications/sms_sandbox.html", context={"messages": messages, "phone": phone})


# -- API -------------------------------------------------------------------------------------------


class InboxItemOut(Struct):
    id: int
    event: str
    title: str
    body: str
    link: str
    urgent: bool
    created_at: datetime
    read_at: datetime | None


class InboxPageOut(Struct):
    items: list[InboxItemOut]
    page: int
    per_page: int
    total: int
    unread: int


class UnreadOut(Struct):
    unread: int


class MarkedOut(Struct):
    marked: int


class EventChoiceOut(Struct):
    event: str
    label: str
    channels: dict[str, bool]
    locked: list[str]


class PreferencesOut(Struct):
    email: str
    quiet_start: str
    quiet_end: str
    email_enabled: bool
    events: list[EventChoiceOut]


class PreferencesIn(Struct):
    email: str = ""
    quiet_start: str = ""
    quiet_end: str = ""
    channels: dict[str, list[str]] = {}


class DeliveryOut(Struct):
    id: int
    notification: int
    event: str
    channel: str
    user_id: int | None
    webhook_id: int | None
    status: str
    attempts: int
    next_at: datetime
    last_error: str
    address: str
    provider_ref: str
    created_at: datetime
    sent_at: datetime | None


class DeliveryPageOut(Struct):
    items: list[DeliveryOut]
    page: int
    per_page: int
    total: int


class EventOut(Struct):
    event: str
    label: str
    keys: dict[str, str]
    optional: dict[str, str]
    channels: list[str]
    default: list[str]
    required: list[str]
    urgent: bool


def _prefs_out(prefs: services.Preferences) -> PreferencesOut:
    return PreferencesOut(
        email=prefs.email,
        quiet_start=prefs.quiet_start,
        quiet_end=prefs.quiet_end,
        email_enabled=prefs.email_enabled,
        events=[
            EventChoiceOut(event=e.event, label=e.label, channels=e.channels, locked=sorted(e.locked))
            for e in prefs.events
        ],
    )


class NotificationsApi(Controller):
    path = "/api/v1"
    tags = ["notifications"]
    guards = [logged_in]

    @get("/inbox", summary="My inbox")
    async def inbox(
        self,
        request: Request[Any, Any, Any],
        page: PageNo = 1,
        per_page: PageNo = 30,
        unread: FromQuery[bool] = False,
    ) -> InboxPageOut:
        """The caller's messages, newest first; ``unread=true`` shows only unread ones."""
        result = await services.inbox_page(request.user, page=page, per_page=per_page, unread=unread)
        count = await services.unread_for(request.user)
        items = [InboxItemOut(**row) for row in result.items]
        return InboxPageOut(
            items=items, page=result.page, per_page=result.per_page, total=result.total, unread=count
        )

    @get("/inbox/unread-count", summary="How many unread messages I have")
    async def unread(self, request: Request[Any, Any, Any]) -> UnreadOut:
        return UnreadOut(unread=await services.unread_for(request.user))

    @post("/inbox/{item_id:int}/read", summary="Mark a message read", status_code=204)
    async def read(self, request: Request[Any, Any, Any], item_id: FromPath[int]) -> None:
        await services.mark_read(request.user, item_id)

    @post("/inbox/read-all", summary="Mark every message read", status_code=200)
    async def read_all(self, request: Request[Any, Any, Any]) -> MarkedOut:
        return MarkedOut(marked=await services.mark_all_read(request.user))

    @get("/notifications/preferences", summary="My notification settings")
    async def preferences(self, request: Request[Any, Any, Any]) -> PreferencesOut:
        return _prefs_out(await services.get_preferences(request.user))

    @put("/notifications/preferences", summary="Change my notification settings")
    async def save_preferences(
        self, request: Request[Any, Any, Any], data: JSONBody[PreferencesIn]
    ) -> PreferencesOut:
        """Empty quiet hours turn them off; channels per event replace the ones sent."""
        prefs = await services.save_preferences(
            request.user,
            email=data.email,
            quiet_start=data.quiet_start,
            quiet_end=data.quiet_end,
            channels_by_event=data.channels,
        )
        return _prefs_out(prefs)

    @get("/notifications/events", summary="The events and their context keys")
    async def events(self) -> list[EventOut]:
        """What other systems may receive by webhook, with the keys of each event's context."""
        return [
            EventOut(
                event=spec.event.value,
                label=spec.label,
                keys=spec.keys,
                optional=spec.optional,
                channels=sorted(c.value for c in spec.channels),
                default=sorted(c.value for c in spec.default),
                required=sorted(c.value for c in spec.required),
                urgent=spec.urgent,
            )
            for spec in EVENTS.values()
        ]

    @get(
        "/notifications/deliveries",
        summary="The delivery log",
        guards=[requires(Role.ADMIN)],
    )
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        *,
        page: PageNo = 1,
        per_page: PageNo = 50,
        status: FromQuery[str] = "",
        channel: FromQuery[str] = "",
        event: FromQuery[str] = "",
        user_id: FromQuery[int | None] = None,
    ) -> DeliveryPageOut:
        """Deliveries newest first, filtered by status, channel, event and recipient."""
        filters = services.LogFilter(status=status, channel=channel, event=event, user_id=user_id)
        result = await services.delivery_log(request.user, filters, page=page, per_page=per_page)
        items = [DeliveryOut(**{k: row[k] for k in DeliveryOut.__struct_fields__}) for row in result.items]
        return DeliveryPageOut(items=items, page=result.page, per_page=result.per_page, total=result.total)


ROUTES: list[Any] = [
    InboxController,
    PreferencesController,
    AdminNotificationsController,
    sms_sandbox,
    NotificationsApi,
]
