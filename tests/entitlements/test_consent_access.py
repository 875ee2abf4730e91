"""Who may set and read consents: the user their own, a service in its channel, operators read."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import SET_CONSENT, consent_input, person, set_consent
from tests.factories.identity import link, new_user
from tests.helpers import Gql

CONSENTS = "query ($id: ID!) { user(id: $id) { consents { purpose channel granted } } }"


async def test_no_credentials_is_unauthenticated(gql: Gql) -> None:
    value = consent_input("PUSH", granted=True, channel="APP", source="APP")
    await gql.error(SET_CONSENT, {"input": value}, token=None, code="UNAUTHENTICATED")


async def test_an_end_user_sets_only_their_own(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    mine = await new_user(gql, admin, phone="+8613800138320")
    other = await new_user(gql, admin, phone="+8613800138321")
    token = user_token(app, mine)
    own = await set_consent(gql, token, "PUSH", granted=True, channel="APP", source="APP", user_id=mine)
    assert own["id"] == mine
    for target in (other, "987654"):
        value = consent_input("PUSH", granted=True, channel="APP", source="APP", user_id=target)
        await gql.error(SET_CONSENT, {"input": value}, token=token, code="FORBIDDEN")
    assert (await gql(CONSENTS, {"id": other}, token=admin))["user"]["consents"] == []


async def test_an_absorbed_id_sets_the_survivor_s_consents(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    older = await new_user(gql, admin, phone="+8613800138322")
    younger = (await link(gql, admin, kind="APP_USER_ID", value="A-322"))["user"]["id"]
    await link(gql, admin, kind="APP_USER_ID", value="A-322", user_id=older)
    result = await set_consent(gql, user_token(app, younger), "LOCAL_STORAGE", granted=True, source="APP")
    assert result["id"] == older
    assert (await gql(CONSENTS, {"id": older}, token=admin))["user"]["consents"] == [
        {"purpose": "LOCAL_STORAGE", "channel": None, "granted": True}
    ]


async def test_a_service_sets_consents_of_users_in_its_channel_only(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    app_service = await service_key(app, "APP")
    in_app = (await link(gql, app_service, kind="APP_USER_ID", value="A-323"))["user"]["id"]
    outside = await new_user(gql, admin, phone="+8613800138323")
    await set_consent(gql, app_service, "PUSH", granted=True, channel="APP", source="APP", user_id=in_app)
    # It may record a setting for another channel's push, made in its own channel...
    await set_consent(
        gql, app_service, "PUSH", granted=True, channel="MINI_PROGRAM", source="APP", user_id=in_app
    )
    refused = [
        consent_input("PUSH", granted=True, channel="APP", source="APP", user_id=outside),
        # ...but not claim it was made in another channel.
        consent_input("PUSH", granted=True, channel="APP", source="MINI_PROGRAM", user_id=in_app),
    ]
    for value in refused:
        await gql.error(SET_CONSENT, {"input": value}, token=app_service, code="FORBIDDEN")
    await gql.error(CONSENTS, {"id": outside}, token=app_service, code="FORBIDDEN")
    no_user = consent_input("PUSH", granted=True, channel="APP", source="APP")
    await gql.error(SET_CONSENT, {"input": no_user}, token=app_service, code="BAD_USER_INPUT")
    unknown = consent_input("PUSH", granted=True, channel="APP", source="APP", user_id="987654")
    await gql.error(SET_CONSENT, {"input": unknown}, token=app_service, code="USER_NOT_FOUND")


async def test_operators_read_and_withdraw_but_never_grant(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=20)
    await set_consent(gql, user_token(app, user_id), "MARKETING", granted=True, source="APP")
    viewer = await operator_key(app, "viewer")
    assert len((await gql(CONSENTS, {"id": user_id}, token=viewer))["user"]["consents"]) == 3
    admin = await operator_key(app, "admin")
    grant = consent_input("PUSH", granted=True, channel="APP", source="APP", user_id=user_id)
    error = await gql.error(SET_CONSENT, {"input": grant}, token=admin, code="FORBIDDEN")
    assert "on a user's behalf" in error["message"]
    withdraw = consent_input("MARKETING", granted=False, source="OFFICIAL_ACCOUNT", user_id=user_id)
    await gql.error(SET_CONSENT, {"input": withdraw}, token=viewer, code="FORBIDDEN")
    await gql(SET_CONSENT, {"input": withdraw}, token=await operator_key(app, "operator"))
    consents = (await gql(CONSENTS, {"id": user_id}, token=viewer))["user"]["consents"]
    assert {c["granted"] for c in consents} == {False}
