"""Export and erasure answer the person themselves or an admin; nobody else, whatever the id (BOLA)."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import link, new_user
from tests.helpers import Gql

EXPORT = "query ($id: ID!) { exportUser(userId: $id) }"
ERASE = "mutation ($id: ID!) { eraseUser(userId: $id) { userId } }"
USER = "query ($id: ID!) { user(id: $id) { id identities { kind } } }"


async def test_only_the_person_or_an_admin(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    alice = await new_user(gql, admin, phone="+8613800138951")
    bob = await new_user(gql, admin, phone="+8613800138952")
    await link(gql, admin, kind="APP_USER_ID", value="bola-b", user_id=bob)
    as_alice = user_token(app, alice)
    refused = [
        (as_alice, bob),  # another person
        (as_alice, "999999"),  # nobody: the same answer, so ids cannot be probed
        (await service_key(app, "APP"), bob),  # a service, even of a channel the person is in
        (await operator_key(app, "operator", "pii_reader"), bob),  # staff below admin
        (await operator_key(app, "viewer"), bob),
    ]
    for token, target in refused:
        await gql.error(EXPORT, {"id": target}, token=token, code="FORBIDDEN")
        await gql.error(ERASE, {"id": target}, token=token, code="FORBIDDEN")
    await gql.error(EXPORT, {"id": bob}, token=None, code="UNAUTHENTICATED")
    await gql.error(ERASE, {"id": bob}, token=None, code="UNAUTHENTICATED")
    assert len((await gql(USER, {"id": bob}, token=admin))["user"]["identities"]) == 2  # untouched
    audited = '{ auditLog(first: 10, action: "user.*") { nodes { action } } }'
    assert (await gql(audited, token=admin))["auditLog"]["nodes"] == []

    # The person: their own export and erasure, also through an id merged into theirs.
    younger = (await link(gql, admin, kind="APP_USER_ID", value="bola-a"))["user"]["id"]
    await link(gql, admin, kind="APP_USER_ID", value="bola-a", user_id=alice)
    as_younger = user_token(app, younger)  # a session from before the merge: still the same person
    assert (await gql(EXPORT, {"id": alice}, token=as_younger))["exportUser"]["user"]["id"] == alice
    assert (await gql(ERASE, {"id": younger}, token=as_alice))["eraseUser"]["userId"] == alice
    # An admin, for anyone.
    assert (await gql(EXPORT, {"id": bob}, token=admin))["exportUser"]["user"]["id"] == bob
    assert (await gql(ERASE, {"id": bob}, token=admin))["eraseUser"]["userId"] == bob
    await gql.error(EXPORT, {"id": bob}, token=admin, code="USER_NOT_FOUND")
