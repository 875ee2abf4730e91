"""An answer that showed a phone unmasked is never kept: a cache hit would show it again unaudited."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.factories.identity import new_user
from tests.helpers import Gql
from tests.response_cache.test_scope import hits

VIEW = "query ($id: ID!) { user(id: $id) { id phone identities { kind value } } }"
READS = '{ auditLog(first: 50, action: "pii.read") { nodes { userId traceId } } }'


async def test_unmasked_answers_are_never_served_from_the_cache(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613800139301")
    reader = await operator_key(app, "viewer", "pii_reader")
    viewer = await operator_key(app, "viewer")
    before = hits(app)
    for _ in range(3):
        assert (await gql(VIEW, {"id": user_id}, token=reader))["user"]["phone"] == "+8613800139301"
    assert hits(app) == before  # asked again, computed again
    entries = (await gql(READS, token=admin))["auditLog"]["nodes"]
    assert [e["userId"] for e in entries] == [user_id] * 3  # and audited each time
    assert len({e["traceId"] for e in entries}) == 3
    # The masked answer to the same query is cached as before.
    for _ in range(2):
        assert (await gql(VIEW, {"id": user_id}, token=viewer))["user"]["phone"] == "138****9301"
    assert hits(app) == before + 1
