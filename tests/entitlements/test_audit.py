"""The audit log: every permission change leaves an append-only entry that admins read."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import grant_membership, grant_role, set_consent
from tests.factories.identity import link, new_user
from tests.helpers import Gql

AUDIT = """
query ($first: Int!, $after: String, $userId: ID, $action: String) {
  auditLog(first: $first, after: $after, userId: $userId, action: $action) {
    nodes { id at actor principalKind action userId details }
    pageInfo { hasNextPage endCursor }
  }
}
"""
REVOKE_ROLE = 'mutation ($id: ID!) { revokeRole(userId: $id, role: "customer_service") { id } }'
REVOKE_MEMBERSHIP = "mutation ($id: ID!) { revokeMembership(userId: $id, sourceChannel: APP) { id } }"
POINTS = """
mutation ($id: ID!) { adjustPoints(userId: $id, points: 5, reason: "signup", sourceChannel: APP) { id } }
"""


async def test_every_change_of_the_permission_center_is_audited(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    older = await new_user(gql, admin, phone="+8613800138390")
    younger = (await link(gql, admin, kind="APP_USER_ID", value="A-39"))["user"]["id"]
    app_service = await service_key(app, "APP")
    await set_consent(gql, user_token(app, older), "PUSH", granted=True, channel="APP", source="APP")
    await set_consent(gql, user_token(app, younger), "PUSH", granted=False, channel="APP", source="APP")
    await grant_membership(gql, app_service, user_id=younger, tier="GOLD", source="APP")
    await gql(POINTS, {"id": younger}, token=app_service)
    await gql(REVOKE_MEMBERSHIP, {"id": younger}, token=app_service)
    await grant_role(gql, admin, user_id=older, role="customer_service")
    await gql(REVOKE_ROLE, {"id": older}, token=admin)
    await link(gql, admin, kind="APP_USER_ID", value="A-39", user_id=older)  # merge: stricter PUSH
    entries = (await gql(AUDIT, {"first": 50}, token=admin))["auditLog"]["nodes"]
    # Identity changes and key creations are audited too (tests/identity/test_audit.py).
    entries = [e for e in entries if e["action"].split(".")[0] not in ("identity", "key")]
    assert [(e["action"], e["userId"]) for e in reversed(entries)] == [
        ("consent.set", older),
        ("consent.set", younger),
        ("membership.grant", younger),
        ("points.adjust", younger),
        ("membership.revoke", younger),
        ("role.grant", older),
        ("role.revoke", older),
        ("consent.merge", older),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["consent.set"]["principalKind"] == "user"
    assert by_action["membership.grant"]["actor"].startswith("service:APP:")
    assert by_action["membership.grant"]["details"]["tier"] == "GOLD"
    assert by_action["role.grant"]["principalKind"] == "operator"
    assert by_action["role.grant"]["details"] == {"role": "customer_service", "scope": None}
    merge = by_action["consent.merge"]["details"]
    assert merge["absorbedId"] == int(younger)
    assert merge["entries"] == [
        {
            "purpose": "PUSH",
            "channel": "APP",
            "granted": False,
            "sourceChannel": "APP",
            "policyVersion": None,
            "cause": "merge",
        }
    ]


async def test_the_log_pages_newest_first_and_filters(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    first_user = await new_user(gql, admin, phone="+8613800138391")
    second_user = await new_user(gql, admin, phone="+8613800138392")
    for user_id in (first_user, second_user, first_user):
        await set_consent(gql, user_token(app, user_id), "LOCAL_STORAGE", granted=True, source="APP")
    await grant_role(gql, admin, user_id=second_user, role="customer_service")
    page = (await gql(AUDIT, {"first": 3}, token=admin))["auditLog"]
    assert [e["action"] for e in page["nodes"]] == ["role.grant", "consent.set", "consent.set"]
    assert page["pageInfo"]["hasNextPage"] is True
    after = page["pageInfo"]["endCursor"]
    rest = (await gql(AUDIT, {"first": 4, "after": after}, token=admin))["auditLog"]
    assert [(e["action"], e["userId"]) for e in rest["nodes"]] == [
        ("consent.set", first_user),
        ("identity.link", second_user),
        ("identity.link", first_user),
        ("key.create", None),
    ]
    assert rest["pageInfo"]["hasNextPage"] is False
    mine = (await gql(AUDIT, {"first": 10, "userId": first_user}, token=admin))["auditLog"]["nodes"]
    assert [e["action"] for e in mine] == ["consent.set", "consent.set", "identity.link"]
    consents = (await gql(AUDIT, {"first": 10, "action": "consent.*"}, token=admin))["auditLog"]["nodes"]
    assert len(consents) == 3
    roles = (await gql(AUDIT, {"first": 10, "action": "role.grant"}, token=admin))["auditLog"]["nodes"]
    assert [e["userId"] for e in roles] == [second_user]
    await gql.error(AUDIT, {"first": 101}, token=admin, code="BAD_USER_INPUT")
    await gql.error(AUDIT, {"first": 1, "after": "x"}, token=admin, code="BAD_USER_INPUT")


async def test_only_admins_read_the_log(app: FastAPI, gql: Gql) -> None:
    await gql.error(AUDIT, {"first": 1}, token=None, code="UNAUTHENTICATED")
    user_id = await new_user(gql, await operator_key(app, "operator"), phone="+8613800138393")
    for token in (
        await operator_key(app, "operator", "pii_reader"),
        await service_key(app, "APP"),
        user_token(app, user_id),
    ):
        await gql.error(AUDIT, {"first": 1}, token=token, code="FORBIDDEN")


async def test_the_log_refuses_updates_and_deletes(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613800138394")
    await grant_role(gql, admin, user_id=user_id, role="customer_service")
    await gql(POINTS, {"id": user_id}, token=admin)
    for statement in (
        "UPDATE audit_log SET actor = 'nobody'",
        "DELETE FROM audit_log",
        "UPDATE points_entries SET delta = 1000",
        "DELETE FROM points_entries",
    ):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with app.state.db.write_sessions() as session, session.begin():
                await session.execute(text(statement))
    entries = (await gql(AUDIT, {"first": 10}, token=admin))["auditLog"]["nodes"]
    assert len(entries) == 4  # the key, the link, the role, the points
    assert all(e["actor"] != "nobody" for e in entries)
