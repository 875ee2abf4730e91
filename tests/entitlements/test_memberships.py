"""Memberships and points: opened in one channel, valid in all; the highest active tier holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import GRANT_MEMBERSHIP, grant_membership, person
from tests.factories.identity import link, new_user
from tests.helpers import Gql

MEMBERSHIP = """
query ($id: ID!) {
  user(id: $id) {
    membership { tier points since expiresAt sourceChannel }
    benefits { code name }
    points
  }
}
"""
ME = "{ me { membership { tier sourceChannel } benefits { code } } }"
REVOKE = """
mutation ($userId: ID!, $source: Channel!) {
  revokeMembership(userId: $userId, sourceChannel: $source, reason: "refund") { membership { tier } }
}
"""
POINTS = """
mutation ($userId: ID!, $points: Int!, $source: Channel!) {
  adjustPoints(userId: $userId, points: $points, reason: "order A-1", sourceChannel: $source) { points }
}
"""
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id } }"


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def test_a_membership_opened_in_the_app_is_seen_by_the_mini_program(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=30)
    granted = await grant_membership(
        gql, await service_key(app, "APP"), user_id=user_id, tier="PLATINUM", source="APP"
    )
    assert granted["membership"]["tier"] == "PLATINUM"
    seen = (await gql(MEMBERSHIP, {"id": user_id}, token=await service_key(app, "MINI_PROGRAM")))["user"]
    assert (seen["membership"]["tier"], seen["membership"]["sourceChannel"]) == ("PLATINUM", "APP")
    assert seen["membership"]["expiresAt"] is None
    assert [b["code"] for b in seen["benefits"]] == [
        "MEMBER_PRICE",
        "FREE_SHIPPING",
        "LATE_CHECKOUT",
        "ROOM_UPGRADE",
        "PRIORITY_SERVICE",
    ]
    mine = (await gql(ME, token=user_token(app, user_id)))["me"]
    assert mine["membership"] == {"tier": "PLATINUM", "sourceChannel": "APP"}


async def test_the_highest_active_tier_across_channels_holds(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=31)
    mp, app_service = await service_key(app, "MINI_PROGRAM"), await service_key(app, "APP")
    await grant_membership(gql, mp, user_id=user_id, tier="GOLD", source="MINI_PROGRAM")
    await grant_membership(gql, app_service, user_id=user_id, tier="SILVER", source="APP")
    user = (await gql(MEMBERSHIP, {"id": user_id}, token=mp))["user"]
    assert user["membership"]["tier"] == "GOLD"
    await grant_membership(
        gql, app_service, user_id=user_id, tier="PLATINUM", source="APP"
    )  # replaces SILVER
    assert (await gql(MEMBERSHIP, {"id": user_id}, token=mp))["user"]["membership"]["tier"] == "PLATINUM"
    revoked = (await gql(REVOKE, {"userId": user_id, "source": "APP"}, token=app_service))["revokeMembership"]
    assert revoked["membership"]["tier"] == "GOLD"
    await gql.error(
        REVOKE, {"userId": user_id, "source": "APP"}, token=app_service, code="MEMBERSHIP_NOT_FOUND"
    )


async def test_expiry_is_respected(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=32)
    app_service = await service_key(app, "APP")
    await grant_membership(gql, app_service, user_id=user_id, tier="SILVER", source="APP")
    soon = later(seconds=1)
    await grant_membership(
        gql,
        await service_key(app, "MINI_PROGRAM"),
        user_id=user_id,
        tier="GOLD",
        source="MINI_PROGRAM",
        expires_at=soon,
    )
    user = (await gql(MEMBERSHIP, {"id": user_id}, token=app_service))["user"]
    assert user["membership"]["tier"] == "GOLD"
    assert datetime.fromisoformat(user["membership"]["expiresAt"]) == datetime.fromisoformat(soon)
    assert "FREE_SHIPPING" in {b["code"] for b in user["benefits"]}
    await asyncio.sleep(max(0.0, (datetime.fromisoformat(soon) - datetime.now(UTC)).total_seconds()) + 0.05)
    user = (await gql(MEMBERSHIP, {"id": user_id}, token=app_service))["user"]
    assert user["membership"]["tier"] == "SILVER"
    assert [b["code"] for b in user["benefits"]] == ["MEMBER_PRICE"]


async def test_the_same_tier_again_renews_another_replaces(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=33)
    token = await service_key(app, "APP")
    first = await grant_membership(
        gql, token, user_id=user_id, tier="GOLD", source="APP", expires_at=later(days=30)
    )
    renewed = await grant_membership(
        gql, token, user_id=user_id, tier="GOLD", source="APP", expires_at=later(days=395)
    )
    assert renewed["membership"]["since"] == first["membership"]["since"]
    assert renewed["membership"]["expiresAt"] > first["membership"]["expiresAt"]
    upgraded = await grant_membership(gql, token, user_id=user_id, tier="PLATINUM", source="APP")
    assert upgraded["membership"]["since"] > first["membership"]["since"]
    assert upgraded["membership"]["expiresAt"] is None


async def test_bad_grants_are_refused_with_their_codes(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=34)
    token = await operator_key(app, "operator")
    base = {"userId": user_id, "source": "APP", "expiresAt": None}
    error = await gql.error(GRANT_MEMBERSHIP, {**base, "tier": "DIAMOND"}, token=token, code="UNKNOWN_TIER")
    assert "PLATINUM" in error["message"]
    past = {**base, "tier": "GOLD", "expiresAt": "2020-01-01T00:00:00Z"}
    await gql.error(GRANT_MEMBERSHIP, past, token=token, code="BAD_USER_INPUT")
    await gql.error(
        GRANT_MEMBERSHIP, {**base, "tier": "GOLD", "userId": "987654"}, token=token, code="USER_NOT_FOUND"
    )
    assert (await gql(MEMBERSHIP, {"id": user_id}, token=token))["user"]["membership"] is None


async def test_points_are_earned_and_spent_in_any_channel(app: FastAPI, gql: Gql) -> None:
    user_id = await person(app, gql, n=35)
    app_service, mp = await service_key(app, "APP"), await service_key(app, "MINI_PROGRAM")
    assert (await gql(POINTS, {"userId": user_id, "points": 100, "source": "APP"}, token=app_service))[
        "adjustPoints"
    ] == {"points": 100}
    await gql(POINTS, {"userId": user_id, "points": -30, "source": "MINI_PROGRAM"}, token=mp)
    error = await gql.error(
        POINTS,
        {"userId": user_id, "points": -71, "source": "MINI_PROGRAM"},
        token=mp,
        code="INSUFFICIENT_POINTS",
    )
    assert error["extensions"]["balance"] == 70
    await gql.error(
        POINTS, {"userId": user_id, "points": 0, "source": "APP"}, token=app_service, code="BAD_USER_INPUT"
    )
    await grant_membership(gql, app_service, user_id=user_id, tier="SILVER", source="APP")
    user = (await gql(MEMBERSHIP, {"id": user_id}, token=mp))["user"]
    assert (user["points"], user["membership"]["points"]) == (70, 70)


async def test_who_may_change_memberships_and_points(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    in_app = (await link(gql, admin, kind="APP_USER_ID", value="A-36"))["user"]["id"]
    outside = await new_user(gql, admin, phone="+8613800138360")
    app_service = await service_key(app, "APP")
    grant = {"userId": in_app, "tier": "GOLD", "source": "APP", "expiresAt": None}
    await gql.error(GRANT_MEMBERSHIP, grant, token=None, code="UNAUTHENTICATED")
    await gql.error(GRANT_MEMBERSHIP, grant, token=user_token(app, in_app), code="FORBIDDEN")
    await gql.error(GRANT_MEMBERSHIP, grant, token=await operator_key(app, "viewer"), code="FORBIDDEN")
    await gql.error(GRANT_MEMBERSHIP, {**grant, "userId": outside}, token=app_service, code="FORBIDDEN")
    await gql.error(
        GRANT_MEMBERSHIP, {**grant, "source": "MINI_PROGRAM"}, token=app_service, code="FORBIDDEN"
    )
    await gql.error(
        POINTS, {"userId": outside, "points": 5, "source": "APP"}, token=app_service, code="FORBIDDEN"
    )
    await gql.error(
        REVOKE, {"userId": in_app, "source": "APP"}, token=user_token(app, in_app), code="FORBIDDEN"
    )
    await gql(GRANT_MEMBERSHIP, {**grant, "userId": outside, "source": "OFFICIAL_ACCOUNT"}, token=admin)
    assert (await gql(MEMBERSHIP, {"id": outside}, token=admin))["user"]["membership"]["tier"] == "GOLD"


async def test_a_merge_shows_both_memberships_and_unmerge_gives_each_its_own(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    older = await new_user(gql, admin, phone="+8613800138370")
    younger = (await link(gql, admin, kind="APP_USER_ID", value="A-37"))["user"]["id"]
    await grant_membership(gql, admin, user_id=older, tier="SILVER", source="MINI_PROGRAM")
    await grant_membership(gql, admin, user_id=younger, tier="PLATINUM", source="APP")
    await gql(POINTS, {"userId": older, "points": 10, "source": "MINI_PROGRAM"}, token=admin)
    await gql(POINTS, {"userId": younger, "points": 25, "source": "APP"}, token=admin)
    merge_id = (await link(gql, admin, kind="APP_USER_ID", value="A-37", user_id=older))["merge"]["id"]
    merged = (await gql(MEMBERSHIP, {"id": younger}, token=admin))["user"]
    assert (merged["membership"]["tier"], merged["points"]) == ("PLATINUM", 35)
    await gql(UNMERGE, {"id": merge_id}, token=admin)
    old = (await gql(MEMBERSHIP, {"id": older}, token=admin))["user"]
    young = (await gql(MEMBERSHIP, {"id": younger}, token=admin))["user"]
    assert (old["membership"]["tier"], old["points"]) == ("SILVER", 10)
    assert (young["membership"]["tier"], young["points"]) == ("PLATINUM", 25)


async def test_an_answer_depending_on_an_expiry_says_until_when(app: FastAPI, gql: Gql) -> None:
    """What a response cache reads (RequestContext.valid_until): the membership's end, or nothing."""
    from app.auth.authenticate import AuthResult
    from app.auth.principal import Principal, PrincipalKind, Role
    from app.context import RequestContext
    from graphql_schema.schema import schema

    user_id = await person(app, gql, n=38)
    ends = datetime.now(UTC) + timedelta(days=3)
    await grant_membership(
        gql,
        await service_key(app, "APP"),
        user_id=user_id,
        tier="GOLD",
        source="APP",
        expires_at=ends.isoformat(),
    )
    operator = Principal(kind=PrincipalKind.OPERATOR, key_id=1, roles=frozenset({Role.VIEWER}))
    for query, expected in (
        ("query ($id: ID!) { user(id: $id) { membership { tier } } }", ends),
        ("query ($id: ID!) { user(id: $id) { benefits { code } } }", ends),
        ("query ($id: ID!) { user(id: $id) { id consents { granted } } }", None),
    ):
        ctx = RequestContext(
            db=app.state.db,
            settings=app.state.settings,
            auth=AuthResult(operator),
            dictionary=app.state.dictionary,
        )
        result = await schema.execute(query, variable_values={"id": user_id}, context_value=ctx)
        assert result.errors is None, result.errors
        assert ctx.valid_until == expected
