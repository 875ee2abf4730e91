"""eraseUser: the person gone from every store (a channel store in its own database too), the
consent ledger's proof kept anonymised, the change published, and their identities free again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.pii import PHONE
from app.sealing import keyring_for
from app.wechat.fake import FakeWeChat
from tests.channel_data.test_separate_store import app_store_url  # noqa: F401  (a fixture)
from tests.conftest import settings_for
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.pii import everything
from tests.factories.wechat import BIND_PHONE, wechat_login
from tests.helpers import Gql
from tests.pii.raw import dump, places

ERASE = """
mutation ($id: ID!) {
  eraseUser(userId: $id) { userId erasedUserIds at removed { store table rows } kept { store table rows } }
}
"""
USER = "query ($id: ID!) { user(id: $id) { id } }"
EXPORT = "query ($id: ID!) { exportUser(userId: $id) }"
AUDIT = '{ auditLog(first: 5, action: "user.erase") { nodes { userId actor details traceId } } }'
ORDERS = "query ($id: ID!) { user(id: $id) { id identities { kind } orders { nodes { sourceId } } } }"
BY_IDENTITY = """
query ($kind: IdentityKind!, $v: String!) {
  user(identity: {kind: $kind, value: $v}) { id orders { nodes { sourceId } } }
}
"""
CHANNEL_TABLES = (
    "ch_orders",
    "ch_reservations",
    "ch_cart_items",
    "ch_events",
    "ch_records",
    "ch_dead_letters",
)


@pytest.fixture
async def split(
    fake_wechat_server: Any,
    database_url: str,
    app_store_url: str,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with the APP channel store in a database of its own."""
    settings = settings_for(database_url, tmp_path / "var", wechat_url=fake_wechat_server[1])
    app = create_app(settings.model_copy(update={"app_database_url": app_store_url}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield app, client
    finally:
        await app.state.db.dispose()


def by_table(counts: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {(c["store"], c["table"]): c["rows"] for c in counts}


async def test_erasure_reaches_every_store_and_keeps_the_consent_proof(
    split: tuple[FastAPI, httpx.AsyncClient],
    database_url: str,
    app_store_url: str,  # noqa: F811
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = split
    gql = Gql(client)
    p = await everything(app, client, gql, fake_wechat, caplog, name="gone", national="13800138501")
    kept = await everything(app, client, gql, fake_wechat, caplog, name="stays", national="13800138502")
    hub_before, store_before = await dump(database_url), await dump(app_store_url)
    consent_rows = [
        r for r in hub_before["consent_entries"] if str(r["user_id"]) in (p.user_id, p.absorbed_id)
    ]

    report = (await gql(ERASE, {"id": p.absorbed_id}, token=p.admin))["eraseUser"]  # any id of the person
    assert report["userId"] == p.user_id
    assert report["erasedUserIds"] == [p.user_id, p.absorbed_id]
    removed, kept_rows = by_table(report["removed"]), by_table(report["kept"])
    assert removed[("APP", "ch_orders")] == 3  # the phone's, the account's, the unlinked account's
    assert removed[("APP", "ch_reservations")] == 1
    assert removed[("APP", "ch_cart_items")] == 1
    assert removed[("APP", "ch_events")] == 1
    assert removed[("APP", "ch_records")] == 6
    assert removed[("APP", "ch_dead_letters")] == 1
    assert removed[("hub", "ch_orders")] == 1  # the mini program store shares the hub's database
    assert removed[("hub", "ch_events")] == 1  # the official account's menu click
    assert removed[("hub", "identities")] == 5  # MP openid, unionid, APP account, phone, OA openid
    for table in (
        "identity_edges",
        "memberships",
        "points_entries",
        "role_grants",
        "phone_codes",
        "refresh_tokens",
    ):
        assert removed[("hub", table)] > 0, table
    assert removed[("hub", "wechat_sessions")] == 1
    assert removed[("hub", "wechat_inbox")] == 1
    assert kept_rows == {
        ("hub", "users"): 2,
        ("hub", "consent_entries"): len(consent_rows),
        ("hub", "merges"): 1,
    }

    # The stores, read raw: nothing of the person's in either database, the other person intact.
    hub, store = await dump(database_url), await dump(app_store_url)
    ids = {int(p.user_id), int(p.absorbed_id)}
    phone_index = keyring_for(app.state.settings).index(p.phone, purpose=PHONE)
    markers = ("gone-", p.mp_openid, p.oa_openid, phone_index)
    for name in ("identities", "identity_edges", "memberships", "points_entries", "role_grants"):
        assert not [r for r in hub[name] if r["user_id"] in ids], name
    for tables, before in ((hub, hub_before), (store, store_before)):
        for name in CHANNEL_TABLES:
            theirs = [r for r in before[name] if any(m in str(r) for m in markers)]
            assert [r for r in tables[name] if r not in theirs] == [
                r for r in before[name] if r not in theirs
            ]
            assert [r for r in tables[name] if r in theirs] == [], name
    assert store_before["ch_orders"]
    assert hub_before["ch_orders"]
    assert {o["order_id"] for o in store["ch_orders"]} == {"stays-A0", "stays-A1", "stays-A2"}
    assert places(hub, "gone-app") == []
    assert places(hub, p.mp_openid) == []
    assert hub["wechat_sessions"] == [s for s in hub_before["wechat_sessions"] if s["openid"] != p.mp_openid]
    # What stays: the tombstones, the consent ledger untouched (its triggers allow no change), the
    # merge with its reason erased, the audit log naming user ids only.
    assert {u["id"] for u in hub["users"] if u["erased_at"] is not None} == ids
    assert [r for r in hub["consent_entries"] if r["user_id"] in ids] == consent_rows
    assert [m["reason"] for m in hub["merges"] if m["survivor_id"] in ids] == ["erased"]
    assert all(r["user_id"] not in ids for r in hub["identities"])

    # The API: nobody there; the change published; the erasure audited.
    for user_id in (p.user_id, p.absorbed_id):
        assert (await gql(USER, {"id": user_id}, token=p.admin))["user"] is None
    await gql.error(EXPORT, {"id": p.user_id}, token=p.admin, code="USER_NOT_FOUND")
    await gql.error(ERASE, {"id": p.user_id}, token=p.admin, code="USER_NOT_FOUND")
    changes = await app.state.feed.read(0)
    assert {(c.user_id, c.topic) for c in changes if c.topic == "ERASURE"} == {(i, "ERASURE") for i in ids}
    [entry] = (await gql(AUDIT, token=p.admin))["auditLog"]["nodes"]
    assert entry["userId"] == p.user_id
    assert entry["details"]["userIds"] == sorted(ids)
    assert entry["details"]["removed"]["APP.ch_orders"] == 3
    assert entry["traceId"]
    assert (await gql(ORDERS, {"id": kept.user_id}, token=kept.admin))["user"]["orders"]["nodes"]


async def test_erased_identities_sign_up_again_as_new_users(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = await everything(app, client, gql, fake_wechat, caplog, name="again", national="13800138503")
    await gql(ERASE, {"id": p.user_id}, token=p.token)  # the person themselves
    old = {p.user_id, p.absorbed_id}
    # The same mini program account signs in: a new person, with nothing of the old one's.
    session = await wechat_login(gql, "MINI_PROGRAM", "again:2")
    new_id = session["user"]["id"]
    assert new_id not in old
    fresh = (await gql(ORDERS, {"id": new_id}, token=p.admin))["user"]
    assert sorted(i["kind"] for i in fresh["identities"]) == ["OPENID", "UNIONID"]
    assert fresh["orders"]["nodes"] == []
    # The same phone and APP account are free too: they link, and their new records follow them.
    await gql(BIND_PHONE, {"wx": "13800138503"}, token=session["token"])
    await ingest(client, p.app_service, "APP", [app_order("again-new", app_user(p.account), order_no="N-1")])
    by_account = (await gql(BY_IDENTITY, {"kind": "APP_USER_ID", "v": p.account}, token=p.admin))["user"]
    assert by_account["id"] not in old
    assert [o["sourceId"] for o in by_account["orders"]["nodes"]] == ["N-1"]
    phone_holder = (await gql(BY_IDENTITY, {"kind": "PHONE", "v": "13800138503"}, token=p.admin))["user"]
    assert phone_holder["id"] == new_id
    assert phone_holder["orders"]["nodes"] == []  # the old person's phone orders were erased
