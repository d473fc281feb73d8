"""Routes of `orders`: each role's order pages, the live timeline (SSE), and the JSON API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from msgspec import Struct

from marketplace import clock, exports, formtokens
from marketplace.auth import Role, logged_in, requires
from marketplace.errors import DomainError, NotAuthenticated, NotFound
from marketplace.i18n import N_, gettext
from marketplace.pagination import PageNumber, PerPage
from marketplace.settings import get_settings
from notifications import signing
from orders import booking, dispatch, fulfilment, idempotency, lifecycle, live, queries, replies, settlement
from orders.lifecycle import State
from orders.schemas import (
    ActionOut,
    AssignIn,
    BookIn,
    CodeIn,
    ConfirmIn,
    ConsentCodeIn,
    ConsentOut,
    CreditsOut,
    DispatchIn,
    NoteIn,
    OfferPage,
    OrderOut,
    OrderPage,
    ReasonIn,
    SettleIn,
    SettlementPage,
    SmsInboundIn,
    SmsInboundOut,
    credits_out,
    offer_page,
    order_out,
    order_page,
    settlement_page,
)
from providers import pages as provider_pages
from providers import services as provider_services

PER_PAGE = 20
PROVIDERS = [requires(Role.PROVIDER_STAFF, Role.VOLUNTEER)]
STEWARDS = [requires(Role.STEWARD, Role.ADMIN)]
# One live connection lasts this long at most; the browser's EventSource then reconnects.
LIVE_MAX_SECONDS = 300.0

# `state` is a name Litestar keeps for itself: the parameter is read under another name.
StateQ = Annotated[
    str | None,
    QueryParameter(
        name="state", description="A state (submitted, routing, …), `open` (not ended) or `waiting`"
    ),
]
CategoryQ = Annotated[str | None, QueryParameter(description="Service category code")]
LevelQ = Annotated[int | None, QueryParameter(ge=1, le=3, description="Need level")]
DateQ = Annotated[date | None, QueryParameter(description="Day of service (local time), inclusive")]
SortQ = Annotated[
    str | None, QueryParameter(description="submitted, window, level, updated, number; - for descending")
]


def _filters(  # noqa: PLR0917 - one argument per filter of the list
    state: str | None, category: str | None, level: int | None, date_from: date | None, date_to: date | None,
    community: int | None, q: str | None, sort: str | None,
) -> queries.OrderFilters:  # fmt: skip
    return queries.OrderFilters(
        state=state or None, category=category or None, level=level, date_from=date_from, date_to=date_to,
        community_id=community, q=q or None, sort=sort or "-submitted",
    )  # fmt: skip


# -- pages ---------------------------------------------------------------------------------------


class OrderPages(Controller):
    """Each role's order list and an order's page, with its live timeline."""

    path = "/orders"
    guards = [logged_in]
    include_in_schema = False

    @get("")
    async def index(
        self,
        request: Request[Any, Any, Any],
        *,
        page: PageNumber = 1,
        order_state: StateQ = None,
        category: FromQuery[str | None] = None,
        level: FromQuery[str | None] = None,
        date_from: FromQuery[str | None] = None,
        date_to: FromQuery[str | None] = None,
        community: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
    ) -> Template:
        # Forms send empty fields: read them leniently rather than answer 400.
        filters = _filters(
            order_state, category, _int(level), _day(date_from), _day(date_to), _int(community), q, sort
        )
        orders = await queries.list_orders(request.user, filters, page, PER_PAGE)
        options = await queries.filter_options(request.user)
        return Template("orders/list.html", context={"orders": orders, "f": filters, **options})

    @get("/{order_id:int}")
    async def show(self, request: Request[Any, Any, Any], order_id: FromPath[int]) -> Template:
        detail = await queries.order_detail(request.user, order_id)
        return Template("orders/detail.html", context={**detail, "errors": {}, "values": {}})

    @get("/{order_id:int}/live", summary="Live timeline (server-sent events)")
    async def live_feed(self, request: Request[Any, Any, Any], order_id: FromPath[int]) -> ServerSentEvent:
        order = await queries.visible_order(request.user, order_id)
        return ServerSentEvent(live_stream(order_id, order["state"], order["version"]))

    @get("/offers", guards=PROVIDERS)
    async def offers(
        self, request: Request[Any, Any, Any], *, page: PageNumber = 1, all_offers: FromQuery[bool] = False
    ) -> Template:
        offers = await queries.offers_inbox(
            request.user, open_only=not all_offers, page=page, per_page=PER_PAGE
        )
        return Template("orders/offers.html", context={"offers": offers, "all_offers": all_offers})

    @get("/board", guards=STEWARDS)
    async def board(self, request: Request[Any, Any, Any], *, page: PageNumber = 1) -> Template:
        escalated = await queries.list_orders(
            request.user, queries.OrderFilters(state=State.ESCALATED.value, sort="level"), page, PER_PAGE
        )
        waiting = await queries.list_orders(
            request.user, queries.OrderFilters(state=queries.WAITING, sort="level"), 1, PER_PAGE
        )
        return Template("orders/board.html", context={"escalated": escalated, "waiting": waiting})


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.strip().isdigit() else None


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw and raw.strip() else None
    except ValueError:
        return None


async def live_stream(order_id: int, state: str, version: int) -> AsyncIterator[ServerSentEventMessage]:
    """The order's state now, then each move as it is committed, until it ends or time is up."""
    yield _message(order_id, state, version, "state", retry=5000)
    if state in lifecycle.FINAL:
        return
    deadline = time.monotonic() + LIVE_MAX_SECONDS
    async with live.watch(order_id) as queue:
        # A move between the first read and the subscription would be missed: read once more.
        current = await queries.order_version(order_id)
        if current is not None and current[1] != version:
            state, version = current
            yield _message(order_id, state, version, "move")
            if state in lifecycle.FINAL:
                return
        while time.monotonic() < deadline:
            try:
                news = await asyncio.wait_for(queue.get(), live.KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if news["version"] <= version:
                continue
            state, version = news["state"], news["version"]
            yield _message(order_id, state, version, "move", kind=news.get("kind", ""))
            if state in lifecycle.FINAL:
                return


def _message(
    order_id: int, state: str, version: int, event: str, *, kind: str = "", retry: int | None = None
) -> ServerSentEventMessage:
    data = {
        "order": order_id,
        "state": state,
        "label": queries.state_label(state),
        "version": version,
        "kind": kind,
        "text": gettext("Order status: %(state)s", state=queries.state_label(state)),
    }
    return ServerSentEventMessage(
        data=json.dumps(data, ensure_ascii=False), event=event, id=version, retry=retry
    )


# -- JSON API ------------------------------------------------------------------------------------


class OrderApi(Controller):
    """Orders in the caller's reach: residents their household's, providers theirs, stewards their
    communities', administrators all."""

    path = "/api/v1/orders"
    tags = ["orders"]
    guards = [logged_in]

    @get("", summary="List orders")
    async def list_orders(
        self,
        request: Request[Any, Any, Any],
        *,
        page: PageNumber = 1,
        per_page: PerPage = PER_PAGE,
        order_state: StateQ = None,
        category: CategoryQ = None,
        level: LevelQ = None,
        date_from: DateQ = None,
        date_to: DateQ = None,
        community: FromQuery[int | None] = None,
        q: Annotated[str | None, QueryParameter(description="Part of an order number")] = None,
        sort: SortQ = None,
    ) -> OrderPage:
        """Paginated and filterable; a provider's rows never carry the household's details."""
        filters = _filters(order_state, category, level, date_from, date_to, community, q, sort)
        return order_page(await queries.list_orders(request.user, filters, page, per_page))

    @get("/{order_id:int}", summary="One order, with its progress, timeline and offers")
    async def show(self, request: Request[Any, Any, Any], order_id: FromPath[int]) -> OrderOut:
        """The household's address and phone reach a provider only while it serves the order."""
        return order_out(await queries.order_detail(request.user, order_id))

    @post("", summary="Book a service", status_code=201)
    async def book(
        self, request: Request[Any, Any, Any], data: JSONBody[BookIn], idempotency_key: IdempotencyKey = None
    ) -> Response[OrderOut]:
        """A resident books for their household; a steward for one of theirs, with the consent code
        (`consent_method=sms_code`, `consent_id`, `consent_code`) or an attestation."""

        async def handler() -> OrderOut:
            order = await booking.book(request.user, msgspec.structs.asdict(data))
            return order_out(await queries.order_detail(request.user, order["id"]))

        return await once(request, idempotency_key, OrderOut, handler, status_code=201)


class OfferApi(Controller):
    """A provider's offers."""

    path = "/api/v1/offers"
    tags = ["offers"]
    guards = PROVIDERS

    @get("", summary="My provider's offers")
    async def list_offers(
        self,
        request: Request[Any, Any, Any],
        *,
        page: PageNumber = 1,
        per_page: PerPage = PER_PAGE,
        all_offers: Annotated[bool, QueryParameter(description="Answered offers too")] = False,
    ) -> OfferPage:
        """Open offers first by expiry; the community only, never the household."""
        result = await queries.offers_inbox(
            request.user, open_only=not all_offers, page=page, per_page=per_page
        )
        return offer_page(result)


ROUTES: list[Any] = [OrderPages, OrderApi, OfferApi]


# -- writes: shared ------------------------------------------------------------------------------


def errors_of(exc: DomainError) -> dict[str, str]:
    """Field errors by field name; a message about no field goes to the form's head (``_form``)."""
    errors = {e.field: e.text() for e in exc.errors}
    if not errors:
        errors["_form"] = exc.text()
    return errors


async def form_data(request: Request[Any, Any, Any]) -> dict[str, Any]:
    form = await request.form()
    return {key: form.get(key) for key in form}


T = TypeVar("T", bound=Struct)

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Send the same key again to get the first answer instead of acting twice (kept a day).",
    ),
]


