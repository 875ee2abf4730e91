"""The official account's own data: which days WeChat serves, pulling them, and reading them back.

A day is stored whole or not at all (its figures, its articles' figures and their comments in one
transaction), so a day that failed is simply missing and the next pull fetches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from app import pii
from app.db.engine import Database
from app.db.types import utcnow
from app.domain import Channel, IdentityKey, IdentityKind
from app.domain.official_account import ArticleRow, CommentRow, DayRow
from app.errors import InvalidInput, NotFound
from app.ingest.service import Ingestor
from app.logscrub import scrub
from app.stores import identity as identity_store
from app.stores import official_account as store
from app.wechat.datacube import BEIJING, ArticleFigures, Comment, DayFigures, OfficialAccountData, chunks

FIRST_DAY = date(2014, 12, 1)  # WeChat's data APIs hold nothing earlier
READY_AT = time(8, 0)  # Beijing time: yesterday's figures are there after about 08:00
MAX_PULL_DAYS = 366
ACTOR = "wechat:datacube"


@dataclass(frozen=True)
class PullReport:
    first: date
    last: date
    days: int
    articles: int
    comments: int
    finished_at: datetime


def latest_served(now: datetime | None = None) -> date:
    """The newest day WeChat serves: yesterday in Beijing once it is past 08:00 there, else the day before."""
    here = (now or utcnow()).astimezone(BEIJING)
    return here.date() - timedelta(days=1 if here.time() >= READY_AT else 2)


def parse_range(first: str, last: str) -> tuple[date, date]:
    """Two YYYY-MM-DD dates WeChat can serve, or BAD_USER_INPUT saying what is wrong."""
    parsed = []
    for name, text in (("from", first), ("to", last)):
        try:
            parsed.append(date.fromisoformat(text))
        except ValueError:
            raise InvalidInput(f"`{name}` must be a date as YYYY-MM-DD, not {text!r}", field=name) from None
    begin, end = parsed
    if begin > end:
        raise InvalidInput("`from` is after `to`", field="from")
    return begin, end


def check_served(begin: date, end: date, *, now: datetime | None = None) -> None:
    """WeChat serves from 2014-12-01 up to yesterday (Beijing time, after 08:00)."""
    newest = latest_served(now)
    if begin < FIRST_DAY:
        raise InvalidInput(f"WeChat's data starts on {FIRST_DAY.isoformat()}", field="from")
    if end > newest:
        raise InvalidInput(
            f"WeChat serves figures up to {newest.isoformat()} now (yesterday, Beijing time, after 08:00)",
            field="to",
        )
    if (end - begin).days + 1 > MAX_PULL_DAYS:
        raise InvalidInput(f"at most {MAX_PULL_DAYS} days a pull; split the range", field="to")


async def pull(
    db: Database,
    data: OfficialAccountData,
    begin: date,
    end: date,
    *,
    ingestor: Ingestor,
    progress: Callable[[int, int], None] | None = None,
) -> PullReport:
    """Pull and store [begin, end] day by day; a failure stops there, days before it are kept.
    Known followers' comments become behaviour events (their portrait), once each."""
    sessions = db.store_for(Channel.OFFICIAL_ACCOUNT).engines.write_sessions
    appid = data.api.client_appid(Channel.OFFICIAL_ACCOUNT)
    total = (end - begin).days + 1
    done, articles, comments = 0, set[str](), set[str]()
    for first, last in chunks(begin, end, 7):
        figures = await data.user_days(first, last)
        day = first
        while day <= last:
            pulled = await data.article_day(day)
            # Comments belong to the article, not the day: fetched once a pull, at its first day.
            said = {a.id: await data.comments(a.id) for a in pulled if a.id not in articles}
            async with sessions() as session, session.begin():
                await store.replace_day(
                    session,
                    day=_day_row(day, figures.get(day.isoformat()), pulled),
                    articles=[_article_row(a) for a in pulled],
                    comments={
                        article: [_comment_row(appid, article, c) for c in found]
                        for article, found in said.items()
                    },
                )
            await record_comments(db, ingestor, said)
            done += 1
            articles.update(a.id for a in pulled)
            comments.update(f"{a}:{c.user_comment_id}" for a, found in said.items() for c in found)
            if progress is not None:
                progress(done, total)
            day += timedelta(days=1)
    return PullReport(begin, end, done, len(articles), len(comments), utcnow())


