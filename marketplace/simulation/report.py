"""The printed summary of a simulation: counts and shares, aligned, for a terminal."""

from __future__ import annotations

import math
from collections import Counter

from marketplace.simulation.district import DISTRICT_NAME
from marketplace.simulation.generate import Summary
from marketplace.simulation.replay import Outcome, median, percentile

OUTCOME_STATES = ("confirmed", "escalated", "cancelled", "failed")


def _shares(counts: Counter[str] | Counter[int], total: int) -> list[str]:
    return [
        f"    {key!s:<24} {n:>10,}  {100 * n / total:5.1f} %"
        for key, n in sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    ]


def format_summary(summary: Summary) -> str:
    total = max(1, summary.households)
    organizations = sum(n for kind, n in summary.providers.items() if kind != "individual_volunteer")
    lines = [
        f"Simulated district {DISTRICT_NAME}, seed {summary.seed}, "
        f"in {sum(summary.seconds.values()):.1f} s "
        + "("
        + ", ".join(f"{part} {seconds:.1f} s" for part, seconds in summary.seconds.items())
        + ")",
        f"  streets                  {summary.streets:>10,}",
        f"  communities              {summary.communities:>10,}",
        f"  stewards                 {summary.stewards + summary.supervisors:>10,}"
        f"  ({summary.stewards} of a community, {summary.supervisors} street supervisors)",
        f"  households               {summary.households:>10,}  ({summary.members:,} members)",
        "  by assistance category:",
        *_shares(summary.categories, total),
        "  by need level (computed by the rules in force):",
        *_shares(Counter({f"level {k}": v for k, v in summary.levels.items()}), total),
        "  in need groups (a household may be in several):",
        *_shares(summary.groups, total),
        "  by status:",
        *_shares(summary.statuses, total),
        f"  providers (verified)     {organizations:>10,}",
        *[
            f"    {kind:<24} {n:>10,}"
            for kind, n in sorted(summary.providers.items())
            if kind != "individual_volunteer"
        ],
        f"  volunteers               {summary.volunteers:>10,}  ({summary.volunteers_in_teams:,} in a team)",
        f"  offerings                {summary.offerings:>10,}",
        f"  service areas            {summary.service_areas:>10,}",
        f"  opening hours            {summary.opening_hours:>10,}",
    ]
    return "\n".join(lines)


def _minutes(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f} min" if value < 600 else f"{value / 60:,.1f} h"


def format_replay(outcome: Outcome) -> str:
    """The day replayed: what became of the orders, times by level, escalations, credits."""
    states = outcome.states
    booked = outcome.booked
    total = max(1, booked)
    refused = sum(outcome.tally.refused.values())
    lines = [
        f"Replayed {outcome.day:%Y-%m-%d}, seed {outcome.seed}, in {outcome.seconds:.1f} s "
        f"({outcome.granted:,} households granted the month's credits first)",
        f"  bookings tried           {booked + refused:>10,}",
        f"  not booked               {refused:>10,}"
        + (
            "  (" + ", ".join(f"{code} {n:,}" for code, n in outcome.tally.refused.most_common()) + ")"
            if refused
            else ""
        ),
        f"  orders booked            {booked:>10,}",
        f"    served and confirmed   {states['confirmed']:>10,}  {100 * states['confirmed'] / total:5.1f} %",
        f"    escalated to a steward {states['escalated']:>10,}  {100 * states['escalated'] / total:5.1f} %",
        f"    cancelled by household {states['cancelled']:>10,}  {100 * states['cancelled'] / total:5.1f} %",
        f"    not served (no-show)   {states['failed']:>10,}  {100 * states['failed'] / total:5.1f} %",
    ]
    others = {state: n for state, n in states.items() if state not in OUTCOME_STATES}
    if others:
        lines.append(
            "    still open             " + ", ".join(f"{s} {n:,}" for s, n in sorted(others.items()))
        )
    lines.append("  by level                   orders   accept p50   accept p90    serve p50    serve p90")
    for level in sorted(outcome.levels):
        accept = outcome.to_accept.get(level, [])
        serve = outcome.to_serve.get(level, [])
        lines.append(
            f"    level {level}             {outcome.levels[level]:>10,}"
            f" {_minutes(median(accept)):>12} {_minutes(percentile(accept, 0.9)):>12}"
            f" {_minutes(median(serve)):>12} {_minutes(percentile(serve, 0.9)):>12}"
        )
    lines.append("  escalations:")
    lines += [f"    {reason:<22} {n:>10,}" for reason, n in outcome.escalations.most_common()] or ["    none"]
    lines.append(
        "  offers                   "
        + f"{sum(outcome.offers.values()):>10,}  ("
        + ", ".join(f"{state} {n:,}" for state, n in outcome.offers.most_common())
        + ")"
    )
    lines.append(f"  credits spent            {outcome.credits_spent:>10,}")
    lines.append(
        "  credit accounts          "
        + ("     clean" if outcome.credit_differences == 0 else f"{outcome.credit_differences:>10,} DIFFER")
    )
    return "\n".join(lines)
