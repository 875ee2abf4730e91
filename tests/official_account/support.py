"""What the official-account tests share: the queries, the days WeChat serves now, the fake's figures."""

from __future__ import annotations

from datetime import date, timedelta

from app.services.official_account import latest_served
from app.wechat.fake_datacube import FakeDataCube, cumulative

STATS = """
query ($from: String!, $to: String!) {
  officialAccountStats(from: $from, to: $to) {
    date newFollowers cancelledFollowers netFollowers cumulativeFollowers articleReads articleShares
    messagesReceived
  }
}
"""
ARTICLES = """
query ($first: Int, $after: String) {
  articles(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id title publishedAt reads shares likes tags
      comments(first: 50) { totalCount nodes { id text at likes user { id } } } }
  }
}
"""
PULL = """
mutation ($from: String!, $to: String!) {
  pullOfficialAccountData(from: $from, to: $to) { from to days articles comments finishedAt }
}
"""
TAG = "mutation ($id: ID!, $tags: [String!]!) { tagArticle(id: $id, tags: $tags) { id tags reads } }"
ARTICLE_IDS = ["2247483651_1", "2247483650_2", "2247483650_1"]  # newest published first


def days_back(n: int) -> list[str]:
    """The last `n` days WeChat serves now, oldest first."""
    newest = latest_served()
    return [(newest - timedelta(days=k)).isoformat() for k in range(n - 1, -1, -1)]


def expected_day(day: str) -> dict[str, int]:
    """What the fake's figures add up to for one day."""
    d = date.fromisoformat(day)
    users = FakeDataCube._getusersummary(d)
    new, cancelled = sum(r["new_user"] for r in users), sum(r["cancel_user"] for r in users)
    articles = FakeDataCube._getarticlesummary(d)
    return {
        "newFollowers": new,
        "cancelledFollowers": cancelled,
        "netFollowers": new - cancelled,
        "cumulativeFollowers": cumulative(d),
        "articleReads": sum(r["int_page_read_count"] for r in articles),
        "articleShares": sum(r["share_count"] for r in articles),
        "messagesReceived": sum(r["msg_count"] for r in FakeDataCube._getupstreammsg(d)),
    }
