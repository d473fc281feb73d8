"""The catalog data every install has: the seed migration's categories and level policies.

Tests truncate every table after each test, the seeded rows included; this puts them back by
running the same seed function the migration runs.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

MIGRATIONS = Path(__file__).resolve().parent.parent / "marketplace" / "piccolo_migrations"


@cache
def _seed_migration() -> ModuleType:
    for path in sorted(MIGRATIONS.glob("marketplace_*.py")):
        if "seed categories" in path.read_text(encoding="utf-8"):
            spec = importlib.util.spec_from_file_location(f"seed_{path.stem}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise AssertionError("no seed migration of the catalog was found")


async def seed_catalog() -> dict[str, int]:
    """Seed the categories and policies; returns category ids by code."""
    from marketplace.tables import Category

    await _seed_migration().seed()
    return {row["code"]: row["id"] for row in await Category.select(Category.id, Category.code)}
