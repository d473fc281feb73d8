"""The printed summary of a simulation: counts and shares, aligned, for a terminal."""

from __future__ import annotations

from collections import Counter

from marketplace.simulation.district import DISTRICT_NAME
from marketplace.simulation.generate import Summary


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
