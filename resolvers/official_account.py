"""The official account's own data: operators' viewers read it, operators pull it and tag articles."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.policy import require_kind, require_role
from app.auth.principal import PrincipalKind, Role
from app.context import RequestContext
from app.db.types import utcnow
from app.domain import Channel, UserRecord
from app.errors import InvalidInput, NotFound
from app.ingest.service import Ingestor
from app.services import official_account as service
from app.stores import official_account as store
from app.stores.official_account import ArticleRow, CommentRow, DayRow
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


def _sessions(ctx: RequestContext, *, write: bool = False) -> async_sessionmaker[AsyncSession]:
    engines = ctx.db.store_for(Channel.OFFICIAL_ACCOUNT).engines
    return engines.write_sessions if write else engines.read_sessions


async def stats(ctx: RequestContext, *, first: str, last: str) -> list[DayRow]:
    _reader(ctx)
    begin, end = service.parse_range(first, last)
    if (end - begin).days + 1 > service.MAX_PULL_DAYS:
        raise InvalidInput(f"at most {service.MAX_PULL_DAYS} days at once", field="to")
    async with _sessions(ctx)() as session:
        return await store.days(session, begin.isoformat(), end.isoformat())


async def articles(ctx: RequestContext, *, first: int | None, after: str | None) -> OffsetPage[ArticleRow]:
    _reader(ctx)
    size, offset = page_size(ctx, first, default=20), _offset(after)
    async with _sessions(ctx)() as session:
        rows = await store.articles(session, offset=offset, limit=size + 1)
        total = await store.article_count(session)
    return OffsetPage(rows[:size], len(rows) > size, _cursor(offset + min(size, len(rows))), total)


async def comments(
    ctx: RequestContext, article_id: str, *, first: int | None, after: str | None
) -> OffsetPage[CommentRow]:
    size, offset = page_size(ctx, first, default=20), _offset(after)
    async with _sessions(ctx)() as session:
        rows = await store.comments(session, article_id, offset=offset, limit=size + 1)
        total = await store.comment_count(session, article_id)
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
    async with _sessions(ctx, write=True)() as session, session.begin():
        if not await store.set_tags(session, article_id, clean, utcnow()):
            raise NotFound(f"no article {article_id}", field="id")
    async with _sessions(ctx)() as session:
        [row] = await store.articles(session, ids=[article_id], limit=1)
    return row
