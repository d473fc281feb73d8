"""One way to page through lists, in pages and in the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar.params import QueryParameter

MAX_PAGE_SIZE = 200
# Far beyond any real list; a larger number would overflow the database's OFFSET.
MAX_PAGE = 1_000_000

PageNumber = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="Page number, from 1.")]
PerPage = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"Rows per page, at most {MAX_PAGE_SIZE}.")
]


@dataclass
class Page:
    """One page of rows, with what a pager needs to draw itself."""

    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    def as_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
        }


async def paginate(query: Any, count_query: Any, page: int, per_page: int) -> Page:
    """Run ``query`` for one page; ``count_query`` (a ``Table.count()``) gives the total."""
    page = max(1, min(page, MAX_PAGE))
    per_page = max(1, min(per_page, MAX_PAGE_SIZE))
    items = await query.limit(per_page).offset((page - 1) * per_page)
    total = await count_query
    return Page(items=items, page=page, per_page=per_page, total=total)
