"""Every change to what a user's view shows invalidates its cached responses, whoever makes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import build_schema

from app.main import create_app
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from graphql_schema.schema import schema
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, cart, event, ingest, mp_order, openid
from tests.factories.identity import link, new_user
from tests.factories.wechat import BIND_PHONE, PHONE_LOGIN, event_xml, sms_code, wechat_login
from tests.factories.wechat_push import push
from tests.helpers import Gql
from tests.identity.test_merge import UNLINK, UNMERGE
from tests.sql import count_statements

VIEW = """
query ($id: ID!) {
  user(id: $id) {
    id
    identities { kind value verified }
    orders { totalCount nodes { sourceId status } }
    cart { items { sku quantity } }
    behavior { nodes { type } }
    consents { purpose channel granted }
    membership { tier expiresAt }
    points
    roles { role scope }
  }
}
"""
INGEST = "mutation ($r: [JSON!]!) { ingest(channel: APP, records: $r) { accepted } }"
SET_CONSENT = "mutation ($i: ConsentInput!) { setConsent(input: $i) { id } }"
SET_CONSENTS = "mutation ($i: [ConsentInput!]!) { setConsents(inputs: $i) { id } }"
GRANT_MEMBERSHIP = """
mutation ($u: ID!) { grantMembership(userId: $u, tier: "GOLD", sourceChannel: APP) { id } }
"""
REVOKE_MEMBERSHIP = "mutation ($u: ID!) { revokeMembership(userId: $u, sourceChannel: APP) { id } }"
ADJUST_POINTS = """
mutation ($u: ID!) { adjustPoints(userId: $u, points: 50, reason: "order", sourceChannel: APP) { id } }
"""
GRANT_ROLE = (
    'mutation ($u: ID!) { grantRole(userId: $u, role: "store_order_manager", scope: "store:12") { id } }'
)
ERASE = "mutation ($u: ID!) { eraseUser(userId: $u) { userId } }"
REVOKE_ROLE = (
    'mutation ($u: ID!) { revokeRole(userId: $u, role: "store_order_manager", scope: "store:12") { id } }'
)


@dataclass
class World:
    """One user holding an APP account and a phone, and the keys to change them."""

    app: FastAPI
    client: httpx.AsyncClient
    gql: Gql
    admin: str
    service: str
    user_id: str
    fake: FakeWeChat | None = None
    caplog: pytest.LogCaptureFixture | None = None


Change = Callable[[World], Awaitable[None]]


async def _link_identity(w: World) -> None:
    await link(w.gql, w.admin, kind="EXTERNAL", namespace="qq", value="qq-1", user_id=w.user_id)


async def _merge(w: World) -> None:
    """Another user, with a mini-program order, turns out to be the same person."""
    mp = w.app.state.settings.mini_program_appid
    other = (await link(w.gql, w.admin, kind="OPENID", namespace=mp, value="o-cache"))["user"]["id"]
    mp_key = await service_key(w.app, "MINI_PROGRAM")
    await ingest(w.client, mp_key, "MINI_PROGRAM", [mp_order("m-1", openid(mp, "o-cache"), order_id="MP-1")])
    merged = await link(w.gql, w.admin, kind="OPENID", namespace=mp, value="o-cache", user_id=w.user_id)
    assert merged["merge"]["absorbedId"] == other


async def _unlink(w: World) -> None:
    await w.gql(
        UNLINK, {"userId": w.user_id, "identity": {"kind": "PHONE", "value": "+8613800139001"}}, token=w.admin
    )


async def _unmerge(w: World) -> None:
    edges = await w.gql(
        "query ($id: ID!) { user(id: $id) { identityHistory { action mergeId } } }",
        {"id": w.user_id},
        token=w.admin,
    )
    merge_id = next(e["mergeId"] for e in edges["user"]["identityHistory"] if e["action"] == "merge")
    await w.gql(UNMERGE, {"id": merge_id}, token=w.admin)


async def _ingest_order(w: World) -> None:
    await ingest(w.client, w.service, "APP", [app_order("o-2", app_user("cache-1"), order_no="A-2")])


async def _order_status(w: World) -> None:
    newer = app_order("o-1b", app_user("cache-1"), order_no="A-1", status=3, at="2026-11-21T10:00:00+08:00")
    await ingest(w.client, w.service, "APP", [newer])


async def _ingest_cart(w: World) -> None:
    await ingest(w.client, w.service, "APP", [cart("c-1", app_user("cache-1"), sku="B2", quantity=3)])


async def _ingest_event(w: World) -> None:
    await ingest(w.client, w.service, "APP", [event("e-1", app_user("cache-1"), name="page_view")])


async def _ingest_mutation(w: World) -> None:
    records = [app_order("o-3", app_user("cache-1"), order_no="A-3")]
    assert (await w.gql(INGEST, {"r": records}, token=w.service))["ingest"]["accepted"] == 1


def _consent(granted: bool, purpose: str = "PUSH") -> dict[str, Any]:
    return {"purpose": purpose, "channel": "APP", "granted": granted, "sourceChannel": "APP"}


async def _set_consent(w: World) -> None:
    await w.gql(SET_CONSENT, {"i": {**_consent(True), "userId": w.user_id}}, token=w.service)


async def _set_consents(w: World) -> None:
    both = [{**_consent(True), "userId": w.user_id}, {**_consent(True, "MARKETING"), "userId": w.user_id}]
    await w.gql(SET_CONSENTS, {"i": both}, token=w.service)


async def _grant_membership(w: World) -> None:
    await w.gql(GRANT_MEMBERSHIP, {"u": w.user_id}, token=w.service)


async def _revoke_membership(w: World) -> None:
    await w.gql(REVOKE_MEMBERSHIP, {"u": w.user_id}, token=w.service)


async def _adjust_points(w: World) -> None:
    await w.gql(ADJUST_POINTS, {"u": w.user_id}, token=w.service)


async def _grant_role(w: World) -> None:
    await w.gql(GRANT_ROLE, {"u": w.user_id}, token=w.admin)


async def _revoke_role(w: World) -> None:
    await w.gql(REVOKE_ROLE, {"u": w.user_id}, token=w.admin)


async def _wechat_login(w: World) -> None:
    """The person signs in to the mini program; WeChat's unionid joins its openid to them."""
    assert w.fake is not None
    unionid = w.fake.unionid("cache")
    assert unionid is not None
    await link(w.gql, w.admin, kind="UNIONID", value=unionid, user_id=w.user_id)
    session = await wechat_login(w.gql, "MINI_PROGRAM", "cache")
    assert session["user"]["id"] == w.user_id


