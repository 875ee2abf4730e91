"""Rate limits per client address and per caller, stricter for sign-in and SMS codes: 429 with
Retry-After, in this process or shared through Redis."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest

from app.ratelimit import MemoryLimiter, Rate
from app.settings import Settings
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import new_user
from tests.helpers import Gql, served

REDIS_URL = os.environ.get("TROIKA_TEST_REDIS_URL")
GR = "application/graphql-response+json"
TYPENAME = {"query": "{ __typename }"}
USER = "query ($id: ID!) { user(id: $id) { id phone } }"
LOGIN = {"query": 'mutation { wechatLogin(channel: APP, code: "c") { token } }'}
LOGINS_3 = {
    "query": "mutation { "
    + " ".join(f'l{i}: wechatLogin(channel: APP, code: "c{i}") {{ token }}' for i in range(3))
    + " }"
}
LOGIN_BY_FRAGMENT = {
    "query": 'mutation { ...L } fragment L on Mutation { wechatLogin(channel: APP, code: "c") { token } }'
}
SMS = {"query": 'mutation { requestPhoneCode(phone: "13800000000") }'}


def assert_429(response: httpx.Response, *, media: str = GR) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == f"{media}; charset=utf-8"
    retry = int(response.headers["retry-after"])
    assert retry >= 1
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfterSeconds"] == retry
    return retry


async def post(client: httpx.AsyncClient, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"accept": GR} | ({"authorization": f"Bearer {token}"} if token else {})
    return await client.post("/graphql", json=body, headers=headers)


async def test_per_client_address(settings: Settings) -> None:
    async with served(settings, rate_limit_address="3/minute") as (app, client):
        for _n in range(3):
            assert (await post(client, TYPENAME)).status_code == 200
        assert 15 <= assert_429(await post(client, TYPENAME)) <= 20  # one request every 20 s
        response = await client.post("/graphql", json=TYPENAME)  # application/json: 429 all the same
        assert_429(response, media="application/json")
        transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as neighbour:
            assert (await post(neighbour, TYPENAME)).status_code == 200


async def test_per_caller_cache_hits_included(settings: Settings) -> None:
    async with served(settings, rate_limit_principal="4/minute", rate_limit_address="off") as (app, client):
        admin = await operator_key(app, "admin")
        other = await operator_key(app, "admin")
        user_id = await new_user_via(client, admin)
        ask = {"query": USER, "variables": {"id": user_id}}
        assert (await post(client, ask, admin)).status_code == 200
        hit = await post(client, ask, admin)
        assert hit.headers.get("x-troika-cache") == "hit"
        assert (await post(client, ask, admin)).status_code == 200
        assert_429(await post(client, ask, admin))  # a hit would be ready: refused all the same
        assert (await post(client, ask, other)).status_code == 200
        # An end user is a caller of their own.
        token = user_token(app, user_id)
        for _n in range(4):
            assert (await post(client, {"query": "{ me { id } }"}, token)).status_code == 200
        assert_429(await post(client, {"query": "{ me { id } }"}, token))


async def new_user_via(client: httpx.AsyncClient, admin: str) -> str:
    return await new_user(Gql(client), admin, phone=f"+86138001{uuid.uuid4().int % 100000:05d}")


async def test_sign_in_mutations_have_a_stricter_policy(settings: Settings) -> None:
    async with served(settings, rate_limit_login="2/minute") as (_app, client):
        for n in range(2):
            code = f"fresh-{n}-{uuid.uuid4().hex}"  # the fake WeChat takes each code once
            fresh = {"query": f'mutation {{ wechatLogin(channel: APP, code: "{code}") {{ token }} }}'}
            response = await post(client, fresh)
            assert response.status_code == 200
            assert response.json()["data"]["wechatLogin"]["token"]  # past the limiter: signed in
        retry = assert_429(await post(client, LOGIN_BY_FRAGMENT))
        assert 25 <= retry <= 30
        assert_429(await post(client, LOGIN))
        # Other operations of the same caller are not counted under it.
        assert (await post(client, TYPENAME)).status_code == 200
    async with served(settings, rate_limit_login="2/minute", address="10.0.0.3") as (_app, client):
        assert_429(await post(client, LOGINS_3))  # three aliased attempts are three, refused whole
        response = await client.post("/graphql", json=LOGIN, headers={"accept": "application/json"})
        assert response.status_code == 200  # the attempts were refused, not counted: 2 remain
        assert (await post(client, LOGIN)).status_code == 200
        assert_429(await post(client, LOGIN))


async def test_sms_codes_per_caller_and_address(settings: Settings) -> None:
    async with served(settings, rate_limit_sms="1/hour") as (app, client):
        admin = await operator_key(app, "admin")
        one = user_token(app, await new_user_via(client, admin))
        assert (await post(client, SMS, one)).status_code == 200
        assert assert_429(await post(client, SMS, one)) > 3000
        two = user_token(app, await new_user_via(client, admin))
        assert_429(await post(client, SMS, two))  # the same address


async def test_the_ingest_door(settings: Settings) -> None:
    async with served(settings, rate_limit_principal="1/minute", rate_limit_address="off") as (app, client):
        key = await service_key(app, "APP")
        headers = {"authorization": f"Bearer {key}"}
        assert (await client.post("/ingest/APP", json=[], headers=headers)).status_code == 200
        response = await client.post("/ingest/APP", json=[], headers=headers)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "RATE_LIMITED"


async def test_limits_can_be_turned_off(settings: Settings) -> None:
    async with served(settings, rate_limit_address="1/hour", rate_limit_enabled=False) as (_app, client):
        for _n in range(3):
            assert (await post(client, TYPENAME)).status_code == 200


async def test_the_bucket_refills_at_the_rate() -> None:
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    rate = Rate.parse("3/minute")
    assert rate == Rate(3, 60.0)
    hits = [await limiter.hit("k", limit=3, window=60, cost=1) for _ in range(3)]
    assert hits == [None, None, None]
    assert await limiter.hit("k", limit=3, window=60) == pytest.approx(20.0)
    now[0] += 19.9
    assert await limiter.hit("k", limit=3, window=60) == pytest.approx(0.1)
    now[0] += 0.1
    assert await limiter.hit("k", limit=3, window=60) is None
    assert await limiter.hit("k", limit=3, window=60, cost=4) == 60  # more than a burst: never
    assert await limiter.hit("other", limit=3, window=60) is None


def test_rates_are_checked_when_settings_load(tmp_path: Any) -> None:
    assert Rate.parse("off") is None
    assert Rate.parse("0/minute") is None
    assert Rate.parse("10/30") == Rate(10, 30.0)
    with pytest.raises(ValueError, match="is not a rate"):
        Settings(var_dir=tmp_path, rate_limit_login="lots")


@pytest.mark.usefixtures("redis_url")
async def test_instances_share_their_buckets_in_redis(settings: Settings) -> None:
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    limits = {"redis_url": REDIS_URL, "rate_limit_address": "3/minute"}
    async with (
        served(settings, address=address, **limits) as (_a, a),
        served(settings, address=address, **limits) as (_b, b),
    ):
        assert (await post(a, TYPENAME)).status_code == 200
        assert (await post(b, TYPENAME)).status_code == 200
        assert (await post(a, TYPENAME)).status_code == 200
        assert 15 <= assert_429(await post(b, TYPENAME)) <= 20


async def test_without_redis_each_process_still_counts(settings: Settings) -> None:
    """Redis unreachable: requests are served, and limited by the process's own buckets."""
    async with served(settings, redis_url="redis://127.0.0.1:1/0", rate_limit_address="2/minute") as (
        _app,
        client,
    ):
        assert (await post(client, TYPENAME)).status_code == 200
        assert (await post(client, TYPENAME)).status_code == 200
        assert_429(await post(client, TYPENAME))
