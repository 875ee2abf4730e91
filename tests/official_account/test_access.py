"""Who reads and who pulls the official account's data; the dates WeChat serves; article tags."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI

from app.services.official_account import latest_served
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key
from tests.factories.wechat import wechat_login
from tests.helpers import Gql
from tests.official_account.support import ARTICLE_IDS, PULL, STATS, TAG, days_back


async def test_viewers_read_operators_pull_and_tag(app: FastAPI, gql: Gql, fake_wechat: FakeWeChat) -> None:
    [day] = days_back(1)
    span = {"from": day, "to": day}
    viewer, operator, admin = [await operator_key(app, r) for r in ("viewer", "operator", "admin")]
    service = await service_key(app, "OFFICIAL_ACCOUNT")
    person = (await wechat_login(gql, "MINI_PROGRAM", "dora"))["token"]

    await gql.error(PULL, span, token=viewer, code="FORBIDDEN")
    for caller in (service, person):
        await gql.error(PULL, span, token=caller, code="FORBIDDEN")
        await gql.error(STATS, span, token=caller, code="FORBIDDEN")
    await gql.error(PULL, span, token=None, code="UNAUTHENTICATED")
    assert fake_wechat.calls["/datacube/getusersummary"] == 0  # nobody refused reached WeChat

    assert (await gql(PULL, span, token=operator))["pullOfficialAccountData"]["days"] == 1
    assert (await gql(PULL, span, token=admin))["pullOfficialAccountData"]["days"] == 1
    assert [d["date"] for d in (await gql(STATS, span, token=viewer))["officialAccountStats"]] == [day]
    await gql.error(STATS, {"from": "2020-01-01", "to": "2021-06-01"}, token=viewer, code="BAD_USER_INPUT")

    tagged = await gql(TAG, {"id": ARTICLE_IDS[0], "tags": ["food", " members ", "food"]}, token=operator)
    assert tagged["tagArticle"]["tags"] == ["food", "members"]
    assert tagged["tagArticle"]["reads"] > 0
    await gql.error(TAG, {"id": ARTICLE_IDS[0], "tags": ["x"]}, token=viewer, code="FORBIDDEN")
    await gql.error(TAG, {"id": "1_1", "tags": ["x"]}, token=operator, code="NOT_FOUND")
    await gql.error(TAG, {"id": ARTICLE_IDS[0], "tags": ["x" * 41]}, token=operator, code="BAD_USER_INPUT")


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("today", "today", "to"),  # WeChat has nothing of today yet
        ("2014-11-30", "2014-12-01", "from"),  # nor before its data begins
        ("newest", "oldest", "from"),  # backwards
        ("2026-13-01", "2026-12-01", "from"),  # not a date
        ("2024-01-01", "2025-06-01", "to"),  # more than a year in one pull
    ],
)
async def test_dates_wechat_does_not_serve_are_bad_input(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat, first: str, last: str, field: str
) -> None:
    newest = latest_served()
    named = {
        "today": (newest + timedelta(days=1)).isoformat(),
        "newest": newest.isoformat(),
        "oldest": (newest - timedelta(days=3)).isoformat(),
    }
    key = await operator_key(app, "operator")
    span = {"from": named.get(first, first), "to": named.get(last, last)}
    error = await gql.error(PULL, span, token=key, code="BAD_USER_INPUT")
    assert error["extensions"]["field"] == field
    assert fake_wechat.calls["/datacube/getusersummary"] == 0