async def _bind_phone_sms(w: World) -> None:
    assert w.caplog is not None
    code = await sms_code(w.gql, w.caplog, "13800139002", "138****9002")
    await w.gql(BIND_PHONE, {"phone": "13800139002", "sms": code}, token=user_token(w.app, w.user_id))


async def _bind_phone_wechat(w: World) -> None:
    await w.gql(BIND_PHONE, {"wx": "13800139003"}, token=user_token(w.app, w.user_id))


async def _bind_phone_recycled(w: World) -> None:
    """Someone else proves the person's old number: it leaves this view."""
    assert w.caplog is not None
    other = (await link(w.gql, w.admin, kind="APP_USER_ID", value="cache-2"))["user"]["id"]
    code = await sms_code(w.gql, w.caplog, "13800139001", "138****9001")
    await w.gql(BIND_PHONE, {"phone": "13800139001", "sms": code}, token=user_token(w.app, other))


async def _phone_login(w: World) -> None:
    """Signing in by SMS proves the phone the person held unproven."""
    assert w.caplog is not None
    code = await sms_code(w.gql, w.caplog, "13800139001", "138****9001")
    session = (await w.gql(PHONE_LOGIN, {"phone": "13800139001", "code": code}, token=None))["phoneLogin"]
    assert session["user"]["id"] == w.user_id


async def _follow(w: World) -> None:
    assert w.fake is not None
    s = w.app.state.settings
    [openid] = w.fake.follow("cache")
    await link(
        w.gql, w.admin, kind="OPENID", namespace=s.official_account_appid, value=openid, user_id=w.user_id
    )


