"""exportUser: everything held about a person, for themselves or an admin, audited."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.wechat.fake import FakeWeChat
from tests.factories.auth import user_token
from tests.factories.pii import everything, non_empty
from tests.helpers import Gql

EXPORT = "query ($id: ID!) { exportUser(userId: $id) }"
AUDIT = '{ auditLog(first: 5, action: "user.export") { nodes { userId actor details traceId } } }'


async def test_the_export_holds_every_kind_of_data(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = await everything(app, client, gql, fake_wechat, caplog, name="exp", national="13800138401")
    other = await everything(app, client, gql, fake_wechat, caplog, name="exp2", national="13800138402")
    doc = (await gql(EXPORT, {"id": p.user_id}, token=p.token))["exportUser"]
    assert non_empty(doc) == []  # every kind of data is there
    assert doc["user"] == {
        "id": p.user_id,
        "createdAt": doc["user"]["createdAt"],
        "mergedUserIds": [p.absorbed_id],
    }
    identities = {(i["kind"], i["value"]) for i in doc["identities"]}
    assert {("PHONE", p.phone), ("APP_USER_ID", p.account), ("OPENID", p.mp_openid)} <= identities
    assert ("APP_USER_ID", p.old_account) in {(e["kind"], e["value"]) for e in doc["identityHistory"]}
    assert [(m["survivorId"], m["absorbedId"]) for m in doc["merges"]] == [
        (int(p.user_id), int(p.absorbed_id))
    ]
    # Consents now, and the ledgers of both merged users; memberships, points, roles.
    assert {(c["purpose"], c["channel"], c["granted"]) for c in doc["consents"]} >= {
        ("MARKETING", "MINI_PROGRAM", True),
        ("PUSH", "APP", False),
        ("LOCAL_STORAGE", None, True),  # brought by the merge
    }
    assert {e["userId"] for e in doc["consentHistory"]} == {int(p.user_id), int(p.absorbed_id)}
    assert [(m["tier"], m["sourceChannel"]) for m in doc["memberships"]] == [("GOLD", "APP")]
    assert doc["points"] == 50
    assert len(doc["pointsHistory"]) == 2
    assert [r["role"] for r in doc["roles"]] == ["customer_service"]
    # Channel data: both channels, the phone's records, the unlinked account's, and the raw records.
    assert {o["orderId"] for o in doc["orders"]} == {
        "exp-A0",
        "exp-A1",
        "exp-A2",
        "exp-MP1",
    }
    assert {o["status"] for o in doc["orders"]} >= {"COMPLETED", "PENDING_PAYMENT"}
    assert [(c["sku"], c["quantity"]) for c in doc["cart"]] == [("SKU-1", 2)]
    assert {e["type"] for e in doc["behavior"]} == {"page_view", "menu_click"}
    raw = {r["sourceId"]: r["payload"] for r in doc["rawRecords"]}
    assert raw["exp-o1"]["identity"] == {"kind": "PHONE", "value": "13800138401"}  # as sent, opened
    assert [r["sourceId"] for r in doc["rejectedRecords"]] == ["exp-bad"]
    assert "quantity" in doc["rejectedRecords"][0]["reason"]
    assert '"exp-bad"' in doc["rejectedRecords"][0]["payload"]
    # Nobody else's data.
    assert "13800138402" not in str(doc)
    assert other.account not in str(doc)
    # An admin gets the same document; an absorbed id exports its person; each export is audited.
    by_admin = (await gql(EXPORT, {"id": p.absorbed_id}, token=p.admin))["exportUser"]
    assert by_admin["identities"] == doc["identities"]
    assert by_admin["orders"] == doc["orders"]
    audited = (await gql(AUDIT, token=p.admin))["auditLog"]["nodes"]
    assert [(e["userId"], e["actor"]) for e in audited] == [
        (p.user_id, audited[0]["actor"]),
        (p.user_id, f"user:{p.user_id}"),
    ]
    assert audited[0]["actor"].startswith("operator:")
    assert audited[1]["details"]["userIds"] == [int(p.user_id), int(p.absorbed_id)]
    assert audited[1]["details"]["counts"]["orders"] == 4
    assert all(e["traceId"] for e in audited)
    # Never from the cache: a second export is another audited read.
    await gql(EXPORT, {"id": p.user_id}, token=user_token(app, p.user_id))
    assert len((await gql(AUDIT, token=p.admin))["auditLog"]["nodes"]) == 3
