"""Every change of identities leaves an audit entry: who, what, to whom, when, in which request;
never the identity's value (the log outlives erasure)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.identity import link, new_user
from tests.factories.wechat import BIND_PHONE, sms_code
from tests.helpers import Gql
from tests.identity.test_merge import UNLINK, UNMERGE

AUDIT = """
query ($action: String, $userId: ID, $traceId: String) {
  auditLog(first: 50, action: $action, userId: $userId, traceId: $traceId) {
    nodes { action userId actor principalKind details traceId at }
  }
}
"""


async def entries(gql: Gql, token: str, **where: str) -> list[dict[str, Any]]:
    """Audit entries, oldest first."""
    found: list[dict[str, Any]] = (await gql(AUDIT, where, token=token))["auditLog"]["nodes"]
    return list(reversed(found))


async def test_links_merges_unlinks_and_unmerges_are_audited(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    admin = await operator_key(app, "admin")
    older = await new_user(gql, admin, phone="+8613800138701")
    younger = (await link(gql, admin, kind="APP_USER_ID", value="audit-1"))["user"]["id"]
    merged = await link(gql, admin, kind="APP_USER_ID", value="audit-1", user_id=older)
    merge_id = merged["merge"]["id"]
    await gql(UNMERGE, {"id": merge_id}, token=admin)
    await gql(
        UNLINK, {"userId": older, "identity": {"kind": "PHONE", "value": "+8613800138701"}}, token=admin
    )
    service = await service_key(app, "APP")
    await ingest(client, service, "APP", [app_order("a1", app_user("audit-2"), order_no="A-1")])

    log = await entries(gql, admin, action="identity.*")
    actor = log[0]["actor"]
    assert actor.startswith("operator:")
    assert [(e["action"], e["userId"], e["details"]) for e in log[:5]] == [
        (
            "identity.link",
            older,
            {"kind": "PHONE", "namespace": None, "rule": "asserted", "verified": False, "created": True},
        ),
        (
            "identity.link",
            younger,
            {
                "kind": "APP_USER_ID",
                "namespace": None,
                "rule": "asserted",
                "verified": False,
                "created": True,
            },
        ),
        (
            "identity.merge",
            older,
            {
                "mergeId": int(merge_id),
                "absorbedId": int(younger),
                "identities": [{"kind": "APP_USER_ID", "namespace": None}],
            },
        ),
        (
            "identity.unmerge",
            older,
            {
                "mergeId": int(merge_id),
                "restoredId": int(younger),
                "identities": [{"kind": "APP_USER_ID", "namespace": None}],
            },
        ),
        ("identity.unlink", older, {"kind": "PHONE", "namespace": None, "identityId": 1}),
    ]
    assert all(e["actor"] == actor and e["principalKind"] == "operator" for e in log[:5])
    # Ingestion's links: the service that sent the records, no request trace (not GraphQL).
    ingested = log[5]
    assert (ingested["action"], ingested["actor"], ingested["traceId"]) == (
        "identity.link",
        service_actor(log),
        None,
    )
    assert ingested["details"] == {
        "kind": "APP_USER_ID",
        "namespace": None,
        "rule": "ingested",
        "created": True,
    }
    # Each mutation's entries carry its request's trace id, one per request.
    traces = [e["traceId"] for e in log[:5]]
    assert all(traces)
    assert len(set(traces)) == 5
    assert [e["action"] for e in await entries(gql, admin, traceId=traces[2])] == ["identity.merge"]
    # No value: neither the phone nor the account id is anywhere in the log.
    every = str(await entries(gql, admin))
    assert "13800138701" not in every
    assert "audit-1" not in every
    assert "audit-2" not in every


def service_actor(log: list[dict[str, Any]]) -> str:
    actor: str = next(e["actor"] for e in log if e["actor"].startswith("service:APP:"))
    return actor


async def test_proven_phones_audit_the_proof_the_replacement_and_the_recycling(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture, fake_wechat: FakeWeChat
) -> None:
    admin = await operator_key(app, "admin")
    first = await new_user(gql, admin, phone="+8613800138702")
    await link(gql, admin, kind="APP_USER_ID", value="audit-3", user_id=first)
    second = (await link(gql, admin, kind="APP_USER_ID", value="audit-4"))["user"]["id"]
    # The first person proves a new number: the old one is replaced.
    code = await sms_code(gql, caplog, "13800138703", "138****8703")
    await gql(BIND_PHONE, {"phone": "13800138703", "sms": code}, token=user_token(app, first))
    # Someone else (two APP accounts: not one person) proves it next, in the mini program.
    await gql(BIND_PHONE, {"wx": "13800138703"}, token=user_token(app, second))
    log = [e for e in await entries(gql, admin, action="identity.*") if e["actor"].startswith("user:")]
    assert [(e["action"], e["userId"], e["actor"]) for e in log] == [
        ("identity.replace", first, f"user:{first}"),
        ("identity.prove-phone", first, f"user:{first}"),
        ("identity.recycle", first, f"user:{second}"),
        ("identity.prove-phone", second, f"user:{second}"),
    ]
    assert log[2]["details"] == {"kind": "PHONE", "namespace": None, "provedBy": int(second)}
    assert log[3]["details"]["recycledFrom"] == int(first)
    assert "13800138703" not in str(log)