async def _official_account_push(w: World) -> None:
    """A follower's menu click, pushed by WeChat, lands as behaviour once the inbox processed it."""
    assert w.fake is not None
    openid = w.fake.openid(w.app.state.settings.official_account_appid, "cache")
    response = await push(w.client, w.app.state.settings, event_xml(openid, "CLICK", EventKey="MENU_NEWS"))
    assert response.text == "success"
    await w.app.state.wechat_inbox.drain()


async def _alice_follows(w: World) -> None:
    """The user is alice, a follower who comments on the official account's articles."""
    assert w.fake is not None
    s = w.app.state.settings
    alice = w.fake.openid(s.official_account_appid, "alice")
    await link(
        w.gql, w.admin, kind="OPENID", namespace=s.official_account_appid, value=alice, user_id=w.user_id
    )


async def _pull_official_account(w: World) -> None:
    """The pull records her comments as behaviour."""
    from app.services.official_account import latest_served

    day = latest_served().isoformat()
    pull = "mutation ($d: String!) { pullOfficialAccountData(from: $d, to: $d) { days } }"
    await w.gql(pull, {"d": day}, token=w.admin)


async def _erase_user(w: World) -> None:
    """The person asks to be forgotten: their view is gone (a null), cached or not."""
    await w.gql(ERASE, {"u": w.user_id}, token=user_token(w.app, w.user_id))


# name -> (what to do before the view is cached, the change that must invalidate it)
CHANGES: dict[str, tuple[Change | None, Change]] = {
    "linkIdentity": (None, _link_identity),
    "linkIdentity (merge)": (None, _merge),
    "unlinkIdentity": (None, _unlink),
    "unmerge": (_merge, _unmerge),
    "POST /ingest order": (None, _ingest_order),
    "POST /ingest newer order status": (None, _order_status),
    "POST /ingest cart": (None, _ingest_cart),
    "POST /ingest event": (None, _ingest_event),
    "ingest mutation": (None, _ingest_mutation),
    "setConsent": (None, _set_consent),
    "setConsents": (None, _set_consents),
    "grantMembership": (None, _grant_membership),
    "revokeMembership": (_grant_membership, _revoke_membership),
    "adjustPoints": (None, _adjust_points),
    "grantRole": (None, _grant_role),
    "revokeRole": (_grant_role, _revoke_role),
    "wechatLogin": (None, _wechat_login),
    "bindPhone (SMS)": (None, _bind_phone_sms),
    "bindPhone (wechatPhoneCode)": (None, _bind_phone_wechat),
    "bindPhone (recycled from this user)": (None, _bind_phone_recycled),
    "phoneLogin": (None, _phone_login),
    "POST /wechat/official-account event": (_follow, _official_account_push),
    "eraseUser": (None, _erase_user),
    "pullOfficialAccountData": (_alice_follows, _pull_official_account),
}

# Mutations that change nothing any user's view shows, each with the reason; the test below
# proves the cached view survives them.
NO_USER_VIEW = {
    "requestPhoneCode": "sends an SMS code and keeps only its hash: nothing a user's view shows",
    "refreshSession": "sessions are not part of `User`",
    "revokeSession": "sessions are not part of `User`",
    "tagArticle": "article tags reach `User.interests` only, which is never cached for a user whose "
    "events name an article (tests/official_account/test_portrait.py)",
    "saveAudience": "audiences reach `User.audiences` only, which is never cached",
    "deleteAudience": "audiences reach `User.audiences` only, which is never cached",
    "sendCampaign": "a campaign and its deliveries are not part of `User`",
}


def test_every_mutation_has_an_invalidation_test() -> None:
    """A new mutation cannot ship without a proof that it invalidates what it changes."""
    mutation_type = build_schema(schema.as_str()).mutation_type
    assert mutation_type is not None
    mutations = set(mutation_type.fields)
    covered = {name.split(" ")[0] for name in CHANGES} | set(NO_USER_VIEW)
    assert mutations - covered == set(), "add a change to CHANGES for each new mutation"


