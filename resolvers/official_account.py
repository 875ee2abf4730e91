"""The official account's own data: operators' viewers read it, operators pull it and tag articles."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.auth.policy import require_kind, require_role
from app.auth.principal import PrincipalKind, Role
from app.context import RequestContext
from app.domain import UserRecord
from app.domain.official_account import ArticleRow, CommentRow, DayRow
from app.errors import InvalidInput
from app.ingest.service import Ingestor
from app.services import official_account as service
from app.wechat.datacube import OfficialAccountData
from resolvers.paging import page_size

T = TypeVar("T")
MAX_TAGS, MAX_TAG_LEN = 20, 40


@dataclass(frozen=True)
class OffsetPage(Generic[T]):
    nodes: list[T]
    has_next: bool
    end_cursor: str | None
    total: int


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _offset(after: str | None) -> int:
    if not after:
        return 0
    try:
        kind, _, n = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode().partition(":")
        if kind == "o" and int(n) >= 0:
            return int(n)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidInput(f"{after!r} is not a cursor from this API", field="after")


def _reader(ctx: RequestContext) -> None:
    require_kind(ctx.principal, PrincipalKind.OPERATOR)
    require_role(ctx.principal, Role.VIEWER)


def _operator(ctx: RequestContext) -> None:
    require_kind(ctx.principal, PrincipalKind.OPERATOR)
    require_role(ctx.principal, Role.OPERATOR)


async def stats(ctx: RequestContext, *, first: str, last: str) -> list[DayRow]:
    _reader(ctx)
    begin, end = service.parse_range(first, last)
    if (end - begin).days + 1 > service.MAX_PULL_DAYS:
        raise InvalidInput(f"at most {service.MAX_PULL_DAYS} days at once", field="to")
    return await service.days(ctx.db, begin, end)


async def articles(ctx: RequestContext, *, first: int | None, after: str | None) -> OffsetPage[ArticleRow]:
    _reader(ctx)
    size, offset = page_size(ctx, first, default=20), _offset(after)
    rows, total = await service.articles(ctx.db, offset=offset, limit=size + 1)
    return OffsetPage(rows[:size], len(rows) > size, _cursor(offset + min(size, len(rows))), total)


async def comments(
    ctx: RequestContext, article_id: str, *, first: int | None, after: str | None
) -> OffsetPage[CommentRow]:
    size, offset = page_size(ctx, first, default=20), _offset(after)
    rows, total = await service.comments(ctx.db, article_id, offset=offset, limit=size + 1)
    return OffsetPage(rows[:size], len(rows) > size, _cursor(offset + min(size, len(rows))), total)


async def commenter(ctx: RequestContext, openid: str) -> UserRecord | None:
    """The user holding the commenter's openid, when Troika knows them."""
    appid = ctx.settings.official_account_appid
    if not appid:
        return None
    return await ctx.loaders.user_by_openid(appid).load(openid)


async def pull(ctx: RequestContext, *, first: str, last: str) -> service.PullReport:
    _operator(ctx)
    begin, end = service.parse_range(first, last)
    service.check_served(begin, end)
    ingestor = Ingestor(ctx.db, ctx.dictionary, ctx.settings)
    return await service.pull(
        ctx.db, OfficialAccountData(ctx.integrations.wechat), begin, end, ingestor=ingestor
    )


async def tag_article(ctx: RequestContext, article_id: str, tags: list[str]) -> ArticleRow:
    _operator(ctx)
    clean = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
    if len(clean) > MAX_TAGS or any(len(t) > MAX_TAG_LEN for t in clean):
        raise InvalidInput(f"at most {MAX_TAGS} tags of {MAX_TAG_LEN} characters", field="tags")
    return await service.tag_article(ctx.db, article_id, clean)
