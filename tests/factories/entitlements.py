"""Permission-center factories: consents, memberships and roles through the public mutations."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.factories.identity import link
from tests.helpers import Gql

SET_CONSENT = """
mutation ($input: ConsentInput!) {
  setConsent(input: $input) { id consents { purpose channel granted sourceChannel policyVersion } }
}
"""
SET_CONSENTS = """
mutation ($inputs: [ConsentInput!]!) {
  setConsents(inputs: $inputs) { id consents { purpose channel granted sourceChannel } }
}
"""
GRANT_MEMBERSHIP = """
mutation ($userId: ID!, $tier: String!, $source: Channel!, $expiresAt: DateTime) {
  grantMembership(userId: $userId, tier: $tier, sourceChannel: $source, expiresAt: $expiresAt) {
    id membership { tier sourceChannel since expiresAt points }
  }
}
"""
GRANT_ROLE = """
mutation ($userId: ID!, $role: String!, $scope: String) {
  grantRole(userId: $userId, role: $role, scope: $scope) { id roles { role scope permissions } }
}
"""


def consent_input(
    purpose: str,
    *,
    granted: bool,
    source: str,
    channel: str | None = None,
    user_id: str | None = None,
    policy_version: str | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {"purpose": purpose, "granted": granted, "sourceChannel": source}
    if channel is not None:
        value["channel"] = channel
    if user_id is not None:
        value["userId"] = user_id
    if policy_version is not None:
        value["policyVersion"] = policy_version
    return value


async def set_consent(gql: Gql, token: str, purpose: str, **kwargs: Any) -> dict[str, Any]:
    """Set one consent; returns the user's consents afterwards."""
    data = await gql(SET_CONSENT, {"input": consent_input(purpose, **kwargs)}, token=token)
    result: dict[str, Any] = data["setConsent"]
    return result


async def grant_membership(
    gql: Gql, token: str, *, user_id: str, tier: str, source: str, expires_at: str | None = None
) -> dict[str, Any]:
    variables = {"userId": user_id, "tier": tier, "source": source, "expiresAt": expires_at}
    result: dict[str, Any] = (await gql(GRANT_MEMBERSHIP, variables, token=token))["grantMembership"]
    return result


async def grant_role(gql: Gql, token: str, *, user_id: str, role: str, scope: str | None = None) -> None:
    await gql(GRANT_ROLE, {"userId": user_id, "role": role, "scope": scope}, token=token)


async def person(app: FastAPI, gql: Gql, *, n: int) -> str:
    """One person known in all three channels (two openids and an APP account); their user id."""
    s = app.state.settings
    admin = await operator_key(app, "operator")
    user_id: str = (await link(gql, admin, kind="APP_USER_ID", value=f"A-P{n}"))["user"]["id"]
    for appid in (s.mini_program_appid, s.official_account_appid):
        await link(gql, admin, kind="OPENID", namespace=appid, value=f"o-{appid[-2:]}-{n}", user_id=user_id)
    return user_id
