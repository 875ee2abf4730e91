"""Writes stay cheap: the statements one setConsent or linkIdentity runs are pinned, per database.

On PostgreSQL a service's consent for a user of its channel is one statement in autocommit on the
app's own asyncpg connection (app/stores/consents.py): the version bump that locks the user and
checks the service's scope, the ledger rows with their audit entry, and the outbox row numbered
under the outbox head's lock. A link making a user is: the identity's advisory lock, the owner
lookup, the new user, the identity with its history edge and audit entry, the outbox rows with
the head's lock; a link to a user also reads the user and its identities, and locks and bumps it.
SQLite has no advisory locks and no data-modifying WITH, so it runs its own, longer, list. A new
statement on these paths fails here: fold it into one of these, or change the pin saying why.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.entitlements import consent_input
from tests.factories.identity import link
from tests.helpers import Gql
from tests.sql import count_direct_statements, count_statements

SET_CONSENT = "mutation ($input: ConsentInput!) { setConsent(input: $input) { id } }"
LINK = """
mutation ($userId: ID, $identity: IdentityInput!) {
  linkIdentity(userId: $userId, identity: $identity) { user { id } }
}
"""
# Statements per write (BEGIN, SAVEPOINT and RELEASE not counted; the commit is one more round trip).
PINNED = {
    "postgresql": {"setConsent": 1, "new user": 5, "existing user": 10},
    "sqlite": {"setConsent": 7, "new user": 7, "existing user": 12},
}


def dialect(app: FastAPI) -> str:
    name: str = app.state.db.write_engine.dialect.name
    return name


async def test_a_consent_costs_its_pinned_statements(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    user_id = (await link(gql, admin, kind="APP_USER_ID", value="A-W1"))["user"]["id"]
    service = await service_key(app, "APP")
    await gql(
        SET_CONSENT,
        {"input": consent_input("PUSH", granted=True, channel="APP", source="APP", user_id=user_id)},
        token=service,
    )
    for granted in (False, True):  # the key is known now: only the write's own statements count
        change = consent_input("PUSH", granted=granted, channel="APP", source="APP", user_id=user_id)
        with count_statements(app) as statements, count_direct_statements(app) as direct:
            await gql(SET_CONSENT, {"input": change}, token=service)
        assert len(statements + direct) == PINNED[dialect(app)]["setConsent"], statements + direct


@pytest.mark.parametrize("target", ["new user", "existing user"])
async def test_a_link_costs_its_pinned_statements(app: FastAPI, gql: Gql, target: str) -> None:
    admin = await operator_key(app, "operator")
    user_id = (await link(gql, admin, kind="APP_USER_ID", value="A-W2"))["user"]["id"]
    for n in range(2):
        variables = {
            "userId": user_id if target == "existing user" else None,
            "identity": {"kind": "EXTERNAL", "namespace": f"p{n}", "value": f"x-{n}"},
        }
        with count_statements(app) as statements, count_direct_statements(app) as direct:
            await gql(LINK, variables, token=admin)
        assert len(statements + direct) == PINNED[dialect(app)][target], statements + direct
