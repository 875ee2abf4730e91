"""Page sizes: every paged field takes `first` within one cap (TROIKA_GRAPHQL_MAX_PAGE_SIZE)."""

from __future__ import annotations

from app.context import RequestContext
from app.errors import InvalidInput


def page_size_error(cap: int) -> InvalidInput:
    """The one error for a `first` out of range, whether the request or a resolver finds it."""
    return InvalidInput(f"`first` must be between 0 and {cap}", field="first")


def page_size(ctx: RequestContext, first: int | None, *, default: int) -> int:
    """`first`, or the field's default when it is null, refused beyond the cap."""
    value = default if first is None else first
    cap = ctx.settings.graphql_max_page_size
    if not 0 <= value <= cap:
        raise page_size_error(cap)
    return value
