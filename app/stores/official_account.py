"""SQL for the official account's own data in its channel store: days, articles, comments; no rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.channel_models import OaArticle, OaArticleDay, OaComment, OaDay
from app.domain.official_account import ArticleRow, CommentRow, DayRow


async def replace_day(
    session: AsyncSession,
    *,
    day: dict[str, Any],
    articles: Sequence[dict[str, Any]],
    comments: dict[str, list[dict[str, Any]]],
) -> None:
    """One day whole (its figures, its articles' figures), replacing what was there; `comments`
    replaces the comments of the articles it names."""
    date = day["date"]
    await session.execute(delete(OaDay).where(OaDay.date == date))
    await session.execute(insert(OaDay).values(**day))
    await session.execute(delete(OaArticleDay).where(OaArticleDay.date == date))
    for article in articles:
        known = await session.get(OaArticle, article["id"])
        if known is None:
            session.add(
                OaArticle(
                    id=article["id"],
                    title=article["title"],
                    published_at=article["published_at"],
                    tags=[],
                    updated_at=day["pulled_at"],
                )
            )
        else:
            known.title = article["title"]
            known.published_at = article["published_at"] or known.published_at
            known.updated_at = day["pulled_at"]
        await session.flush()
        await session.execute(
            insert(OaArticleDay).values(
                article_id=article["id"],
                date=date,
                reads=article["reads"],
                shares=article["shares"],
                likes=article["likes"],
            )
        )
    if comments:
        await session.execute(delete(OaComment).where(OaComment.article_id.in_(list(comments))))
    rows = [row for found in comments.values() for row in found]
    if rows:
        await session.execute(insert(OaComment), rows)


async def days(session: AsyncSession, first: str, last: str) -> list[DayRow]:
    stmt = select(OaDay).where(OaDay.date >= first, OaDay.date <= last).order_by(OaDay.date)
    return [
        DayRow(
            d.date,
            d.new_followers,
            d.cancelled_followers,
            d.cumulative_followers,
            d.article_reads,
            d.article_shares,
            d.messages_received,
        )
        for d in (await session.execute(stmt)).scalars()
    ]


async def last_day(session: AsyncSession) -> str | None:
    return (await session.execute(select(func.max(OaDay.date)))).scalar_one_or_none()


def _totals() -> Any:
    return (
        select(
            OaArticleDay.article_id,
            func.sum(OaArticleDay.reads).label("reads"),
            func.sum(OaArticleDay.shares).label("shares"),
            func.sum(OaArticleDay.likes).label("likes"),
        )
        .group_by(OaArticleDay.article_id)
        .subquery()
    )


async def articles(
    session: AsyncSession, *, ids: Sequence[str] | None = None, offset: int = 0, limit: int = 20
) -> list[ArticleRow]:
    """Newest first (by publication, then id); with `ids`, those articles."""
    totals = _totals()
    stmt = select(
        OaArticle,
        func.coalesce(totals.c.reads, 0),
        func.coalesce(totals.c.shares, 0),
        func.coalesce(totals.c.likes, 0),
    ).outerjoin(totals, totals.c.article_id == OaArticle.id)
    if ids is not None:
        stmt = stmt.where(OaArticle.id.in_(list(ids)))
    stmt = stmt.order_by(OaArticle.published_at.desc().nulls_last(), OaArticle.id.desc())
    stmt = stmt.offset(offset).limit(limit)
    return [
        ArticleRow(a.id, a.title, a.published_at, list(a.tags), int(r), int(s), int(lk))
        for a, r, s, lk in (await session.execute(stmt)).all()
    ]


async def article_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(OaArticle))).scalar_one())


async def set_tags(session: AsyncSession, article_id: str, tags: list[str], at: datetime) -> bool:
    stmt = update(OaArticle).where(OaArticle.id == article_id).values(tags=tags, updated_at=at)
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def comments(session: AsyncSession, article_id: str, *, offset: int, limit: int) -> list[CommentRow]:
    """Newest first."""
    stmt = (
        select(OaComment)
        .where(OaComment.article_id == article_id)
        .order_by(OaComment.at.desc(), OaComment.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [
        CommentRow(c.id, c.article_id, c.identity_ref.split("|", 2)[2], c.text, c.at, c.likes)
        for c in (await session.execute(stmt)).scalars()
    ]


async def comment_count(session: AsyncSession, article_id: str) -> int:
    stmt = select(func.count()).select_from(OaComment).where(OaComment.article_id == article_id)
    return int((await session.execute(stmt)).scalar_one())


async def tags_of(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[str]]:
    """Article id -> its editorial tags, for the articles among `ids` that exist."""
    stmt = select(OaArticle.id, OaArticle.tags).where(OaArticle.id.in_(list(ids)))
    return {i: list(t) for i, t in (await session.execute(stmt)).all()}
