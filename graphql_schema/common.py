"""Types shared by several domains."""

from __future__ import annotations

import strawberry

from app.errors import NotImplementedYet


@strawberry.type(description="Where a page ends and whether another follows.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True when another page follows.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to read the next page.")


def not_yet(what: str, issue: int) -> NotImplementedYet:
    """The clear error a field of a later capability raises until it lands."""
    return NotImplementedYet(f"{what} is not implemented yet (planned in issue {issue})", issue=issue)