async def record_comments(db: Database, ingestor: Ingestor, said: dict[str, list[Comment]]) -> int:
    """An `article_comment` event (OFFICIAL_ACCOUNT) per comment of a follower the identity graph
    holds; the comment's id is the record's id, so a comment pulled again is a duplicate."""
    appid = ingestor.settings.official_account_appid
    if not appid or not said:
        return 0
    keys = {c.openid: IdentityKey(IdentityKind.OPENID, appid, c.openid) for cs in said.values() for c in cs}
    async with db.read_sessions() as session:
        known = {k.value for k in await identity_store.identities_by_keys(session, keys.values())}
    envelopes = [
        {
            "id": f"oa-comment:{article}:{c.user_comment_id}",
            "type": "event",
            "identity": {"kind": "OPENID", "namespace": appid, "value": c.openid},
            "occurredAt": c.at.isoformat(),
            "data": {
                "event": "article_comment",
                "properties": {"article": article, "comment": c.user_comment_id},
            },
        }
        for article, found in said.items()
        for c in found
        if c.openid in known
    ]
    size = ingestor.settings.ingest_max_records
    for n in range(0, len(envelopes), size):
        await ingestor.ingest(Channel.OFFICIAL_ACCOUNT, envelopes[n : n + size], actor=ACTOR)
    return len(envelopes)


def _day_row(day: date, f: DayFigures | None, pulled: list[ArticleFigures]) -> dict[str, Any]:
    f = f or DayFigures()
    return {
        "date": day.isoformat(),
        "new_followers": f.new,
        "cancelled_followers": f.cancelled,
        "cumulative_followers": f.cumulative,
        "article_reads": sum(a.reads for a in pulled),
        "article_shares": sum(a.shares for a in pulled),
        "messages_received": f.messages,
        "pulled_at": utcnow(),
    }


def _article_row(a: ArticleFigures) -> dict[str, Any]:
    return {
        "id": a.id,
        "title": a.title,
        "published_at": a.published,
        "reads": a.reads,
        "shares": a.shares,
        "likes": a.likes,
    }


def _comment_row(appid: str, article_id: str, c: Comment) -> dict[str, Any]:
    return {
        "id": f"{article_id}:{c.user_comment_id}",
        "article_id": article_id,
        "identity_ref": pii.ref(IdentityKind.OPENID, appid, c.openid),
        "text": scrub(c.text),  # a comment may quote a phone: none is kept in clear
        "at": c.at,
        "likes": c.likes,
    }


async def due(db: Database, *, first_pull_days: int, now: datetime | None = None) -> tuple[date, date] | None:
    """What the daily pull fetches: from the day after the last one stored (or the last
    `first_pull_days` days on a first run) to the newest day WeChat serves; None when up to date."""
    newest = latest_served(now)
    async with db.store_for(Channel.OFFICIAL_ACCOUNT).engines.read_sessions() as session:
        last = await store.last_day(session)
    floor = newest - timedelta(days=MAX_PULL_DAYS - 1)
    begin = (
        newest - timedelta(days=first_pull_days - 1)
        if last is None
        else date.fromisoformat(last) + timedelta(days=1)
    )
    begin = max(begin, floor)
    return (begin, newest) if begin <= newest else None


# Reading it back: from the official account's channel store, on its read engines.


async def days(db: Database, begin: date, end: date) -> list[DayRow]:
    """The account's figures of each stored day in [begin, end]."""
    async with db.store_for(Channel.OFFICIAL_ACCOUNT).engines.read_sessions() as session:
        return await store.days(session, begin.isoformat(), end.isoformat())


async def articles(db: Database, *, offset: int, limit: int) -> tuple[list[ArticleRow], int]:
    """A slice of the articles with their figures, and how many there are."""
    async with db.store_for(Channel.OFFICIAL_ACCOUNT).engines.read_sessions() as session:
        rows = await store.articles(session, offset=offset, limit=limit)
        return rows, await store.article_count(session)


async def comments(db: Database, article_id: str, *, offset: int, limit: int) -> tuple[list[CommentRow], int]:
    """A slice of one article's comments, and how many it has."""
    async with db.store_for(Channel.OFFICIAL_ACCOUNT).engines.read_sessions() as session:
        rows = await store.comments(session, article_id, offset=offset, limit=limit)
        return rows, await store.comment_count(session, article_id)


async def tag_article(db: Database, article_id: str, tags: list[str]) -> ArticleRow:
    """Replace an article's editorial tags; NOT_FOUND for an article never pulled."""
    engines = db.store_for(Channel.OFFICIAL_ACCOUNT).engines
    async with engines.write_sessions() as session, session.begin():
        if not await store.set_tags(session, article_id, tags, utcnow()):
            raise NotFound(f"no article {article_id}", field="id")
    async with engines.read_sessions() as session:
        [row] = await store.articles(session, ids=[article_id], limit=1)
    return row
