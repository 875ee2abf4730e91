"""Staff roles: granted centrally by admins, the same rights from every channel."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import GRANT_ROLE, grant_role
from tests.factories.identity import link, new_user
from tests.helpers import Gql

ROLES = "query ($id: ID!) { user(id: $id) { roles { role scope permissions grantedAt } } }"
MAY = """
{
  me {
    manage12: hasPermission(permission: "store.orders.manage", scope: "store:12")
    manage13: hasPermission(permission: "store.orders.manage", scope: "store:13")
    manageAnywhere: hasPermission(permission: "store.orders.manage")
    read12: hasPermission(permission: "store.orders.read", scope: "store:12")
    export: hasPermission(permission: "audiences.export", scope: "store:12")
    campaigns: hasPermission(permission: "campaigns.send")
  }
}
"""
REVOKE = """
mutation ($userId: ID!, $role: String!, $scope: String) {
  revokeRole(userId: $userId, role: $role, scope: $scope) { roles { role scope } }
}
"""


async def staff(app: FastAPI, gql: Gql) -> tuple[str, str, str]:
    """A staff member with a mini program openid and an APP account, two users merged by a phone."""
    admin = await operator_key(app, "operator")
    mp = app.state.settings.mini_program_appid
    in_mp = (await link(gql, admin, kind="OPENID", namespace=mp, value="o-staff"))["user"]["id"]
    in_app = (await link(gql, admin, kind="APP_USER_ID", value="S-0001"))["user"]["id"]
    await link(gql, admin, kind="PHONE", value="+8613900000099", user_id=in_mp)
    await link(gql, admin, kind="PHONE", value="+8613900000099", user_id=in_app)  # merges: in_mp survives
    return in_mp, in_app, await operator_key(app, "admin")


async def test_a_role_granted_centrally_holds_in_every_channel(app: FastAPI, gql: Gql) -> None:
    in_mp, in_app, admin = await staff(app, gql)
    await grant_role(gql, admin, user_id=in_app, role="store_order_manager", scope="store:12")
    for user_id in (in_mp, in_app):  # signed in from the mini program, or from the APP
        may = (await gql(MAY, token=user_token(app, user_id)))["me"]
        assert may == {
            "manage12": True,
            "manage13": False,
            "manageAnywhere": False,
            "read12": True,
            "export": False,
            "campaigns": False,
        }
    [grant] = (await gql(ROLES, {"id": in_mp}, token=await service_key(app, "MINI_PROGRAM")))["user"]["roles"]
    assert (grant["role"], grant["scope"]) == ("store_order_manager", "store:12")
    assert "store.orders.manage" in grant["permissions"]


async def test_roles_without_scope_hold_everywhere_and_wildcards_cover_below(app: FastAPI, gql: Gql) -> None:
    in_mp, _, admin = await staff(app, gql)
    await grant_role(gql, admin, user_id=in_mp, role="marketing_manager")
    may = (await gql(MAY, token=user_token(app, in_mp)))["me"]
    assert (may["export"], may["campaigns"], may["manage12"]) == (True, True, False)


async def test_granting_twice_changes_nothing_and_revoking_takes_it_away(app: FastAPI, gql: Gql) -> None:
    in_mp, in_app, admin = await staff(app, gql)
    for _ in range(2):
        await grant_role(gql, admin, user_id=in_mp, role="store_clerk", scope="store:12")
    await grant_role(gql, admin, user_id=in_mp, role="store_clerk", scope="store:13")
    roles = (await gql(ROLES, {"id": in_app}, token=admin))["user"]["roles"]
    assert [(r["role"], r["scope"]) for r in roles] == [
        ("store_clerk", "store:12"),
        ("store_clerk", "store:13"),
    ]
    left = await gql(REVOKE, {"userId": in_app, "role": "store_clerk", "scope": "store:12"}, token=admin)
    assert left["revokeRole"]["roles"] == [{"role": "store_clerk", "scope": "store:13"}]
    await gql.error(
        REVOKE,
        {"userId": in_mp, "role": "store_clerk", "scope": "store:12"},
        token=admin,
        code="ROLE_NOT_GRANTED",
    )


async def test_bad_grants_name_the_problem(app: FastAPI, gql: Gql) -> None:
    in_mp, _, admin = await staff(app, gql)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"role": "cashier", "scope": "store:12"}, "UNKNOWN_ROLE"),
        ({"role": "store_order_manager", "scope": None}, "INVALID_SCOPE"),
        ({"role": "store_order_manager", "scope": "region:east"}, "INVALID_SCOPE"),
        ({"role": "store_order_manager", "scope": "store 12"}, "INVALID_SCOPE"),
        ({"role": "customer_service", "scope": "store:12"}, "INVALID_SCOPE"),
    ]
    for variables, code in cases:
        await gql.error(GRANT_ROLE, {"userId": in_mp, **variables}, token=admin, code=code)
    await gql.error(
        GRANT_ROLE, {"userId": "987654", "role": "customer_service"}, token=admin, code="USER_NOT_FOUND"
    )
    assert (await gql(ROLES, {"id": in_mp}, token=admin))["user"]["roles"] == []


async def test_only_admins_grant_and_revoke_roles(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613800138380")
    variables = {"userId": user_id, "role": "customer_service"}
    await gql.error(GRANT_ROLE, variables, token=None, code="UNAUTHENTICATED")
    await gql.error(REVOKE, variables, token=None, code="UNAUTHENTICATED")
    for token in (
        await operator_key(app, "operator"),
        await service_key(app, "APP"),
        user_token(app, user_id),
    ):
        await gql.error(GRANT_ROLE, variables, token=token, code="FORBIDDEN")
        await gql.error(REVOKE, variables, token=token, code="FORBIDDEN")
    await gql(GRANT_ROLE, variables, token=admin)
    assert len((await gql(ROLES, {"id": user_id}, token=admin))["user"]["roles"]) == 1
