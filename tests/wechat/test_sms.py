"""SMS codes: sent through the sender interface (the log in development), expiring, single-use, limited."""

from __future__ import annotations

import logging
import os
import secrets

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
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


DAILY = {"sms_per_phone_per_day": 2, "sms_min_interval_seconds": 0}  # no gap between codes here


@pytest.mark.parametrize("settings", [DAILY], indirect=True)
async def test_a_phone_gets_so_many_codes_a_day(gql: Gql, caplog: pytest.LogCaptureFixture) -> None:
    phone, masked = "13700137444", "137****7444"
    await sms_code(gql, caplog, phone, masked)
    await sms_code(gql, caplog, phone, masked)
    error = await gql.error(REQUEST_CODE, {"phone": phone}, token=None, code="RATE_LIMITED")
    assert "today" in error["message"]


@pytest.mark.usefixtures("redis_url")
async def test_sms_limits_are_shared_by_instances_in_redis(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Two instances, one Redis: the second refuses a code the first just sent (one rate limiter)."""
    phone = f"139{secrets.randbelow(10**8):08d}"
    shared = settings.model_copy(update={"redis_url": REDIS_URL})
    first, second = create_app(shared), create_app(shared)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a.test") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b.test") as b,
        ):
            await sms_code(Gql(a), caplog, phone, f"{phone[:3]}****{phone[-4:]}")
            error = await Gql(b).error(REQUEST_CODE, {"phone": phone}, token=None, code="RATE_LIMITED")
            assert 0 < error["extensions"]["retryAfterSeconds"] <= 60
    finally:
        await first.state.db.dispose()
        await second.state.db.dispose()