async def once(
    request: Request[Any, Any, Any],
    key: str | None,
    out: type[T],
    handler: Callable[[], Awaitable[T]],
    status_code: int = 200,
) -> Response[T]:
    """Carry out an API write once per Idempotency-Key: a repeat gets the first answer again."""
    if key is None:
        return Response(await handler(), status_code=status_code)

    async def run() -> tuple[int, str]:
        return status_code, msgspec.json.encode(await handler()).decode()

    replay = await idempotency.run(idempotency.caller_of(request.user), key, await request.body(), run)
    return Response(msgspec.json.decode(replay.body, type=out), status_code=replay.status_code)


def action_out(order: dict[str, Any]) -> ActionOut:
    return ActionOut(
        id=order["id"],
        number=order["number"],
        state=order["state"],
        state_label=queries.state_label(order["state"]),
        version=order["version"],
    )


def _version(raw: Any) -> int | None:
    return int(raw) if str(raw or "").isdigit() else None


# What each page action does with the form (the API has one route per action, below).
async def _do(p: Any, order_id: int, action: str, data: dict[str, Any]) -> None:
    version = _version(data.get("version"))
    if action == "cancel":
        await booking.cancel(p, order_id, reason=str(data.get("reason") or ""), version=version)
    elif action == "accept":
        await dispatch.accept(_offer_of(data), p)
    elif action == "decline":
        await dispatch.decline(_offer_of(data), p, reason=str(data.get("reason") or ""))
    elif action == "dispatch":
        await dispatch.dispatch_to(
            p, order_id, _int(str(data.get("offering") or "")) or 0,
            override=bool(data.get("override")), reason=str(data.get("reason") or ""),
        )  # fmt: skip
    else:
        await fulfilment_action(p, order_id, action, data)


