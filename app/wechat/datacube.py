"""The official account's own figures through wechatpy: datacube, and comments by `comment/list`.

WeChat's limits are kept here, whatever wechatpy's defaults say: at most 7 days a call for user and
message figures, 1 day for article figures; `comment/list` counts a message's articles from 0 and
refuses a `count` of 50 or more. `getarticletotaldetail` (likes, publish dates) replaced the
retired `getarticletotal` and wechatpy 1.8 lacks it: it goes through the same client, so the same
shared token and the same retry on a retired token (40001/42001).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from app.domain import Channel
from app.wechat.api import WeChatApi

BEIJING = ZoneInfo("Asia/Shanghai")
USER_SPAN_DAYS = 7  # getusersummary, getusercumulate, getupstreammsg
COMMENT_PAGE = 49  # comment/list refuses count >= 50


def chunks(first: date, last: date, span: int) -> Iterator[tuple[date, date]]:
    """[first, last] as consecutive ranges of at most `span` days."""
    start = first
    while start <= last:
        end = min(start + timedelta(days=span - 1), last)
        yield start, end
        start = end + timedelta(days=1)


@dataclass
class DayFigures:
    """What the range-wide calls say of one day."""

    new: int = 0
    cancelled: int = 0
    cumulative: int = 0
    messages: int = 0


@dataclass
class ArticleFigures:
    """One article's figures on one day; `published` when WeChat says when it went out."""

    id: str
    title: str
    reads: int = 0
    shares: int = 0
    likes: int = 0
    published: datetime | None = None


@dataclass(frozen=True)
class Comment:
    user_comment_id: int
    openid: str
    text: str
    at: datetime
    likes: int


def msg_parts(article_id: str) -> tuple[int, int]:
    """WeChat's msgid "<msg_data_id>_<n>" counts from 1; comment/list's `index` counts from 0."""
    mid, _, n = article_id.partition("_")
    return int(mid), int(n or 1) - 1


class OfficialAccountData:
    """The calls, each a wechatpy call in a thread with WeChat's failures as DomainErrors."""

    def __init__(self, api: WeChatApi) -> None:
        self.api = api

    async def user_days(self, first: date, last: date) -> dict[str, DayFigures]:
        """New, cancelled and cumulative followers and messages received, 7 days a call."""
        client = self.api.client(Channel.OFFICIAL_ACCOUNT)
        days: dict[str, DayFigures] = {}
        for begin, end in chunks(first, last, USER_SPAN_DAYS):
            summary = await self.api.call(
                "datacube/getusersummary", partial(client.datacube.get_user_summary, begin, end)
            )
            cumulate = await self.api.call(
                "datacube/getusercumulate", partial(client.datacube.get_user_cumulate, begin, end)
            )
            upstream = await self.api.call(
                "datacube/getupstreammsg", partial(client.datacube.get_upstream_msg, begin, end)
            )
            for row in summary:  # one row per day and source of the follow
                day = days.setdefault(row["ref_date"], DayFigures())
                day.new += int(row.get("new_user", 0))
                day.cancelled += int(row.get("cancel_user", 0))
            for row in cumulate:
                days.setdefault(row["ref_date"], DayFigures()).cumulative = int(row.get("cumulate_user", 0))
            for row in upstream:  # one row per day and message type
                days.setdefault(row["ref_date"], DayFigures()).messages += int(row.get("msg_count", 0))
        return days

    async def article_day(self, day: date) -> list[ArticleFigures]:
        """Each article's reads, shares and likes on `day` (1-day calls)."""
        client = self.api.client(Channel.OFFICIAL_ACCOUNT)
        summary: list[dict[str, Any]] = await self.api.call(
            "datacube/getarticlesummary", lambda: client.datacube.get_article_summary(day, day)
        )
        body = {"begin_date": day.isoformat(), "end_date": day.isoformat()}
        detail: dict[str, Any] = await self.api.call(
            "datacube/getarticletotaldetail",
            lambda: client.post(
                "getarticletotaldetail", data=body, api_base_url=f"{self.api.base_url}/datacube/"
            ),
        )
        found: dict[str, ArticleFigures] = {}
        for row in summary:
            found[row["msgid"]] = ArticleFigures(
                id=row["msgid"],
                title=str(row.get("title", "")),
                reads=int(row.get("int_page_read_count", 0)) + int(row.get("ori_page_read_count", 0)),
                shares=int(row.get("share_count", 0)),
            )
        for row in detail.get("list", []):
            article = found.setdefault(row["msgid"], ArticleFigures(id=row["msgid"], title=str(row["title"])))
            if row.get("ref_date"):
                published = date.fromisoformat(row["ref_date"])
                article.published = datetime(published.year, published.month, published.day, tzinfo=BEIJING)
            for stat in row.get("detail_list", []):
                if stat.get("stat_date") == day.isoformat():
                    article.likes = int(stat.get("like_user", 0))
        return list(found.values())

    async def comments(self, article_id: str) -> list[Comment]:
        """Every comment on an article, page by page (49 a call)."""
        client = self.api.client(Channel.OFFICIAL_ACCOUNT)
        mid, index = msg_parts(article_id)
        found: list[Comment] = []
        while True:
            begin = len(found)
            page: dict[str, Any] = await self.api.call(
                "comment/list",
                partial(client.material.list_comment, mid, index=index, begin=begin, count=COMMENT_PAGE),
            )
            rows = page.get("comment") or []
            found += [
                Comment(
                    user_comment_id=int(row["user_comment_id"]),
                    openid=str(row["openid"]),
                    text=str(row.get("content", "")),
                    at=datetime.fromtimestamp(int(row["create_time"]), UTC),
                    likes=int(row.get("like_num", 0)),
                )
                for row in rows
            ]
            if not rows or len(found) >= int(page.get("total", 0)):
                return found
