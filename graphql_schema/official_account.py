"""The official account's own data: daily figures, articles and their comments, pulled from WeChat."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.domain.official_account import ArticleRow, CommentRow, DayRow
from app.services.official_account import PullReport
from graphql_schema.common import PageInfo
from graphql_schema.identity import User, user_of
from graphql_schema.permissions import AUTHENTICATED
from resolvers import official_account as resolve
from resolvers.official_account import OffsetPage

Ctx = Info[RequestContext, None]
FIRST = strawberry.argument(description="How many, at most (capped).")
AFTER = strawberry.argument(description="The endCursor of the previous page.")
FROM = strawberry.argument(name="from", description="The first day, YYYY-MM-DD (Beijing time).")
TO = strawberry.argument(description="The last day, YYYY-MM-DD (Beijing time), inclusive.")


@strawberry.type(
    description="One day of the official account, as WeChat's data APIs report it (dates in Beijing time)."
)
class OfficialAccountDay:
    row: strawberry.Private[DayRow]

    @strawberry.field(description="YYYY-MM-DD.")
    def date(self) -> str:
        return self.row.date

    @strawberry.field(description="People who followed the account that day.")
    def new_followers(self) -> int:
        return self.row.new_followers

    @strawberry.field(description="People who stopped following it that day.")
    def cancelled_followers(self) -> int:
        return self.row.cancelled_followers

    @strawberry.field(description="newFollowers - cancelledFollowers.")
    def net_followers(self) -> int:
        return self.row.new_followers - self.row.cancelled_followers

    @strawberry.field(description="Followers at the end of the day.")
    def cumulative_followers(self) -> int:
        return self.row.cumulative_followers

    @strawberry.field(description="Reads of the account's articles that day.")
    def article_reads(self) -> int:
        return self.row.article_reads

    @strawberry.field(description="Shares of the account's articles that day.")
    def article_shares(self) -> int:
        return self.row.article_shares

    @strawberry.field(description="Messages followers sent to the account.")
    def messages_received(self) -> int:
        return self.row.messages_received


@strawberry.type(description="A comment on an article.")
class ArticleComment:
    row: strawberry.Private[CommentRow]

    @strawberry.field(description="The article's id and WeChat's user_comment_id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.row.id)

    @strawberry.field(description="What the commenter wrote.")
    def text(self) -> str:
        return self.row.text

    @strawberry.field(description="When it was written (UTC).")
    def at(self) -> datetime:
        return self.row.at

    @strawberry.field(description="Likes, when WeChat reports them (comment/list does not: 0).")
    def likes(self) -> int:
        return self.row.likes

    @strawberry.field(description="The commenter, when known.")
    async def user(self, info: Ctx) -> User | None:
        return user_of(await resolve.commenter(info.context, self.row.openid))


@strawberry.type(description="A page of comments.")
class ArticleCommentConnection:
    nodes: list[ArticleComment] = strawberry.field(description="The comments of this page.")
    page_info: PageInfo = strawberry.field(description="Where the next page starts.")
    total_count: int = strawberry.field(description="Comments on the article in all.")


@strawberry.type(description="An article the official account published, with its totals so far.")
class Article:
    row: strawberry.Private[ArticleRow]

    @strawberry.field(description="WeChat's msg_data_id (with the article's index in its message).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.row.id)

    @strawberry.field(description="Its title.")
    def title(self) -> str:
        return self.row.title

    @strawberry.field(description="When it went out (its day, Beijing time), when WeChat says.")
    def published_at(self) -> datetime | None:
        return self.row.published_at

    @strawberry.field(description="Reads over the days pulled.")
    def reads(self) -> int:
        return self.row.reads

    @strawberry.field(description="Shares over the days pulled.")
    def shares(self) -> int:
        return self.row.shares

    @strawberry.field(description="Likes over the days pulled.")
    def likes(self) -> int:
        return self.row.likes

    @strawberry.field(description="The editorial tags operators gave it (they feed the readers' interests).")
    def tags(self) -> list[str]:
        return self.row.tags

    @strawberry.field(
        description="Comments, newest first; a commenter who is a known follower is linked to their user."
    )
    async def comments(
        self,
        info: Ctx,
        first: Annotated[int | None, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> ArticleCommentConnection:
        page = await resolve.comments(info.context, self.row.id, first=first, after=after)
        return ArticleCommentConnection(
            nodes=[ArticleComment(row=c) for c in page.nodes],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            total_count=page.total,
        )


@strawberry.type(description="A page of articles.")
class ArticleConnection:
    nodes: list[Article] = strawberry.field(description="The articles of this page.")
    page_info: PageInfo = strawberry.field(description="Where the next page starts.")
    total_count: int = strawberry.field(description="Articles in all.")

    @classmethod
    def of(cls, page: OffsetPage[ArticleRow]) -> ArticleConnection:
        return cls(
            nodes=[Article(row=a) for a in page.nodes],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            total_count=page.total,
        )


@strawberry.type(description="What a pull fetched.")
class OfficialAccountPull:
    from_: str = strawberry.field(name="from", description="The first day pulled.")
    to: str = strawberry.field(description="The last day pulled.")
    days: int = strawberry.field(description="Days stored (each replacing what was there).")
    articles: int = strawberry.field(description="Article-days stored.")
    comments: int = strawberry.field(description="Comments stored.")
    finished_at: datetime = strawberry.field(description="When the pull ended (UTC).")

    @classmethod
    def of(cls, r: PullReport) -> OfficialAccountPull:
        return cls(
            from_=r.first.isoformat(),
            to=r.last.isoformat(),
            days=r.days,
            articles=r.articles,
            comments=r.comments,
            finished_at=r.finished_at,
        )


@strawberry.type
class OfficialAccountQuery:
    @strawberry.field(
        description="Daily figures between two dates (inclusive), oldest first; days not pulled yet "
        "are absent.",
        permission_classes=AUTHENTICATED,
    )
    async def official_account_stats(
        self, info: Ctx, from_: Annotated[str, FROM], to: Annotated[str, TO]
    ) -> list[OfficialAccountDay]:
        return [OfficialAccountDay(row=r) for r in await resolve.stats(info.context, first=from_, last=to)]

    @strawberry.field(description="Articles, newest first.", permission_classes=AUTHENTICATED)
    async def articles(
        self,
        info: Ctx,
        first: Annotated[int | None, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> ArticleConnection:
        return ArticleConnection.of(await resolve.articles(info.context, first=first, after=after))


@strawberry.type
class OfficialAccountMutation:
    @strawberry.mutation(
        description="Pull the official account's figures, articles and comments for these dates now "
        "(operators); re-pulling a day replaces it.",
        permission_classes=AUTHENTICATED,
    )
    async def pull_official_account_data(
        self, info: Ctx, from_: Annotated[str, FROM], to: Annotated[str, TO]
    ) -> OfficialAccountPull:
        return OfficialAccountPull.of(await resolve.pull(info.context, first=from_, last=to))

    @strawberry.mutation(
        description="Give an article editorial tags (operators).", permission_classes=AUTHENTICATED
    )
    async def tag_article(
        self,
        info: Ctx,
        id: Annotated[strawberry.ID, strawberry.argument(description="The article's id.")],
        tags: Annotated[list[str], strawberry.argument(description="Its tags (replacing the old ones).")],
    ) -> Article:
        return Article(row=await resolve.tag_article(info.context, str(id), tags))