async def world(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake: FakeWeChat | None = None,
    caplog: pytest.LogCaptureFixture | None = None,
) -> World:
    # Without pii_reader: an answer that shows a phone unmasked is never cached (test_pii.py).
    admin = await operator_key(app, "admin")
    service = await service_key(app, "APP")
    user_id = await new_user(gql, admin, phone="+8613800139001")
    await link(gql, admin, kind="APP_USER_ID", value="cache-1", user_id=user_id)
    await ingest(client, service, "APP", [app_order("o-1", app_user("cache-1"), order_no="A-1")])
    return World(app, client, gql, admin, service, user_id, fake, caplog)


async def cached_view(w: World) -> dict[str, Any]:
    """Read the view twice: the second answer must come from the cache (one version check)."""
    first = await w.gql(VIEW, {"id": w.user_id}, token=w.admin)
    hits = w.app.state.response_cache.hits
    with count_statements(w.app) as statements:
        second = await w.gql(VIEW, {"id": w.user_id}, token=w.admin)
    assert w.app.state.response_cache.hits == hits + 1
    # Nothing but the version check (on PostgreSQL it runs on its own asyncpg pool, unseen here).
    assert all("data_version" in s for s in statements), statements
    assert second == first
    return second


@pytest.mark.parametrize("name", list(CHANGES))
async def test_a_change_invalidates_the_cached_view(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    w = await world(app, client, gql, fake_wechat, caplog)
    prepare, change = CHANGES[name]
    if prepare is not None:
        await prepare(w)
    before = await cached_view(w)
    await change(w)
    after = await gql(VIEW, {"id": w.user_id}, token=w.admin)
    assert after != before, f"{name} left the cached answer in place"
    # What the cache now serves is what a cold read computes.
    cold_app = create_app(app.state.settings.model_copy(update={"response_cache_bytes": 0}))
    try:
        transport = httpx.ASGITransport(app=cold_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as cold:
            assert await Gql(cold)(VIEW, {"id": w.user_id}, token=w.admin) == after
    finally:
        await cold_app.state.db.dispose()
    if after["user"] is not None:  # an erased person has no view left to cache (nulls are not kept)
        assert await cached_view(w) == after


async def test_request_phone_code_leaves_the_cached_view_in_place(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    w = await world(app, client, gql)
    before = await cached_view(w)
    await sms_code(gql, caplog, "13800139001", "138****9001")
    assert await cached_view(w) == before


async def test_a_change_made_through_another_instance_invalidates_too(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, settings: Settings
) -> None:
    w = await world(app, client, gql)
    before = await cached_view(w)
    other = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as second:
            await ingest(second, w.service, "APP", [app_order("o-9", app_user("cache-1"), order_no="A-9")])
    finally:
        await other.state.db.dispose()
    after = await gql(VIEW, {"id": w.user_id}, token=w.admin)
    assert after["user"]["orders"]["totalCount"] == before["user"]["orders"]["totalCount"] + 1


async def test_a_change_recorded_for_a_user_merged_meanwhile_reaches_the_survivor(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    """A writer that looked up an owner before a merge committed still invalidates the survivor."""
    from app.services.changes import Topic, record_changes

    w = await world(app, client, gql)
    mp = app.state.settings.mini_program_appid
    absorbed = (await link(gql, w.admin, kind="OPENID", namespace=mp, value="o-late"))["user"]["id"]
    await link(gql, w.admin, kind="OPENID", namespace=mp, value="o-late", user_id=w.user_id)  # merge
    before = await cached_view(w)
    async with app.state.db.write_sessions() as session, session.begin():
        await record_changes(session, [(int(absorbed), Topic.ORDER)])
    hits = app.state.response_cache.hits
    assert await gql(VIEW, {"id": w.user_id}, token=w.admin) == before
    assert app.state.response_cache.hits == hits, "the survivor's cached view was invalidated"
    rows = await app.state.feed.read(0)
    assert {(r.user_id, r.topic) for r in rows[-2:]} == {(int(absorbed), "ORDER"), (int(w.user_id), "ORDER")}
