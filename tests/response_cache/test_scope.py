"""What the response cache keeps, for whom, and for how long."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.channel_data.test_separate_store import app_store_url  # noqa: F401  (a fixture)
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.identity import link, new_user
from tests.helpers import Gql, untraced

PHONE = "query ($id: ID!) { user(id: $id) { id phone } }"
ME = "{ me { id phone identities { kind } } }"
ORDERS = "query ($id: ID!) { user(id: $id) { orders { totalCount } } }"


def hits(app: FastAPI) -> int:
    count: int = app.state.response_cache.hits
    return count


async def twice(app: FastAPI, gql: Gql, query: str, variables: dict[str, str] | None, token: str) -> bool:
    """Ask twice; whether the second answer came from the cache (the two answers must agree)."""
    first = await gql.post(query, variables, token)
    before = hits(app)
    second = await gql.post(query, variables, token)
    assert untraced(second) == untraced(first)
    return hits(app) == before + 1


async def test_each_kind_of_caller_has_its_own_entries(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613800139101")
    viewer = await operator_key(app, "viewer")
    reader = await operator_key(app, "viewer", "pii_reader")
    assert await twice(app, gql, PHONE, {"id": user_id}, viewer)
    assert (await gql(PHONE, {"id": user_id}, token=viewer))["user"]["phone"] == "138****9101"
    assert (await gql(PHONE, {"id": user_id}, token=reader))["user"]["phone"] == "+8613800139101"
    # An end user's `me` is theirs alone, and nobody else's answer reaches them.
    own = user_token(app, user_id)
    assert await twice(app, gql, ME, None, own)
    stranger = user_token(app, await new_user(gql, admin, phone="+8613800139102"))
    assert (await gql(ME, token=stranger))["me"]["id"] != user_id
    await gql.error(PHONE, {"id": user_id}, token=stranger, code="FORBIDDEN")
    # A service reads only users of its channel, cached or not.
    await link(gql, admin, kind="APP_USER_ID", value="scope-1", user_id=user_id)
    app_service = await service_key(app, "APP")
    assert await twice(app, gql, PHONE, {"id": user_id}, app_service)
    oa_service = await service_key(app, "OFFICIAL_ACCOUNT")
    await gql.error(PHONE, {"id": user_id}, token=oa_service, code="FORBIDDEN")


async def test_only_error_free_queries_of_one_user_by_id_are_kept(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    older = await new_user(gql, admin, phone="+8613800139111")
    younger = (await link(gql, admin, kind="APP_USER_ID", value="scope-2"))["user"]["id"]
    await link(gql, admin, kind="APP_USER_ID", value="scope-2", user_id=older)
    not_kept = [
        ("{ users(first: 5) { nodes { id } } }", None),
        ('{ user(identity: {kind: PHONE, value: "+8613800139111"}) { id } }', None),
        (PHONE, {"id": "999999"}),  # nobody: a null is not kept
        (PHONE, {"id": younger}),  # an absorbed id resolves through a merge
        ("query ($id: ID!) { user(id: $id) { id } users(first: 1) { totalCount } }", {"id": older}),
        (
            "query ($id: ID!) { user(id: $id) { id orders(first: 1000) { totalCount } } }",
            {"id": older},
        ),  # error
        ("{ dataDictionary { version } }", None),
    ]
    for query, variables in not_kept:
        assert not await twice(app, gql, query, variables, admin), query
    assert await twice(app, gql, PHONE, {"id": older}, admin)


class Clock:
    """The cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_entries_expire(app: FastAPI, gql: Gql) -> None:
    clock = app.state.response_cache.clock = Clock()
    lifetime = app.state.settings.response_cache_seconds
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613800139121")
    assert await twice(app, gql, PHONE, {"id": user_id}, admin)
    clock.now += lifetime - 1
    assert await twice(app, gql, PHONE, {"id": user_id}, admin), "still kept a second before it expires"
    clock.now += 2
    before = hits(app)
    await gql(PHONE, {"id": user_id}, token=admin)
    assert hits(app) == before, "expired"


async def test_the_cache_can_be_turned_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"response_cache_bytes": 0}))
    try:
        assert app.state.response_cache is None
    finally:
        await app.state.db.dispose()


@pytest.mark.usefixtures("app_store_url")
async def test_a_channel_store_in_another_database_invalidates_after_its_commit(
    settings: Settings,
    app_store_url: str,  # noqa: F811
) -> None:
    app = create_app(settings.model_copy(update={"app_database_url": app_store_url}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            gql = Gql(client)
            admin = await operator_key(app, "admin")
            key = await service_key(app, "APP")
            user_id = await new_user(gql, admin, phone="+8613800139131")
            await link(gql, admin, kind="APP_USER_ID", value="scope-3", user_id=user_id)
            assert await twice(app, gql, ORDERS, {"id": user_id}, admin)
            await ingest(client, key, "APP", [app_order("s-1", app_user("scope-3"), order_no="S-1")])
            after = await gql(ORDERS, {"id": user_id}, token=admin)
            assert after["user"]["orders"]["totalCount"] == 1
    finally:
        await app.state.db.dispose()
