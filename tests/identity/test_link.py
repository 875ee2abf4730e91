"""linkIdentity: create, resolve, re-link, phones, conflicts, dry runs."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.factories.identity import LINK, link, new_user
from tests.helpers import Gql, untraced

USER_BY_IDENTITY = """
query ($identity: IdentityInput!) {
  user(identity: $identity) {
    id phone identities { kind namespace value channel verified linkedAt linkedBy }
  }
}
"""
USER_BY_ID = "query ($id: ID!) { user(id: $id) { id phone identities { kind value } } }"


async def test_new_identity_creates_a_user_that_it_resolves_to(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator", "pii_reader")
    result = await link(gql, token, kind="APP_USER_ID", value="A-1")
    assert result["dryRun"] is False
    assert result["merge"] is None
    found = await gql(USER_BY_IDENTITY, {"identity": {"kind": "APP_USER_ID", "value": "A-1"}}, token=token)
    user = found["user"]
    assert user["id"] == result["user"]["id"]
    [identity] = user["identities"]
    assert identity["kind"] == "APP_USER_ID"
    assert identity["channel"] == "APP"
    assert identity["verified"] is False
    assert identity["linkedBy"].startswith("asserted: linkIdentity by operator:")


async def test_phone_is_normalized_to_e164_and_found_by_national_number(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator", "pii_reader")
    user_id = await new_user(gql, token, phone="138 0013 8000")
    found = await gql(
        USER_BY_IDENTITY, {"identity": {"kind": "PHONE", "value": "+8613800138000"}}, token=token
    )
    assert found["user"]["id"] == user_id
    assert found["user"]["phone"] == "+8613800138000"
    again = await gql(USER_BY_IDENTITY, {"identity": {"kind": "PHONE", "value": "13800138000"}}, token=token)
    assert again["user"]["id"] == user_id


async def test_invalid_phone_is_refused(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    for bad in ("12345", "not a phone", "+86 999"):
        await gql.error(
            LINK, {"identity": {"kind": "PHONE", "value": bad}}, token=token, code="INVALID_PHONE"
        )


async def test_namespace_rules_are_checked(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    await gql.error(LINK, {"identity": {"kind": "OPENID", "value": "o1"}}, token=token, code="BAD_USER_INPUT")
    await gql.error(
        LINK,
        {"identity": {"kind": "PHONE", "value": "13800138000", "namespace": "x"}},
        token=token,
        code="BAD_USER_INPUT",
    )


async def test_relinking_a_held_identity_is_a_no_op(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    user_id = await new_user(gql, token, phone="+8613800138001")
    again = await link(gql, token, kind="PHONE", value="13800138001", user_id=user_id)
    assert again["user"]["id"] == user_id
    assert again["merge"] is None
    unowned = await link(gql, token, kind="PHONE", value="13800138001")
    assert unowned["user"]["id"] == user_id


async def test_attaching_a_second_identity_of_one_namespace_is_a_conflict(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator", "pii_reader")
    user_id = await new_user(gql, token, phone="+8613800138002")
    error = await gql.error(
        LINK,
        {"userId": user_id, "identity": {"kind": "PHONE", "value": "+8613900139000"}},
        token=token,
        code="IDENTITY_CONFLICT",
    )
    assert error["extensions"]["kind"] == "PHONE"
    assert "139****9000" in error["message"]
    assert "+8613900139000" not in error["message"]
    missing = await gql(
        USER_BY_IDENTITY, {"identity": {"kind": "PHONE", "value": "+8613900139000"}}, token=token
    )
    assert missing["user"] is None


async def test_unknown_user_is_an_error(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    await gql.error(
        LINK,
        {"userId": "999999", "identity": {"kind": "APP_USER_ID", "value": "A-9"}},
        token=token,
        code="USER_NOT_FOUND",
    )
    await gql.error(
        LINK,
        {"userId": "abc", "identity": {"kind": "APP_USER_ID", "value": "A-9"}},
        token=token,
        code="BAD_USER_INPUT",
    )


async def test_dry_run_of_a_new_identity_creates_nothing(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    data = await gql(LINK, {"identity": {"kind": "APP_USER_ID", "value": "A-2"}, "dryRun": True}, token=token)
    assert data["linkIdentity"] == {"dryRun": True, "user": None, "merge": None}
    found = await gql(USER_BY_IDENTITY, {"identity": {"kind": "APP_USER_ID", "value": "A-2"}}, token=token)
    assert found["user"] is None


async def test_dry_run_answers_the_same_conflict(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    user_id = await new_user(gql, token, phone="+8613800138003")
    variables = {"userId": user_id, "identity": {"kind": "PHONE", "value": "+8613900139001"}}
    real = await gql.error(LINK, variables, token=token, code="IDENTITY_CONFLICT")
    dry = await gql.error(LINK, {**variables, "dryRun": True}, token=token, code="IDENTITY_CONFLICT")
    assert dry["message"] == real["message"]
    assert untraced(dry["extensions"]) == untraced(real["extensions"])
