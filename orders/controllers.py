"""Routes of `orders`: each role's order pages, the live timeline (SSE), and the JSON API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage

from marketplace.auth import Role, logged_in, requires
from marketplace.i18n import gettext
from marketplace.pagination import PageNumber, PerPage
from orders import lifecycle, live, queries
from orders.lifecycle import State
from orders.schemas import OfferPage, OrderOut, OrderPage, offer_page, order_out, order_page

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
