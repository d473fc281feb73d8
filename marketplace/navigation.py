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


# Every role reads its messages and chooses how it is notified.
NOTIFICATIONS = [
    MenuItem("/inbox", N_("Inbox"), N_("Messages about your orders and tasks.")),
    MenuItem(
        "/notifications/preferences",
        N_("Notification settings"),
        N_("Choose SMS or e-mail per message, and quiet hours."),
    ),
]

CATALOG = MenuItem(
    "/catalog",
    N_("Service catalog"),
    N_("Services, what they cost at each need level and who serves each community."),
)
MY_ORDERS = MenuItem(
    "/orders", N_("My orders"), N_("What you booked, where it stands, and confirming a visit.")
)
OFFERS = MenuItem(
    "/orders/offers", N_("Offers"), N_("Orders offered to you: accept or decline before they time out.")
)
OUR_ORDERS = MenuItem(
    "/orders", N_("Our orders"), N_("Orders you accepted: assign a worker, check in, complete.")
)
PORTAL = MenuItem(
    "/portal", N_("Provider portal"), N_("Your profile, services, opening hours, staff and figures.")
)
REPORTS = MenuItem(
    "/reports",
    N_("Reports"),
    N_("Monthly monitoring and quarterly evaluation, with charts and exports."),
)

MENUS: dict[Role, list[MenuItem]] = {
    Role.RESIDENT: [
        MY_ORDERS,
        MenuItem("/credits", N_("My credits"), N_("Your service credits: what is left, and every movement.")),
        MenuItem(
            "/my/household", N_("My household"), N_("Your level, what counts for it, and the data we keep.")
        ),
        CATALOG,
        *NOTIFICATIONS,
    ],
    Role.PROVIDER_STAFF: [OFFERS, OUR_ORDERS, PORTAL, CATALOG, *NOTIFICATIONS],
    Role.VOLUNTEER: [OFFERS, OUR_ORDERS, PORTAL, CATALOG, *NOTIFICATIONS],
    Role.STEWARD: [
        MenuItem(
            "/dashboard",
            N_("Today"),
            N_("Escalated orders, overdue warnings and households not reached."),
        ),
        MenuItem(
            "/orders/board",
            N_("Dispatch board"),
            N_("Orders no provider took: choose one. Orders still looking for a provider."),
        ),
        MenuItem("/orders", N_("Orders"), N_("The orders of your communities.")),
        MenuItem("/orders/new", N_("Book for a resident"), N_("Book a service on behalf of a household.")),
        MenuItem(
            "/households",
            N_("Households"),
            N_("The households of your communities: levels, members, history."),
        ),
        MenuItem(
            "/households/import", N_("Import households"), N_("Load the civil-affairs export (CSV or XLSX).")
        ),
        MenuItem(
            "/warnings", N_("Warnings"), N_("Households that may need help now: visit, verify, decide.")
        ),
        MenuItem("/signals/new", N_("Report a signal"), N_("Something happened to a household: record it.")),
        REPORTS,
        CATALOG,
        *NOTIFICATIONS,
    ],
    Role.ADMIN: [
        MenuItem(
            "/orders", N_("All orders"), N_("Every order, with filters by state, service, level and date.")
        ),
        MenuItem("/orders/board", N_("Dispatch board"), N_("Orders waiting for a steward's dispatch.")),
        MenuItem(
            "/admin/settlements",
            N_("Settlements"),
            N_("What each provider served each month, in credits; close a month."),
        ),
        MenuItem("/households", N_("Households"), N_("Every household on the registry.")),
        REPORTS,
        MenuItem(
            "/admin/need-levels", N_("Need-level rules"), N_("The points each fact adds, and the thresholds.")
        ),
        MenuItem("/admin/need-groups", N_("Need groups"), N_("The groups households are tagged with.")),
        MenuItem(
            "/admin/warnings",
            N_("Warnings overview"),
            N_("Open and overdue warnings, closed this month, time to verify."),
        ),
        MenuItem(
            "/admin/warning-rules",
            N_("Warning rules"),
            N_("Which signals become warnings, how severe, how fast."),
        ),
        MenuItem(
            "/admin/signals/upload",
            N_("Upload signals"),
            N_("Signals from other departments, as a CSV file."),
        ),
        MenuItem(
            "/admin/duty",
            N_("Duty stewards and supervisors"),
            N_("Who takes warnings of households without a steward, and escalations."),
        ),
        *NOTIFICATIONS,
        MenuItem(
            "/admin/notifications/deliveries",
            N_("Delivery log"),
            N_("Every SMS, e-mail and webhook: sent, waiting or failed, and why."),
        ),
        MenuItem(
            "/admin/notifications/webhooks",
            N_("Webhooks"),
            N_("Send events to other systems, signed."),
        ),
        MenuItem(
            "/notifications/sms-sandbox",
            N_("SMS sandbox"),
            N_("Texts kept here while no SMS gateway is set up."),
        ),
        MenuItem(
            "/admin/providers",
            N_("Providers"),
            N_("Check registrations, verify, refuse or suspend providers."),
        ),
        MenuItem(
            "/admin/policies",
            N_("Level policies"),
            N_("Monthly credits, costs and response targets of each need level, with history."),
        ),
        MenuItem(
            "/admin/catalog",
            N_("Service categories"),
            N_("The services on the shelves and their standard cost."),
        ),
        CATALOG,
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
