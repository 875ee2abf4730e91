"""Consent rules: default deny, PUSH per channel, MARKETING withdrawn everywhere, global purposes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import SET_CONSENT, SET_CONSENTS, consent_input, person, set_consent
from tests.factories.identity import new_user
from tests.helpers import Gql

ALLOWS = """
query ($id: ID!) {
  user(id: $id) {
    consents { purpose channel granted sourceChannel policyVersion updatedAt }
    mpPush: allows(purpose: PUSH, channel: MINI_PROGRAM)
    appPush: allows(purpose: PUSH, channel: APP)
    mpMarketing: allows(purpose: MARKETING, channel: MINI_PROGRAM)
    oaMarketing: allows(purpose: MARKETING, channel: OFFICIAL_ACCOUNT)
    appMarketing: allows(purpose: MARKETING, channel: APP)
    mpLocation: allows(purpose: LOCATION, channel: MINI_PROGRAM)
    appLocation: allows(purpose: LOCATION, channel: APP)
    oaPersonalization: allows(purpose: PERSONALIZATION, channel: OFFICIAL_ACCOUNT)
    appStorage: allows(purpose: LOCAL_STORAGE, channel: APP)
  }
}
"""
ALLOWED = ("mpPush", "appPush", "mpMarketing", "oaMarketing", "appMarketing", "mpLocation", "appLocation")


async def read(gql: Gql, token: str, user_id: str) -> dict[str, Any]:
    user: dict[str, Any] = (await gql(ALLOWS, {"id": user_id}, token=token))["user"]
    return user


async def test_default_is_deny_everywhere(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=1)
    user = await read(gql, await operator_key(app, "viewer"), user_id)
    assert user["consents"] == []
    assert not any(user[k] for k in (*ALLOWED, "oaPersonalization", "appStorage"))


async def test_marketing_refused_in_the_official_account_is_refused_in_app_and_mini_program(
    app: FastAPI, gql: Gql
) -> None:
    user_id = await person(app, gql, n=2)
    app_service = await service_key(app, "APP")
    mp_service = await service_key(app, "MINI_PROGRAM")
    oa_service = await service_key(app, "OFFICIAL_ACCOUNT")
    await set_consent(
        gql, app_service, "MARKETING", granted=True, channel="APP", source="APP", user_id=user_id
    )
    await set_consent(
        gql,
        mp_service,
        "MARKETING",
        granted=True,
        channel="MINI_PROGRAM",
        source="MINI_PROGRAM",
        user_id=user_id,
    )
    before = await read(gql, app_service, user_id)
    assert (before["appMarketing"], before["mpMarketing"], before["oaMarketing"]) == (True, True, False)

    await set_consent(
        gql,
        oa_service,
        "MARKETING",
        granted=False,
        channel="OFFICIAL_ACCOUNT",
        source="OFFICIAL_ACCOUNT",
        user_id=user_id,
    )
    for token in (app_service, mp_service):
        after = await read(gql, token, user_id)
        assert (after["appMarketing"], after["mpMarketing"], after["oaMarketing"]) == (False, False, False)
    marketing = [c for c in after["consents"] if c["purpose"] == "MARKETING"]
    assert {(c["channel"], c["granted"], c["sourceChannel"]) for c in marketing} == {
        ("MINI_PROGRAM", False, "OFFICIAL_ACCOUNT"),
        ("OFFICIAL_ACCOUNT", False, "OFFICIAL_ACCOUNT"),
        ("APP", False, "OFFICIAL_ACCOUNT"),
    }


async def test_granting_marketing_again_is_explicit_per_channel(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    user_id = await new_user(gql, admin, phone="+8613800138301")
    token = user_token(app, user_id)
    await set_consent(gql, token, "MARKETING", granted=True, source="APP")  # every channel
    assert (await read(gql, admin, user_id))["oaMarketing"] is True
    await set_consent(gql, token, "MARKETING", granted=False, channel="MINI_PROGRAM", source="MINI_PROGRAM")
    await set_consent(gql, token, "MARKETING", granted=True, channel="APP", source="APP")
    user = await read(gql, admin, user_id)
    assert (user["appMarketing"], user["mpMarketing"], user["oaMarketing"]) == (True, False, False)


async def test_push_refused_in_the_app_stays_allowed_in_the_mini_program(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=3)
    token = user_token(app, user_id)
    await set_consent(gql, token, "PUSH", granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM")
    await set_consent(gql, token, "PUSH", granted=True, channel="APP", source="APP")
    await set_consent(gql, token, "PUSH", granted=False, channel="APP", source="APP")
    user = await read(gql, await service_key(app, "MINI_PROGRAM"), user_id)
    assert (user["mpPush"], user["appPush"]) == (True, False)


async def test_location_refused_in_the_app_is_known_to_the_mini_program(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=4)
    app_service = await service_key(app, "APP")
    await set_consent(
        gql, app_service, "LOCATION", granted=False, source="APP", user_id=user_id, policy_version="2026-11"
    )
    user = await read(gql, await service_key(app, "MINI_PROGRAM"), user_id)
    assert user["mpLocation"] is False
    [location] = user["consents"]
    assert location["purpose"] == "LOCATION"
    assert location["channel"] is None
    assert (location["granted"], location["sourceChannel"], location["policyVersion"]) == (
        False,
        "APP",
        "2026-11",
    )


async def test_settings_for_every_channel_hold_in_every_channel(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=5)
    token = user_token(app, user_id)
    await set_consent(gql, token, "LOCATION", granted=True, source="MINI_PROGRAM")
    await set_consent(gql, token, "PERSONALIZATION", granted=True, source="MINI_PROGRAM")
    await set_consent(gql, token, "LOCAL_STORAGE", granted=True, source="OFFICIAL_ACCOUNT")
    user = await read(gql, token, user_id)
    assert (user["appLocation"], user["oaPersonalization"], user["appStorage"]) == (True, True, True)


async def test_invalid_combinations_have_their_own_codes(app: FastAPI, gql: Gql) -> None:
    token = user_token(app, await new_user(gql, await operator_key(app, "operator"), phone="+8613800138302"))
    cases = [
        (consent_input("PUSH", granted=True, source="APP"), "CONSENT_CHANNEL_REQUIRED"),
        (consent_input("LOCATION", granted=True, channel="APP", source="APP"), "CONSENT_CHANNEL_NOT_ALLOWED"),
        (
            consent_input("LOCAL_STORAGE", granted=False, channel="APP", source="APP"),
            "CONSENT_CHANNEL_NOT_ALLOWED",
        ),
        (
            consent_input("PUSH", granted=True, channel="APP", source="APP", policy_version=" "),
            "BAD_USER_INPUT",
        ),
        (
            consent_input("PUSH", granted=True, channel="APP", source="APP", policy_version="v" * 33),
            "BAD_USER_INPUT",
        ),
    ]
    for value, code in cases:
        error = await gql.error(SET_CONSENT, {"input": value}, token=token, code=code)
        assert error["message"]
    assert (await gql("{ me { consents { purpose } } }", token=token))["me"]["consents"] == []


async def test_location_is_granted_only_on_its_own(app: FastAPI, gql: Gql) -> None:
    token = user_token(app, await new_user(gql, await operator_key(app, "operator"), phone="+8613800138303"))
    together = [
        consent_input("PERSONALIZATION", granted=True, source="APP"),
        consent_input("LOCATION", granted=True, source="APP"),
    ]
    error = await gql.error(SET_CONSENTS, {"inputs": together}, token=token, code="SEPARATE_CONSENT_REQUIRED")
    assert "LOCATION" in error["message"]
    assert (await gql("{ me { consents { purpose } } }", token=token))["me"]["consents"] == []
    alone = (await gql(SET_CONSENTS, {"inputs": together[1:]}, token=token))["setConsents"]
    assert [c["purpose"] for c in alone["consents"]] == ["LOCATION"]
    # Withdrawing it with others, or granting the others together, is fine.
    prompt = [
        consent_input("LOCATION", granted=False, source="APP"),
        consent_input("PUSH", granted=True, channel="APP", source="APP"),
        consent_input("PERSONALIZATION", granted=True, source="APP"),
    ]
    answered = (await gql(SET_CONSENTS, {"inputs": prompt}, token=token))["setConsents"]["consents"]
    assert {(c["purpose"], c["granted"]) for c in answered} == {
        ("LOCATION", False),
        ("PUSH", True),
        ("PERSONALIZATION", True),
    }


async def test_a_call_sets_each_cell_once_for_one_user(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    token = user_token(app, await new_user(gql, admin, phone="+8613800138304"))
    twice = [
        consent_input("MARKETING", granted=False, channel="APP", source="APP"),
        consent_input("MARKETING", granted=True, channel="MINI_PROGRAM", source="APP"),
    ]
    await gql.error(SET_CONSENTS, {"inputs": twice}, token=token, code="BAD_USER_INPUT")
    await gql.error(SET_CONSENTS, {"inputs": []}, token=token, code="BAD_USER_INPUT")
    other = await new_user(gql, admin, phone="+8613800138305")
    service = await service_key(app, "APP")
    two_users = [
        consent_input("LOCAL_STORAGE", granted=False, source="APP", user_id=other),
        consent_input("PERSONALIZATION", granted=False, source="APP", user_id="1"),
    ]
    await gql.error(SET_CONSENTS, {"inputs": two_users}, token=service, code="BAD_USER_INPUT")
