"""The catalog data every install has (the seed migration's categories and level policies).

The test fixtures put the migrations' rows back after each test's truncation, so they are
always there; this gives their ids.
"""

from __future__ import annotations


async def seed_catalog() -> dict[str, int]:
    """Category ids by code."""
    from marketplace.tables import Category

    rows = await Category.select(Category.id, Category.code)
    assert rows, "the seed migration's categories are missing"
    return {row["code"]: row["id"] for row in rows}
