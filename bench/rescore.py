"""Rescoring: 50,000 households on PostgreSQL scored again after the administrator changes a rule.

    .venv/bin/python -m bench rescore        (BENCH_RESCORE_HOUSEHOLDS changes the count)

A fresh database is migrated, given the demo district and filled with generated households
through the import (the generator of ``bench.import_households``); then every rule gains a
point (so that every household with a fired rule is written, with a history row) and
``rescore_all`` runs as its actor does, without the queue around it; then it runs again with
nothing to change.  The measuring runs in a child process with the benchmark's own database.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

HOUSEHOLDS = int(os.environ.get("BENCH_RESCORE_HOUSEHOLDS", "50000"))
MEMBERS_PER_HOUSEHOLD = 2.2  # about what the generator makes


async def fill(households: int) -> None:
    """Households from the import's generator, written by the import itself (a real run)."""
    from bench.import_households import generate, to_csv
    from households import importer
    from households.tables import Community, ImportJob
    from marketplace import crypto

    codes = [row["code"] for row in await Community.select(Community.code)]
    rows = generate(int(households * MEMBERS_PER_HOUSEHOLD), codes)
    content = crypto.encrypt_bytes(to_csv(rows), importer.FILE_CONTEXT)
    job = ImportJob(filename="bench.csv", file_format="csv", content=content, dry_run=False)
    await ImportJob.insert(job)
    await importer.run(job.id)


async def change_rules(step: int) -> int:
    """Save a new version of the rules with every rule's points raised by ``step``."""
    from households import levels, services
    from households.tables import LevelRuleSet

    current = await services.current_rules()
    rules = [{**rule, "points": int(rule["points"]) + step} for rule in current.rules]
    version = current.version + 1
    if version == 1:
        rules = [{**rule, "points": int(rule["points"]) + step} for rule in levels.DEFAULT_RULES["rules"]]
    await LevelRuleSet.insert(
        LevelRuleSet(version=version, rules=rules, thresholds=dict(current.thresholds), note="bench")
    )
    return version


async def measure(households: int) -> None:
    from bench.common import figure
    from households import services, tasks
    from households.areas import seed_demo_areas
    from households.tables import Household, HouseholdEvent
    from marketplace import db

    await db.open_pool()
    await db.migrate()
    await seed_demo_areas()
    await fill(households)
    total = await Household.count()
    print(f"   {total:,} households")
    for label, step in (("every rule +1 point (all written)", 1), ("same rules again (nothing to write)", 0)):
        version = await change_rules(step)
        events_before = await HouseholdEvent.count()
        started = time.perf_counter()
        await services.rescore_all(version, batch=tasks.RESCORE_BATCH)
        elapsed = time.perf_counter() - started
        written = await HouseholdEvent.count() - events_before
        figure(f"{label}: seconds", elapsed, "s")
        figure(
            f"{label}: households per second", total / elapsed, f"households/s  ({written:,} history rows)"
        )
    await db.close_pool()


def main() -> None:
    from bench.common import measure_in_child

    measure_in_child("bench.rescore", str(HOUSEHOLDS))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        asyncio.run(measure(int(sys.argv[2])))
    else:
        main()
