"""Merges keep the stricter consent per (purpose, channel); unmerge gives each side its own."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tests.factories.auth import operator_key, user_token
from tests.factories.entitlements import set_consent
from tests.factories.identity import link, new_user
from tests.helpers import Gql

CONSENTS = """
query ($id: ID!) {
  user(id: $id) {
    id consents { purpose channel granted sourceChannel }
    consentHistory { cause userId mergeId granted purpose channel }
  }
}
"""
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"


def settings(user: dict[str, Any]) -> set[tuple[str, str | None, bool]]:
    return {(c["purpose"], c["channel"], c["granted"]) for c in user["consents"]}


async def two_people(app: FastAPI, gql: Gql, n: int) -> tuple[str, str, str]:
    """An older user (a phone) and a younger one (an APP account): ids and an operator key."""
    admin = await operator_key(app, "operator")
    older = await new_user(gql, admin, phone=f"+86138001384{n:02d}")
    younger = (await link(gql, admin, kind="APP_USER_ID", value=f"A-4{n:02d}"))["user"]["id"]
    return older, younger, admin


async def merge(gql: Gql, admin: str, older: str, n: int) -> str:
    merged = await link(gql, admin, kind="APP_USER_ID", value=f"A-4{n:02d}", user_id=older)
    merge_id: str = merged["merge"]["id"]
    return merge_id


async def test_a_merge_keeps_the_stricter_value(app: FastAPI, gql: Gql) -> None:
    older, younger, admin = await two_people(app, gql, 1)
    old, young = user_token(app, older), user_token(app, younger)
    await set_consent(gql, old, "MARKETING", granted=True, channel="APP", source="APP")
    await set_consent(gql, old, "PUSH", granted=False, channel="APP", source="APP")
    await set_consent(gql, young, "MARKETING", granted=False, channel="APP", source="APP")
    await set_consent(gql, young, "PUSH", granted=True, channel="APP", source="APP")
    await set_consent(gql, young, "PERSONALIZATION", granted=True, source="MINI_PROGRAM")
    await merge(gql, admin, older, 1)
    user = (await gql(CONSENTS, {"id": older}, token=admin))["user"]
    assert settings(user) == {
        ("MARKETING", "MINI_PROGRAM", False),
        ("MARKETING", "OFFICIAL_ACCOUNT", False),
        ("MARKETING", "APP", False),  # withdrawn by the younger: stricter than the older's grant
        ("PUSH", "APP", False),  # withdrawn by the older: the younger's grant does not win
        ("PERSONALIZATION", None, True),  # answered by the younger only: the same person answered
    }
    merge_entries = [h for h in user["consentHistory"] if h["cause"] == "merge"]
    assert {(h["purpose"], h["channel"], h["userId"]) for h in merge_entries} == {
        ("MARKETING", "APP", older),
        ("MARKETING", "MINI_PROGRAM", older),
        ("MARKETING", "OFFICIAL_ACCOUNT", older),
        ("PERSONALIZATION", None, older),
    }
    # The ledger of the absorbed user is part of the history, untouched.
    assert {h["userId"] for h in user["consentHistory"]} == {older, younger}


async def test_after_a_merge_the_person_s_later_choice_holds(app: FastAPI, gql: Gql) -> None:
    older, younger, admin = await two_people(app, gql, 2)
    await set_consent(gql, user_token(app, older), "LOCATION", granted=True, source="APP")
    await set_consent(gql, user_token(app, younger), "LOCATION", granted=False, source="MINI_PROGRAM")
    await merge(gql, admin, older, 2)
    assert settings((await gql(CONSENTS, {"id": older}, token=admin))["user"]) == {("LOCATION", None, False)}
    await set_consent(gql, user_token(app, younger), "LOCATION", granted=True, source="MINI_PROGRAM")
    assert settings((await gql(CONSENTS, {"id": older}, token=admin))["user"]) == {("LOCATION", None, True)}


async def test_unmerge_restores_each_side_s_own_values(app: FastAPI, gql: Gql) -> None:
    older, younger, admin = await two_people(app, gql, 3)
    old, young = user_token(app, older), user_token(app, younger)
    await set_consent(gql, old, "MARKETING", granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM")
    await set_consent(gql, young, "MARKETING", granted=False, channel="APP", source="APP")
    await set_consent(gql, young, "LOCAL_STORAGE", granted=True, source="APP")
    older_before = settings((await gql(CONSENTS, {"id": older}, token=admin))["user"])
    younger_before = settings((await gql(CONSENTS, {"id": younger}, token=admin))["user"])
    merge_id = await merge(gql, admin, older, 3)
    # A choice made after the merge stays with the survivor, as identities linked after it do.
    await set_consent(gql, old, "PUSH", granted=True, channel="APP", source="APP")
    await gql(UNMERGE, {"id": merge_id}, token=admin)
    older_after = (await gql(CONSENTS, {"id": older}, token=admin))["user"]
    assert settings(older_after) == older_before | {("PUSH", "APP", True)}
    assert settings((await gql(CONSENTS, {"id": younger}, token=admin))["user"]) == younger_before
    restored = [h for h in older_after["consentHistory"] if h["cause"] == "unmerge"]
    assert {h["mergeId"] for h in restored} == {merge_id}
    # LOCAL_STORAGE came from the younger only: the older has no setting again (not a refusal).
    assert ("LOCAL_STORAGE", None, None) in {(h["purpose"], h["channel"], h["granted"]) for h in restored}


async def test_unmerge_of_an_earlier_merge_in_a_chain(app: FastAPI, gql: Gql) -> None:
    older, younger, admin = await two_people(app, gql, 4)
    await set_consent(gql, user_token(app, younger), "PERSONALIZATION", granted=False, source="APP")
    first = await merge(gql, admin, older, 4)
    third = (await link(gql, admin, kind="EXTERNAL", namespace="qq", value="q-404"))["user"]["id"]
    await set_consent(gql, user_token(app, third), "PUSH", granted=True, channel="APP", source="APP")
    await link(gql, admin, kind="EXTERNAL", namespace="qq", value="q-404", user_id=older)
    assert settings((await gql(CONSENTS, {"id": older}, token=admin))["user"]) == {
        ("PERSONALIZATION", None, False),
        ("PUSH", "APP", True),
    }
    await gql(UNMERGE, {"id": first}, token=admin)
    assert settings((await gql(CONSENTS, {"id": older}, token=admin))["user"]) == {("PUSH", "APP", True)}
    assert settings((await gql(CONSENTS, {"id": younger}, token=admin))["user"]) == {
        ("PERSONALIZATION", None, False)
    }
