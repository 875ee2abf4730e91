"""Every resolver goes through auth: who may read, link and see phones."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import LINK, link, new_user
from tests.helpers import Gql
from tests.sql import count_statements

ME = "{ me { id phone identities { kind value } } }"
USER = "query ($id: ID!) { user(id: $id) { id phone identities { kind value } } }"
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"


async def test_no_credentials_is_unauthenticated(gql: Gql) -> None:
    error = await gql.error(ME, token=None, code="UNAUTHENTICATED")
    assert "Authorization" in error["message"]
    await gql.error(
        LINK, {"identity": {"kind": "APP_USER_ID", "value": "x"}}, token=None, code="UNAUTHENTICATED"
    )


async def test_bad_credentials_say_what_is_wrong(app: FastAPI, gql: Gql) -> None:
    unknown = await gql.error(ME, token="trk_op_not-a-real-key", code="UNAUTHENTICATED")
    assert "API key" in unknown["message"]
    expired = await gql.error(ME, token=user_token(app, 1, ttl_seconds=-10), code="UNAUTHENTICATED")
    assert "expired" in expired["message"]
    forged = await gql.error(ME, token="eyJhbGciOiJIUzI1NiJ9.e30.bad", code="UNAUTHENTICATED")
    assert "session token" in forged["message"]


async def test_end_user_sees_only_themselves(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    mine = await new_user(gql, admin, phone="+8613800138200")
    other = await new_user(gql, admin, phone="+8613800138201")
    token = user_token(app, mine)
    me = (await gql(ME, token=token))["me"]
    assert me["id"] == mine
    assert me["phone"] == "138****8200"
    assert (await gql(USER, {"id": mine}, token=token))["user"]["id"] == mine
    await gql.error(USER, {"id": other}, token=token, code="FORBIDDEN")
    await gql.error(USER, {"id": "987654"}, token=token, code="FORBIDDEN")
    await gql.error(
        LINK, {"identity": {"kind": "PHONE", "value": "+8613800138201"}}, token=token, code="FORBIDDEN"
    )


async def test_end_user_of_an_absorbed_id_is_the_survivor(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    older = await new_user(gql, admin, phone="+8613800138202")
    younger = (await link(gql, admin, kind="APP_USER_ID", value="A-202"))["user"]["id"]
    await link(gql, admin, kind="APP_USER_ID", value="A-202", user_id=older)
    token = user_token(app, younger)
    assert (await gql(ME, token=token))["me"]["id"] == older
    assert (await gql(USER, {"id": younger}, token=token))["user"]["id"] == older


async def test_operators_non_end_users_have_no_me(app: FastAPI, gql: Gql) -> None:
    assert (await gql(ME, token=await operator_key(app, "viewer")))["me"] is None


async def test_phones_are_masked_unless_the_caller_reads_pii(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613812345678")
    masked = (await gql(USER, {"id": user_id}, token=admin))["user"]
    assert masked["phone"] == "138****5678"
    assert masked["identities"] == [{"kind": "PHONE", "value": "138****5678"}]
    reader = await operator_key(app, "viewer", "pii_reader")
    clear = (await gql(USER, {"id": user_id}, token=reader))["user"]
    assert clear["phone"] == "+8613812345678"


async def test_viewer_reads_but_cannot_change_the_graph(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    user_id = await new_user(gql, admin, phone="+8613800138203")
    viewer = await operator_key(app, "viewer")
    assert (await gql(USER, {"id": user_id}, token=viewer))["user"]["id"] == user_id
    await gql.error(LINK, {"identity": {"kind": "APP_USER_ID", "value": "v"}}, token=viewer, code="FORBIDDEN")
    await gql.error(UNMERGE, {"id": "1"}, token=viewer, code="FORBIDDEN")
    pii_only = await operator_key(app, "pii_reader")
    await gql.error(USER, {"id": user_id}, token=pii_only, code="FORBIDDEN")


async def test_service_acts_within_its_channel(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    app_service = await service_key(app, "APP")
    mp_service = await service_key(app, "MINI_PROGRAM")
    # A service may link new identities; the user it creates holds an identity of its channel.
    app_user = (await link(gql, app_service, kind="APP_USER_ID", value="A-300"))["user"]["id"]
    assert (await gql(USER, {"id": app_user}, token=app_service))["user"]["id"] == app_user
    await gql.error(USER, {"id": app_user}, token=mp_service, code="FORBIDDEN")
    # Outside its channel it may not change a user...
    phone_only = await new_user(gql, admin, phone="+8613800138204")
    await gql.error(
        LINK,
        {"userId": phone_only, "identity": {"kind": "EXTERNAL", "namespace": "qq", "value": "q"}},
        token=app_service,
        code="FORBIDDEN",
    )
    # ...unless it links an identity of its own channel to that user.
    joined = await link(gql, app_service, kind="APP_USER_ID", value="A-301", user_id=phone_only)
    assert joined["user"]["id"] == phone_only
    await gql.error(UNMERGE, {"id": "1"}, token=app_service, code="FORBIDDEN")


async def test_end_users_do_not_see_the_history(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    mine = await new_user(gql, admin, phone="+8613800138205")
    await gql.error("{ me { identityHistory { action } } }", token=user_token(app, mine), code="FORBIDDEN")


async def test_live_keys_are_remembered_unknown_ones_are_not(app: FastAPI, gql: Gql) -> None:

    viewer = await operator_key(app, "viewer")
    with count_statements(app) as first:
        await gql(ME, token=viewer)
    with count_statements(app) as second:
        await gql(ME, token=viewer)
    assert (len(first), len(second)) == (1, 0), (first, second)
    for _ in range(2):
        with count_statements(app) as unknown:
            await gql.error(ME, token="trk_op_unknown", code="UNAUTHENTICATED")
        assert len(unknown) == 1
