"""access_token: fetched once and shared (Redis across instances), refreshed when WeChat retires it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import redis

from app.domain import Channel
from app.wechat.api import WeChatApi
from app.wechat.fake import FakeWeChat
from app.wechat.tokens import PREFIX
from tests.conftest import settings_for

REDIS_URL = os.environ.get("TROIKA_TEST_REDIS_URL")


def _api(tmp_path: Path, url: str, redis_url: str | None = None) -> WeChatApi:
    settings = settings_for("sqlite+aiosqlite:///unused.db", tmp_path, wechat_url=url)
    return WeChatApi(settings.model_copy(update={"redis_url": redis_url}))


async def test_one_token_serves_every_call_and_a_retired_one_is_replaced(
    tmp_path: Path, fake_wechat: FakeWeChat, fake_wechat_server: tuple[FakeWeChat, str]
) -> None:
    api = _api(tmp_path, fake_wechat_server[1])
    [a, b] = fake_wechat.follow("xena", "yuri")
    try:
        await asyncio.gather(api.follower(a), api.follower(b), api.follower(a))
        oa = api.client_appid(Channel.OFFICIAL_ACCOUNT)
        assert fake_wechat.token_fetches[oa] == 1
        # Someone fetched a new token elsewhere (another deployment, the console): ours is retired.
        other = _api(tmp_path, fake_wechat_server[1])
        await other.follower(a)
        assert fake_wechat.token_fetches[oa] == 2
        info = await api.follower(b)  # 40001, then wechatpy fetches a fresh token and retries
        assert info["openid"] == b
        assert fake_wechat.token_fetches[oa] == 3
        other.close()
    finally:
        api.close()


@pytest.mark.usefixtures("redis_url")
async def test_instances_share_one_token_through_redis(
    tmp_path: Path, fake_wechat: FakeWeChat, fake_wechat_server: tuple[FakeWeChat, str]
) -> None:
    assert REDIS_URL
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(f"{PREFIX}:*"):
        r.delete(key)
    instances = [_api(tmp_path, fake_wechat_server[1], REDIS_URL) for _ in range(3)]
    [a] = fake_wechat.follow("zoe")
    try:
        await asyncio.gather(*(api.follower(a) for api in instances for _ in range(3)))
        oa = instances[0].client_appid(Channel.OFFICIAL_ACCOUNT)
        assert fake_wechat.token_fetches[oa] == 1
        assert r.get(f"{PREFIX}:{oa}_access_token") is not None
        # WeChat retires it: one instance fetches anew, the others take the new token from Redis.
        fake_wechat.tokens.clear()
        await asyncio.gather(*(api.follower(a) for api in instances))
        assert fake_wechat.token_fetches[oa] == 2
    finally:
        for api in instances:
            api.close()
        for key in r.scan_iter(f"{PREFIX}:*"):
            r.delete(key)
        r.close()
