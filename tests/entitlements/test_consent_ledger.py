"""The consent ledger: append-only, effective-dated, complete under concurrent writers."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import SET_CONSENT, consent_input, person, set_consent
from tests.factories.identity import new_user
from tests.helpers import Gql

HISTORY = """
query ($id: ID!, $purpose: Purpose) {
  user(id: $id) {
    consents { purpose channel granted }
    consentHistory(purpose: $purpose) {
      purpose channel granted sourceChannel policyVersion effectiveAt actor cause userId mergeId
    }
  }
}
"""
AT = "query ($id: ID!, $at: DateTime) { user(id: $id) { consents(at: $at) { purpose channel granted } } }"
RACERS = 8


def replay(history: list[dict[str, object]]) -> set[tuple[object, object, object]]:
    """The current settings a ledger implies: the latest entry per cell (None: cleared)."""
    latest: dict[tuple[object, object], object] = {}
    for entry in history:
        latest[(entry["purpose"], entry["channel"])] = entry["granted"]
    return {(p, c, g) for (p, c), g in latest.items() if g is not None}


async def test_every_change_is_an_entry_with_who_where_which_policy_and_when(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=10)
    oa_service = await service_key(app, "OFFICIAL_ACCOUNT")
    token = user_token(app, user_id)
    await set_consent(gql, token, "PUSH", granted=True, channel="APP", source="APP", policy_version="v1")
    await set_consent(
        gql,
        oa_service,
        "MARKETING",
        granted=False,
        channel="OFFICIAL_ACCOUNT",
        source="OFFICIAL_ACCOUNT",
        user_id=user_id,
        policy_version="v2",
    )
    history = (await gql(HISTORY, {"id": user_id}, token=await operator_key(app, "viewer")))["user"][
        "consentHistory"
    ]
    assert [(h["purpose"], h["channel"], h["granted"], h["cause"]) for h in history] == [
        ("PUSH", "APP", True, "set"),
        ("MARKETING", "MINI_PROGRAM", False, "cascade"),
        ("MARKETING", "OFFICIAL_ACCOUNT", False, "set"),
        ("MARKETING", "APP", False, "cascade"),
    ]
    first, *rest = history
    assert (first["actor"], first["sourceChannel"], first["policyVersion"]) == (
        f"user:{user_id}",
        "APP",
        "v1",
    )
    assert all(h["actor"].startswith("service:OFFICIAL_ACCOUNT:") for h in rest)
    assert {(h["sourceChannel"], h["policyVersion"], h["userId"], h["mergeId"]) for h in rest} == {
        ("OFFICIAL_ACCOUNT", "v2", user_id, None)
    }
    assert datetime.fromisoformat(first["effectiveAt"]) <= datetime.fromisoformat(rest[0]["effectiveAt"])
    only_push = (await gql(HISTORY, {"id": user_id, "purpose": "PUSH"}, token=token))["user"][
        "consentHistory"
    ]
    assert len(only_push) == 1


async def test_consents_at_a_past_moment_are_the_ones_then_in_force(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    user_id = await new_user(gql, admin, phone="+8613800138310")
    token = user_token(app, user_id)
    await set_consent(gql, token, "PERSONALIZATION", granted=True, source="APP")
    history = (await gql(HISTORY, {"id": user_id}, token=token))["user"]["consentHistory"]
    granted_at = history[0]["effectiveAt"]
    await asyncio.sleep(0.01)
    await set_consent(gql, token, "PERSONALIZATION", granted=False, source="MINI_PROGRAM")
    then = (await gql(AT, {"id": user_id, "at": granted_at}, token=token))["user"]["consents"]
    assert then == [{"purpose": "PERSONALIZATION", "channel": None, "granted": True}]
    now = (await gql(AT, {"id": user_id, "at": None}, token=token))["user"]["consents"]
    assert now == [{"purpose": "PERSONALIZATION", "channel": None, "granted": False}]
    before = (await gql(AT, {"id": user_id, "at": "2020-01-01T00:00:00Z"}, token=token))["user"]["consents"]
    assert before == []


async def test_the_ledger_refuses_updates_and_deletes(app: FastAPI, gql: Gql) -> None:
    token = user_token(app, await new_user(gql, await operator_key(app, "operator"), phone="+8613800138311"))
    await set_consent(gql, token, "LOCAL_STORAGE", granted=True, source="APP")
    for statement in ("UPDATE consent_entries SET granted = false", "DELETE FROM consent_entries"):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with app.state.db.write_sessions() as session, session.begin():
                await session.execute(text(statement))
    assert (await gql("{ me { consents { granted } } }", token=token))["me"]["consents"] == [
        {"granted": True}
    ]


async def test_concurrent_updates_leave_a_consistent_state_and_a_complete_ledger(
    app: FastAPI, gql: Gql
) -> None:
    user_id = await person(app, gql, n=11)
    token = user_token(app, user_id)
    pushes = [
        consent_input("PUSH", granted=n % 2 == 0, channel="APP", source="APP", policy_version=f"p{n}")
        for n in range(RACERS)
    ]
    marketing = [
        consent_input("MARKETING", granted=n % 2 == 0, channel=ch, source=ch)
        for n, ch in enumerate(["APP", "OFFICIAL_ACCOUNT", "MINI_PROGRAM", "APP"] * 2)
    ]
    results = await asyncio.gather(*(gql(SET_CONSENT, {"input": v}, token=token) for v in pushes + marketing))
    assert len(results) == len(pushes) + len(marketing)
    user = (await gql(HISTORY, {"id": user_id}, token=token))["user"]
    history = user["consentHistory"]
    push_entries = [h for h in history if h["purpose"] == "PUSH"]
    assert sorted(h["policyVersion"] for h in push_entries) == sorted(f"p{n}" for n in range(RACERS))
    withdrawals = sum(1 for v in marketing if not v["granted"])
    grants = len(marketing) - withdrawals
    assert sum(1 for h in history if h["purpose"] == "MARKETING") == grants + 3 * withdrawals
    current = {(c["purpose"], c["channel"], c["granted"]) for c in user["consents"]}
    assert current == replay(history)
    assert len([c for c in current if c[0] == "PUSH"]) == 1
    times = [datetime.fromisoformat(h["effectiveAt"]) for h in history]
    assert times == sorted(times)