def _offer_of(data: dict[str, Any]) -> int:
    offer = _int(str(data.get("offer") or ""))
    if offer is None:
        raise NotFound()
    return offer


FULFILMENT_ACTIONS = frozenset(
    {"assign", "start", "complete", "confirm", "code", "dispute", "settle", "fail"}
)


async def fulfilment_action(p: Any, order_id: int, action: str, data: dict[str, Any]) -> None:
    """The visit and after: worker, check-in and -out, confirmation, complaints, no-shows."""
    note = str(data.get("note") or "")
    if action == "assign":
        await fulfilment.assign_worker(p, order_id, _int(str(data.get("worker") or "")) or 0)
    elif action == "start":
        await fulfilment.check_in(p, order_id, note=note)
    elif action == "complete":
        await fulfilment.check_out(p, order_id, note=note)
    elif action == "confirm":
        await fulfilment.confirm(
            p, order_id, rating=data.get("rating"), comment=str(data.get("comment") or "")
        )
    elif action == "code":
        await fulfilment.confirm_with_code(order_id, str(data.get("code") or ""), principal=p)
    elif action == "dispute":
        await fulfilment.dispute(p, order_id, note=note)
    elif action == "settle":
        await fulfilment.settle_dispute(p, order_id, upheld=data.get("upheld") == "yes", note=note)
    else:
        await fulfilment.fail(p, order_id, note=note)


