"""Comments and reads in the portrait: a known follower's comment is behaviour, article tags are interests."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db.models import User
from app.settings import DEMO_APPIDS
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import event, ingest, openid
from tests.factories.wechat import wechat_login
from tests.helpers import Gql
from tests.official_account.support import ARTICLES, PULL, TAG, days_back

PORTRAIT = """
query ($id: ID!) {
  user(id: $id) {
    interests { tag weight }
    behavior(types: ["article_comment", "article_read"]) { nodes { channel type properties } }
  }
}
"""


async def _users(app: FastAPI) -> int:
    async with app.state.db.read_sessions() as s:
        return int((await s.execute(select(func.count()).select_from(User))).scalar_one())


async def test_comments_and_reads_feed_the_portrait_through_the_articles_tags(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    admin = await operator_key(app, "admin")
    alice = (await wechat_login(gql, "OFFICIAL_ACCOUNT", "alice"))["user"]["id"]
    rita = (await wechat_login(gql, "APP", "rita"))["user"]["id"]
    users = await _users(app)
    rita_openid = fake_wechat.openid(DEMO_APPIDS["app_wechat_appid"], "rita")
    read = event(
        "r1",
        openid(DEMO_APPIDS["app_wechat_appid"], rita_openid),
        name="article_read",
        properties={"article": "2247483650_2"},
    )
    await ingest(client, await service_key(app, "APP"), "APP", [read])

    day1, day2 = days_back(2)
    await gql(PULL, {"from": day1, "to": day1}, token=admin)
    await gql(PULL, {"from": day1, "to": day2}, token=admin)  # the same comments again: no duplicate
    assert await _users(app) == users  # bob and carol, whom Troika does not know, made nobody

    portrait = (await gql(PORTRAIT, {"id": alice}, token=admin))["user"]
    comments = portrait["behavior"]["nodes"]
    assert sorted(n["properties"]["article"] for n in comments) == [
        "2247483650_1",
        "2247483650_2",
        "2247483651_1",
    ]
    assert {(n["channel"], n["type"]) for n in comments} == {("OFFICIAL_ACCOUNT", "article_comment")}
    assert portrait["interests"] == []  # no article has tags yet

    await gql(TAG, {"id": "2247483650_1", "tags": ["food"]}, token=admin)
    await gql(TAG, {"id": "2247483650_2", "tags": ["opening hours", "food"]}, token=admin)
    interests = (await gql(PORTRAIT, {"id": alice}, token=admin))["user"]["interests"]
    assert interests == [{"tag": "food", "weight": 1.0}, {"tag": "opening hours", "weight": 0.5}]
    reader = (await gql(PORTRAIT, {"id": rita}, token=admin))["user"]["interests"]
    assert {i["tag"] for i in reader} == {"food", "opening hours"}  # the article she read, as tagged now


async def test_erasing_a_commenter_removes_their_comments(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    admin = await operator_key(app, "admin")
    alice = (await wechat_login(gql, "OFFICIAL_ACCOUNT", "alice"))["user"]["id"]
    [day] = days_back(1)
    await gql(PULL, {"from": day, "to": day}, token=admin)
    await gql("mutation ($u: ID!) { eraseUser(userId: $u) { userId } }", {"u": alice}, token=admin)
    nodes = (await gql(ARTICLES, {"first": 10}, token=admin))["articles"]["nodes"]
    left = sorted(c["text"] for a in nodes for c in a["comments"]["nodes"])
    assert left == ["Bob on Winter menu", "Carol on Member day: double points (call me: 138****8000)"]
