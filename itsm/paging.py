"""Keyset pages: the first rows of an ordered queryset and where the next page starts, without OFFSET or COUNT."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import QuerySet

Row = TypeVar("Row")


def keyset_page(ordered: QuerySet[Any], limit: int, position: Callable[[Any], Row]) -> tuple[list[Any], Row | None]:
    """The first `limit` rows of `ordered` (already filtered to start after the previous page) and the position of
    the last one when more follow, else None. Reads `limit + 1` rows to know; never counts."""
    rows = list(ordered[: limit + 1])
    page = rows[:limit]
    return page, (position(page[-1]) if len(rows) > limit else None)
