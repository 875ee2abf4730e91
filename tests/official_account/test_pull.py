"""Pulling the official account's data from the fake WeChat over HTTP, storing it, reading it back."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi import FastAPI

from app.domain import Channel
from app.errors import DomainError
from app.services.official_account import latest_served
from app.settings import DEMO_APPIDS
from app.wechat.api import WeChatApi
from app.wechat.datacube import COMMENT_PAGE
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key
from tests.factories.wechat import wechat_login
from tests.helpers import Gql
from tests.official_account.support import ARTICLE_IDS, ARTICLES, PULL, STATS, days_back, expected_day

OA = DEMO_APPIDS["official_account_appid"]


async def test_a_long_range_is_split_into_weeks_and_single_article_days(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "operator")
    days = days_back(9)
    pulled = (await gql(PULL, {"from": days[0], "to": days[-1]}, token=key))["pullOfficialAccountData"]
    assert (pulled["from"], pulled["to"], pulled["days"]) == (days[0], days[-1], 9)
    assert (pulled["articles"], pulled["comments"]) == (3, 5)
    assert fake_wechat.calls["/cgi-bin/comment/list"] == 3  # once an article, not once a day
    # 7 + 2 days for user and message figures; article figures one day a call.
    for name, calls in [("getusersummary", 2), ("getusercumulate", 2), ("getupstreammsg", 2)]:
        assert fake_wechat.calls[f"/datacube/{name}"] == calls, name
    assert fake_wechat.calls["/datacube/getarticlesummary"] == 9
    assert fake_wechat.calls["/datacube/getarticletotaldetail"] == 9
    stats = (await gql(STATS, {"from": days[0], "to": days[-1]}, token=key))["officialAccountStats"]
    assert [s["date"] for s in stats] == days
    assert stats == [{"date": d, **expected_day(d)} for d in days]
    page = (await gql(ARTICLES, {"first": 2}, token=key))["articles"]
    assert page["totalCount"] == 3
    assert [a["id"] for a in page["nodes"]] == ARTICLE_IDS[:2]
    assert page["nodes"][0]["publishedAt"] == "2026-11-26T16:00:00+00:00"  # 2026-11-27 in Beijing
    rest = (await gql(ARTICLES, {"first": 2, "after": page["pageInfo"]["endCursor"]}, token=key))["articles"]
    assert [a["id"] for a in rest["nodes"]] == ARTICLE_IDS[2:]
    assert rest["pageInfo"]["hasNextPage"] is False
    first = rest["nodes"][0]
    assert first["reads"] > 0
    assert first["likes"] > 0
    assert [c["text"] for c in first["comments"]["nodes"]] == ["Bob on Winter menu", "Alice on Winter menu"]


async def test_comments_are_paged_below_50_and_indexed_from_0(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "operator")
    fake_wechat.extra_comments = 100  # 102 comments on the first article: pages of 49, 49 and 4
    [day] = days_back(1)
    pulled = (await gql(PULL, {"from": day, "to": day}, token=key))["pullOfficialAccountData"]
    assert pulled["comments"] == 102 + 1 + 2
    assert fake_wechat.calls["/cgi-bin/comment/list"] == 3 + 1 + 1


async def test_a_retired_token_is_replaced_and_the_call_made_again(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "operator")
    day1, day2 = days_back(2)
    await gql(PULL, {"from": day1, "to": day1}, token=key)
    fake_wechat.retire_token(OA)
    pulled = (await gql(PULL, {"from": day2, "to": day2}, token=key))["pullOfficialAccountData"]
    assert pulled["days"] == 1
    assert fake_wechat.token_fetches[OA] == 2


async def test_a_failed_day_is_not_stored_and_the_next_pull_fetches_it(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "operator")
    days = days_back(3)
    fake_wechat.datacube_failures[f"getarticlesummary:{days[1]}"] = 1
    error = await gql.error(PULL, {"from": days[0], "to": days[-1]}, token=key, code="WECHAT_UNAVAILABLE")
    assert error["extensions"]["errcode"] == -1
    stats = (await gql(STATS, {"from": days[0], "to": days[-1]}, token=key))["officialAccountStats"]
    assert [s["date"] for s in stats] == days[:1]  # the day before the failure only, whole
    again = (await gql(PULL, {"from": days[1], "to": days[-1]}, token=key))["pullOfficialAccountData"]
    assert again["days"] == 2
    stats = (await gql(STATS, {"from": days[0], "to": days[-1]}, token=key))["officialAccountStats"]
    assert stats == [{"date": d, **expected_day(d)} for d in days]


async def test_wechat_refusing_is_a_wechat_error_with_its_errcode(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "operator")
    fake_wechat.apps[OA] = "another-secret"  # the account's secret was reset at WeChat
    try:
        [day] = days_back(1)
        error = await gql.error(PULL, {"from": day, "to": day}, token=key, code="WECHAT_ERROR")
        assert error["extensions"]["errcode"] == 40125
    finally:
        fake_wechat.apps[OA] = "test-oa-secret"


async def test_pulling_a_day_again_replaces_it(app: FastAPI, gql: Gql, fake_wechat: FakeWeChat) -> None:
    key = await operator_key(app, "operator")
    days = days_back(2)
    await gql(PULL, {"from": days[0], "to": days[-1]}, token=key)
    before = (await gql(ARTICLES, {"first": 10}, token=key))["articles"]
    await gql(PULL, {"from": days[0], "to": days[-1]}, token=key)
    await gql(PULL, {"from": days[-1], "to": days[-1]}, token=key)
    after = (await gql(ARTICLES, {"first": 10}, token=key))["articles"]
    assert after == before  # no duplicate article, day or comment
    assert [a["comments"]["totalCount"] for a in after["nodes"]] == [2, 1, 2]


async def test_a_comment_by_a_known_follower_names_their_user(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    key = await operator_key(app, "viewer", "operator")
    alice = (await wechat_login(gql, "OFFICIAL_ACCOUNT", "alice"))["user"]["id"]
    [day] = days_back(1)
    await gql(PULL, {"from": day, "to": day}, token=key)
    nodes = (await gql(ARTICLES, {"first": 10}, token=key))["articles"]["nodes"]
    by_text = {c["text"]: c["user"] for a in nodes for c in a["comments"]["nodes"]}
    assert by_text["Alice on Winter menu"] == {"id": alice}
    assert by_text["Alice on Member day: double points"] == {"id": alice}
    assert by_text["Bob on Winter menu"] is None  # nobody Troika knows holds bob's openid


@pytest.mark.parametrize(
    ("now", "newest"),
    [
        (datetime(2026, 12, 4, 23, 0, tzinfo=UTC), "2026-12-03"),  # 07:00 on the 5th in Beijing: not yet
        (datetime(2026, 12, 4, 23, 59, tzinfo=UTC), "2026-12-03"),  # 07:59
        (datetime(2026, 12, 5, 0, 0, tzinfo=UTC), "2026-12-04"),  # 08:00: the 4th is served
    ],
)
def test_the_newest_day_served_is_yesterday_in_beijing_after_8(now: datetime, newest: str) -> None:
    assert latest_served(now) == date.fromisoformat(newest)


async def test_wechatpys_comment_defaults_are_what_wechat_refuses(
    app: FastAPI, fake_wechat: FakeWeChat
) -> None:
    """Why the pull passes index and count itself: wechatpy's defaults (index 1, count 50) fail."""
    api = WeChatApi(app.state.settings)
    try:
        client = api.client(Channel.OFFICIAL_ACCOUNT)
        with pytest.raises(DomainError) as refused:
            await api.call("comment/list", lambda: client.material.list_comment(2247483651))
        assert refused.value.details["errcode"] == 88000  # index 1: the message has one article, index 0
        with pytest.raises(DomainError) as too_many:
            await api.call("comment/list", lambda: client.material.list_comment(2247483651, index=0))
        assert too_many.value.details["errcode"] == 40097  # count 50
        page = await api.call(
            "comment/list", lambda: client.material.list_comment(2247483651, index=0, count=COMMENT_PAGE)
        )
        assert page["total"] == 2
    finally:
        api.close()
