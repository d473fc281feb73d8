"""What each role finds on its home page and in the menu."""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.auth import Principal, Role
from marketplace.i18n import N_


@dataclass(frozen=True)
class MenuItem:
    """A link on a role's home page: where it goes and what it is for (both translated)."""

    path: str
    label: str
    description: str


MENUS: dict[Role, list[MenuItem]] = {
    Role.RESIDENT: [],
    Role.PROVIDER_STAFF: [],
    Role.VOLUNTEER: [],
    Role.STEWARD: [],
    Role.ADMIN: [
        MenuItem(
            "/admin/api-clients",
            N_("Integration clients"),
            N_("Issue and revoke API tokens for other systems."),
        ),
        MenuItem(
            "/admin/jobs", N_("Background jobs"), N_("Work waiting in the queues and jobs that failed.")
        ),
        MenuItem("/admin/audit", N_("Audit log"), N_("Who did what, when and from where.")),
    ],
}


def menu_for(principal: Principal) -> list[MenuItem]:
    return MENUS.get(principal.role, []) if principal.role else []
