"""`caller`: what the key or token names and may do, as the operations themselves decide it."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import new_user
from tests.helpers import Gql

CALLER = "{ caller { kind actor roles channel readsPii mayUnmerge } }"


async def test_an_operator_learns_their_roles_and_powers(app: FastAPI, gql: Gql) -> None:
    viewer = await operator_key(app, "viewer")
    seen = (await gql(CALLER, token=viewer))["caller"]
    assert seen["kind"] == "operator"
    assert seen["actor"].startswith("operator:")
    assert seen["roles"] == ["viewer"]
    assert (seen["readsPii"], seen["mayUnmerge"]) == (False, False)
    everything = await operator_key(app, "admin", "pii_reader")
    seen = (await gql(CALLER, token=everything))["caller"]
    assert seen["roles"] == ["admin", "operator", "pii_reader", "viewer"]
    assert (seen["readsPii"], seen["mayUnmerge"]) == (True, True)


async def test_services_and_end_users_have_no_roles(app: FastAPI, gql: Gql) -> None:
    service = (await gql(CALLER, token=await service_key(app, "APP")))["caller"]
    assert (service["kind"], service["channel"], service["roles"]) == ("service", "APP", [])
    admin = await operator_key(app, "admin")
    user = await new_user(gql, admin, phone="+8613800150002")
    seen = (await gql(CALLER, token=user_token(app, user)))["caller"]
    assert (seen["kind"], seen["channel"], seen["mayUnmerge"]) == ("user", None, False)


async def test_no_key_no_caller(gql: Gql) -> None:
    await gql.error(CALLER, token=None, code="UNAUTHENTICATED")
    await gql.error(CALLER, token="trk_op_not-a-key", code="UNAUTHENTICATED")
