"""Who is asking: roles, the principal of a request, guards on routes and ownership checks.

A request is made by a logged-in user (session cookie), by an integration (bearer token),
or by nobody.  Routes say which roles may enter (:func:`requires`); services check that the
record asked for belongs to the caller (:meth:`Principal.ensure_linked`), answering 404 so
that nobody learns what exists beyond their reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from marketplace.errors import NotAuthenticated, NotFound, PermissionDenied
from marketplace.i18n import N_


class Role(StrEnum):
    RESIDENT = "resident"
    PROVIDER_STAFF = "provider_staff"
    VOLUNTEER = "volunteer"
    STEWARD = "steward"
    ADMIN = "admin"


ROLE_LABELS = {
    Role.RESIDENT: N_("Resident"),
    Role.PROVIDER_STAFF: N_("Provider staff"),
    Role.VOLUNTEER: N_("Volunteer"),
    Role.STEWARD: N_("Steward"),
    Role.ADMIN: N_("Administrator"),
}


class LinkKind(StrEnum):
    """What a user may act for; the packages that own those records fill the links in."""

    HOUSEHOLD = "household"
    MEMBER = "member"
    PROVIDER = "provider"
    COMMUNITY = "community"


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    user_id: int | None
    role: Role | None
    display_name: str = ""
    locale: str = ""
    links: dict[str, frozenset[str]] = field(default_factory=dict)
    client_id: int | None = None
    scopes: frozenset[str] = frozenset()
    session_key: str = ""

    @property
    def is_user(self) -> bool:
        return self.user_id is not None

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles

    def linked(self, kind: LinkKind) -> frozenset[str]:
        """The ids of the records of ``kind`` this caller acts for."""
        return self.links.get(kind.value, frozenset())

    def is_linked(self, kind: LinkKind, ref: object) -> bool:
        return str(ref) in self.linked(kind)

    def ensure_linked(self, kind: LinkKind, ref: object) -> None:
        """Raise NotFound unless the caller acts for this record (admins act for all)."""
        if self.role == Role.ADMIN and self.client_id is None:
            return
        if not self.is_linked(kind, ref):
            raise NotFound()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def requires(
    *roles: Role, scope: str | None = None
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A route guard: the caller must be logged in with one of ``roles``.

    An integration token passes when it carries ``scope`` (or acts as a user with the role).
    """
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal: Principal | None = connection.scope.get("user")
        if principal is None:
            raise NotAuthenticated()
        if scope is not None and principal.has_scope(scope):
            return
        if principal.role in allowed:
            return
        connection.scope.setdefault("state", {})["denied"] = True
        raise PermissionDenied()

    return guard


def logged_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A route guard: any logged-in user."""
    if connection.scope.get("user") is None:
        raise NotAuthenticated()


def links_from_rows(rows: Iterable[dict[str, Any]]) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = {}
    for row in rows:
        grouped.setdefault(row["kind"], set()).add(row["target"])
    return {kind: frozenset(refs) for kind, refs in grouped.items()}
