"""SMS codes: sent through the sender interface (the log in development), expiring, single-use, limited."""

from __future__ import annotations

import logging
import os

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.services.ratelimit import RedisRateLimiter
from app.settings import Settings
from tests.factories.auth import operator_key, user_token
from tests.factories.identity import new_user
from tests.factories.wechat import BIND_PHONE, PHONE_LOGIN, REQUEST_CODE, sent_code, sms_code
from tests.helpers import Gql

PHONE, MASKED = "13800138222", "138****8222"
REDIS_URL = os.environ.get("TROIKA_TEST_REDIS_URL")


async def test_development_logs_the_code_with_the_phone_masked(
    gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert (await gql(REQUEST_CODE, {"phone": PHONE}, token=None))["requestPhoneCode"] is True
    code = sent_code(caplog, MASKED)
    assert len(code) == 6
    assert all(PHONE not in r.getMessage() for r in caplog.records)


async def test_a_code_works_once_for_its_phone_only(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin")
    token = user_token(app, await new_user(gql, admin, phone="13800138000"))
    code = await sms_code(gql, caplog, PHONE, MASKED)
    await gql.error(BIND_PHONE, {"phone": "13900139000", "sms": code}, token=token, code="PHONE_CODE_INVALID")
    wrong = "000000" if code != "000000" else "111111"
    await gql.error(BIND_PHONE, {"phone": PHONE, "sms": wrong}, token=token, code="PHONE_CODE_INVALID")
    await gql(BIND_PHONE, {"phone": PHONE, "sms": code}, token=token)
    error = await gql.error(BIND_PHONE, {"phone": PHONE, "sms": code}, token=token, code="PHONE_CODE_INVALID")
    assert "already used" in error["message"]


async def test_codes_expire(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    expiring = create_app(settings.model_copy(update={"sms_code_ttl_seconds": 0}))
    try:
        transport = httpx.ASGITransport(app=expiring)
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as http:
            gql = Gql(http)
            code = await sms_code(gql, caplog, PHONE, MASKED)
            error = await gql.error(
                PHONE_LOGIN, {"phone": PHONE, "code": code}, token=None, code="PHONE_CODE_INVALID"
            )
            assert "expired" in error["message"]
    finally:
        await expiring.state.db.dispose()


async def test_requests_are_rate_limited_per_phone(gql: Gql, caplog: pytest.LogCaptureFixture) -> None:
    await sms_code(gql, caplog, PHONE, MASKED)
    error = await gql.error(REQUEST_CODE, {"phone": PHONE}, token=None, code="RATE_LIMITED")
    assert 0 < error["extensions"]["retryAfterSeconds"] <= 60
    await sms_code(gql, caplog, "13900139333", "139****9333")  # another phone is not held up


async def test_wrong_guesses_are_limited(gql: Gql, caplog: pytest.LogCaptureFixture) -> None:
    code = await sms_code(gql, caplog, PHONE, MASKED)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        await gql.error(PHONE_LOGIN, {"phone": PHONE, "code": wrong}, token=None, code="PHONE_CODE_INVALID")
    # Even the right code waits now: guessing is over for this phone for a while.
    await gql.error(PHONE_LOGIN, {"phone": PHONE, "code": code}, token=None, code="RATE_LIMITED")


async def test_invalid_phones_and_bad_credentials_are_refused(gql: Gql) -> None:
    await gql.error(REQUEST_CODE, {"phone": "12345"}, token=None, code="INVALID_PHONE")
    await gql.error(REQUEST_CODE, {"phone": PHONE}, token="not-a-token", code="UNAUTHENTICATED")


@pytest.mark.skipif(not REDIS_URL, reason="Redis tests need TROIKA_TEST_REDIS_URL")
async def test_redis_limits_are_shared_by_instances() -> None:
    assert REDIS_URL
    first, second = (
        RedisRateLimiter(REDIS_URL, prefix="troika:test-rl:"),
        RedisRateLimiter(REDIS_URL, prefix="troika:test-rl:"),
    )
    key = f"k-{os.getpid()}-{id(first)}"
    try:
        assert await first.hit(key, limit=2, window=30) is None
        assert await second.hit(key, limit=2, window=30) is None
        wait = await first.hit(key, limit=2, window=30)
        assert wait is not None
        assert 0 < wait <= 30
        assert await second.count(key, window=30) == 3
    finally:
        await first.redis.delete(first.prefix + key)
        await first.close()
        await second.close()