PAGE_ACTIONS = frozenset({"cancel", "accept", "decline", "dispatch", *FULFILMENT_ACTIONS})


async def _act(request: Request[Any, Any, Any], order_id: int, action: str) -> Template | Redirect:
    """Carry out a page action once per form token; errors come back next to the fields."""
    data = await form_data(request)
    try:
        if await formtokens.spend(data.get(formtokens.FIELD), request.user.user_id):
            await _do(request.user, order_id, action, data)
    except DomainError as exc:
        detail = await queries.order_detail(request.user, order_id)
        template = "orders/detail.html"
        if action == "dispatch":
            template = "orders/dispatch.html"
            detail["options"] = await queries.dispatch_choices(request.user, order_id)
        return Template(
            template,
            context={**detail, "values": data, "errors": errors_of(exc), "failed": action},
            status_code=exc.status,
        )
    return Redirect(f"/orders/{order_id}")


class OrderActionPages(Controller):
    """Booking and every action on an order, as forms: one-time tokens guard against double sending."""

    path = "/orders"
    guards = [logged_in]
    include_in_schema = False

    @get("/new", guards=[requires(Role.RESIDENT, Role.STEWARD, Role.ADMIN)])
    async def book_form(
        self,
        request: Request[Any, Any, Any],
        *,
        category: FromQuery[str | None] = None,
        household: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Template:
        values = {"category": category or "", "household_id": household or ""}
        context = await queries.booking_form(request.user, values, q)
        return Template("orders/book.html", context={**context, "values": values, "errors": {}})

    @post("/new", guards=[requires(Role.RESIDENT, Role.STEWARD, Role.ADMIN)], status_code=200)
    async def book(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        data = await form_data(request)
        try:
            if not await formtokens.spend(data.get(formtokens.FIELD), request.user.user_id):
                # Sent twice: the first sending booked; show the latest order instead of booking again.
                return Redirect("/orders")
            if data.get("send_code"):
                sent = await booking.request_consent(request.user, _int(str(data.get("household_id"))) or 0)
                data.update(consent_id=str(sent["consent_id"]), consent_method="sms_code")
                context = await queries.booking_form(request.user, data, None)
                return Template(
                    "orders/book.html", context={**context, "values": data, "errors": {}, "sent": sent}
                )
            order = await booking.book(request.user, data)
        except DomainError as exc:
            context = await queries.booking_form(request.user, data, None)
            return Template(
                "orders/book.html",
                context={**context, "values": data, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect(f"/orders/{order['id']}")

    @post("/{order_id:int}/{action:str}", status_code=200)
    async def act(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], action: FromPath[str]
    ) -> Template | Redirect:
        if action not in PAGE_ACTIONS:
            raise NotFound()
        return await _act(request, order_id, action)

    @post("/{order_id:int}/dispatch", guards=STEWARDS, status_code=200)
    async def dispatch_order(
        self, request: Request[Any, Any, Any], order_id: FromPath[int]
    ) -> Template | Redirect:
        return await _act(request, order_id, "dispatch")

    @get("/{order_id:int}/dispatch", guards=STEWARDS)
    async def dispatch_form(self, request: Request[Any, Any, Any], order_id: FromPath[int]) -> Template:
        detail = await queries.order_detail(request.user, order_id)
        detail["options"] = await queries.dispatch_choices(request.user, order_id)
        return Template("orders/dispatch.html", context={**detail, "values": {}, "errors": {}})


class CreditPages(Controller):
    path = "/credits"
    guards = [requires(Role.RESIDENT, Role.STEWARD, Role.ADMIN)]
    include_in_schema = False

    @get("")
    async def show(
        self, request: Request[Any, Any, Any], *, household: FromQuery[str | None] = None
    ) -> Template:
        context = await queries.credits_page(request.user, _int(household))
        return Template("orders/credits.html", context=context)


@get("/portal/{provider_id:int}/settlements", include_in_schema=False, guards=[logged_in])
async def provider_settlements(
    request: Request[Any, Any, Any], provider_id: FromPath[int], page: PageNumber = 1
) -> Template:
    """A provider's settlements, month by month, in its portal (its staff and volunteers)."""
    provider = await provider_services.managed_provider(request.user, provider_id)
    rows = await queries.settlements(None, page, provider_id=provider_id)
    context = {"provider": provider, "tab": "settlements", "settlements": rows, **provider_pages.labels()}
    return Template("orders/portal_settlements.html", context=context)


class SettlementPages(Controller):
    path = "/admin/settlements"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("")
    async def index(self, *, month: FromQuery[str | None] = None, page: PageNumber = 1) -> Template:
        rows = await queries.settlements(month or None, page)
        return Template(
            "orders/settlements.html", context={"settlements": rows, "month": month or "", "errors": {}}
        )

    @post("/close", status_code=200)
    async def close(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        data = await form_data(request)
        month = str(data.get("month") or "")
        try:
            if await formtokens.spend(data.get(formtokens.FIELD), request.user.user_id):
                await settlement.close_month(request.user, month)
        except DomainError as exc:
            rows = await queries.settlements(None, 1)
            return Template(
                "orders/settlements.html",
                context={"settlements": rows, "month": "", "close_month": month, "errors": errors_of(exc)},
                status_code=exc.status,
            )
        return Redirect(f"/admin/settlements?month={month}")


# -- writes: API ---------------------------------------------------------------------------------


class OrderWriteApi(Controller):
    """Booking and actions on orders; each POST honours an Idempotency-Key."""

    path = "/api/v1/orders"
    tags = ["orders"]
    guards = [logged_in]

    @post("/consent-codes", summary="Text a household a consent code (stewards)", status_code=201)
    async def consent_code(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ConsentCodeIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ConsentOut]:
        async def handler() -> ConsentOut:
            sent = await booking.request_consent(request.user, data.household_id)
            return ConsentOut(consent_id=sent["consent_id"], phone=sent["phone"], minutes=sent["minutes"])

        return await once(request, idempotency_key, ConsentOut, handler, status_code=201)

    @post("/{order_id:int}/cancel", summary="Cancel an order before its service starts")
    async def cancel(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[ReasonIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await booking.cancel(request.user, order_id, reason=data.reason))

        return await once(request, idempotency_key, ActionOut, handler)

    @post(
        "/{order_id:int}/dispatch",
        summary="Give an escalated order to a provider (stewards)",
        guards=STEWARDS,
    )
    async def dispatch_to(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[DispatchIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            order = await dispatch.dispatch_to(
                request.user, order_id, data.offering_id, override=data.capacity_override, reason=data.reason
            )
            return action_out(order)

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/assign", summary="Assign a worker (the provider serving it)")
    async def assign(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[AssignIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await fulfilment.assign_worker(request.user, order_id, data.worker_id))

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/check-in", summary="Check in at the home: the service starts")
    async def check_in(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[NoteIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await fulfilment.check_in(request.user, order_id, note=data.note))

        return await once(request, idempotency_key, ActionOut, handler)

    @post(
        "/{order_id:int}/check-out", summary="Check out: the service is done; the resident is texted a code"
    )
    async def check_out(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[NoteIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await fulfilment.check_out(request.user, order_id, note=data.note))

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/confirm", summary="Confirm and rate a served order (resident or steward)")
    async def confirm(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[ConfirmIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            order = await fulfilment.confirm(request.user, order_id, rating=data.rating, comment=data.comment)
            return action_out(order)

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/confirm-code", summary="Confirm with the code the resident was texted (provider)")
    async def confirm_code(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[CodeIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await fulfilment.confirm_with_code(order_id, data.code, principal=request.user))

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/dispute", summary="Complain about a served order (resident)")
    async def dispute(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[NoteIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await fulfilment.dispute(request.user, order_id, note=data.note))

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/settle-dispute", summary="Settle a complaint (stewards)", guards=STEWARDS)
    async def settle(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[SettleIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            order = await fulfilment.settle_dispute(
                request.user, order_id, upheld=data.upheld, note=data.note
            )
            return action_out(order)

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{order_id:int}/fail", summary="Record that the order could not be served (no-show)")
    async def fail(
        self, request: Request[Any, Any, Any], order_id: FromPath[int], data: JSONBody[NoteIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ActionOut]:  # fmt: skip
        async def handler() -> ActionOut:
            return action_out(await fulfilment.fail(request.user, order_id, note=data.note))

        return await once(request, idempotency_key, ActionOut, handler)


class OfferWriteApi(Controller):
    path = "/api/v1/offers"
    tags = ["offers"]
    guards = PROVIDERS

    @post("/{offer_id:int}/accept", summary="Accept an offer (409 when another provider was first)")
    async def accept(
        self, request: Request[Any, Any, Any], offer_id: FromPath[int], idempotency_key: IdempotencyKey = None
    ) -> Response[ActionOut]:
        async def handler() -> ActionOut:
            return action_out(await dispatch.accept(offer_id, request.user))

        return await once(request, idempotency_key, ActionOut, handler)

    @post("/{offer_id:int}/decline", summary="Decline an offer", status_code=204)
    async def decline(
        self, request: Request[Any, Any, Any], offer_id: FromPath[int], data: JSONBody[ReasonIn]
    ) -> None:
        """Declining twice is harmless, so no Idempotency-Key is needed."""
        await dispatch.decline(offer_id, request.user, reason=data.reason)


class CreditApi(Controller):
    path = "/api/v1/credits"
    tags = ["credits"]
    guards = [requires(Role.RESIDENT, Role.STEWARD, Role.ADMIN)]

    @get("", summary="A household's credits: balance and ledger")
    async def show(
        self,
        request: Request[Any, Any, Any],
        household: Annotated[
            int | None, QueryParameter(description="Stewards and admins: the household")
        ] = None,
    ) -> CreditsOut:
        """Residents get their own household's; the newest 200 entries."""
        context = await queries.credits_page(request.user, household)
        return credits_out(context)


class SettlementApi(Controller):
    path = "/api/v1/settlements"
    tags = ["settlements"]
    guards = [requires(Role.ADMIN)]

    @get("", summary="Settlements per provider and month")
    async def list_settlements(
        self,
        *,
        month: Annotated[str | None, QueryParameter(description="YYYY-MM", pattern=r"^\d{4}-\d{2}$")] = None,
        page: PageNumber = 1,
        per_page: PerPage = 50,
    ) -> SettlementPage:
        return settlement_page(await queries.settlements(month, page, per_page))

    @post("/{month:str}/close", summary="Close a month: its settlements are frozen with one line per order")
    async def close_month(
        self, request: Request[Any, Any, Any], month: FromPath[str], idempotency_key: IdempotencyKey = None
    ) -> Response[SettlementPage]:
        async def handler() -> SettlementPage:
            await settlement.close_month(request.user, month)
            return settlement_page(await queries.settlements(settlement.parse_month(month), 1, 200))

        return await once(request, idempotency_key, SettlementPage, handler)


async def signed_by_sms_gateway(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A route guard: the body is signed with CLOUDMARKET_SMS_GATEWAY_SECRET (Standard Webhooks)."""
    secret = get_settings().sms_gateway_secret
    if not secret:
        # 404, not 503: nothing is wrong with the service, this address is simply not in use.
        raise NotFound(
            N_("Replies by SMS are off: set CLOUDMARKET_SMS_GATEWAY_SECRET to the gateway's signing secret.")
        )
    body = await Request(connection.scope, connection.receive).body()
    headers = {key.lower(): value for key, value in connection.headers.items()}
    if not signing.verify(secret, headers, body, clock.now()):
        raise NotAuthenticated(
            N_("The SMS gateway's signature is missing, wrong or too old: check the shared secret and clock.")
        )


SMS_INBOUND = (
    "Signed like our requests to the gateway: Standard Webhooks headers `webhook-id`, "
    "`webhook-timestamp` and `webhook-signature` (HMAC-SHA256 with CLOUDMARKET_SMS_GATEWAY_SECRET). "
    "401 when the signature is wrong, missing or older than 5 minutes; 404 when no secret is set. "
    "Anything else answers 200 with an `outcome` (confirmed, not_understood, unknown_sender, no_order, "
    "wrong_code, rate_limited); only `confirmed` changes an order. The text is the 6-digit code, "
    "optionally followed by a rating 1–5 (`确认 123456 5`); words around them are ignored. The same "
    "message `id` (else `webhook-id`) answers the same however often it comes."
)


class SmsInboundApi(Controller):
    path = "/api/v1/sms"
    tags = ["sms"]

    @post(
        "/inbound",
        summary="A text from a resident, forwarded by the SMS gateway: confirms an order by its code",
        guards=[signed_by_sms_gateway],
        opt={"exclude_from_csrf": True},
        status_code=200,
        description=SMS_INBOUND,
        security=[{"smsGateway": []}],
    )
    async def inbound(self, request: Request[Any, Any, Any], data: JSONBody[SmsInboundIn]) -> SmsInboundOut:
        message_id = data.id or request.headers.get("webhook-id", "")
        answer = await replies.receive(message_id, data.sender, data.text, await request.body())
        return SmsInboundOut(**answer)


@get(
    "/api/v1/settlements/export.csv",
    summary="One provider's settlement of a month as CSV (its staff, administrators)",
    tags=["settlements"],
    guards=[requires(Role.PROVIDER_STAFF, Role.VOLUNTEER, Role.ADMIN)],
    response_description="UTF-8 CSV with a BOM: a header row, one line per confirmed order, a total line",
    media_type=exports.CSV,
)
async def settlement_csv(
    request: Request[Any, Any, Any],
    month: Annotated[str, QueryParameter(description="YYYY-MM", pattern=r"^\d{4}-\d{2}$")],
    provider: Annotated[int, QueryParameter(description="The provider's id", ge=1, le=2**31 - 1)],
) -> Response[bytes]:
    """The frozen lines once the month is closed; until then the orders confirmed so far."""
    filename, content = await settlement.statement_csv(request.user, month, provider)
    return exports.attachment(content, filename)


ROUTES.extend(
    [
        OrderActionPages,
        CreditPages,
        SettlementPages,
        provider_settlements,
        OrderWriteApi,
        OfferWriteApi,
        CreditApi,
        SettlementApi,
        settlement_csv,
        SmsInboundApi,
    ]
)
