"""Every read of unmasked PII is audited: one entry per person shown, before the answer leaves."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql

READS = """
query ($traceId: String) {
  auditLog(first: 50, action: "pii.read", traceId: $traceId) { nodes { userId actor details traceId } }
}
"""
ONE = "query ($id: ID!) { user(id: $id) { phone } }"
ALL = "query ($id: ID!) { user(id: $id) { phone identities { value } identityHistory { value } } }"
PAGE = "{ users(first: 10) { nodes { id phone } } }"


async def reads(gql: Gql, admin: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await gql(READS, token=admin))["auditLog"]["nodes"]
    return list(reversed(found))


async def test_a_pii_reader_seeing_a_phone_leaves_an_entry_per_person(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    reader = await operator_key(app, "viewer", "pii_reader")
    first = await new_user(gql, admin, phone="+8613800138901")
    second = await new_user(gql, admin, phone="+8613800138902")
    no_phone = (await link(gql, admin, kind="APP_USER_ID", value="reads-1"))["user"]["id"]

    assert (await gql(ONE, {"id": first}, token=reader))["user"]["phone"] == "+8613800138901"
    await gql(ALL, {"id": second}, token=reader)
    await gql(PAGE, token=reader)
    log = await reads(gql, admin)
    reader_actor = log[0]["actor"]
    assert all(e["actor"] == reader_actor and e["traceId"] for e in log)
    by_request: dict[str, list[tuple[str, str]]] = {}
    for e in log:  # the fields resolved together are written together, before they are shown
        by_request.setdefault(e["traceId"], []).extend((e["userId"], f) for f in e["details"]["fields"])
    assert [sorted(fields) for fields in by_request.values()] == [
        [(first, "phone")],
        [(second, "identities"), (second, "identityHistory"), (second, "phone")],
        [(first, "phone"), (second, "phone")],  # the page: every person it showed
    ]
    assert len([e for e in log if e["traceId"] == log[-1]["traceId"]]) == 2  # one write for the page
    assert no_phone not in {e["userId"] for e in log}  # nothing unmasked to show: nothing to audit

    # Masked answers are not PII reads: a viewer, a service, a reader of a user without a phone.
    await gql(ONE, {"id": first}, token=await operator_key(app, "viewer"))
    await link(gql, admin, kind="APP_USER_ID", value="reads-2", user_id=first)
    await gql(ONE, {"id": first}, token=await service_key(app, "APP"))
    await gql(ONE, {"id": no_phone}, token=reader)
    assert len(await reads(gql, admin)) == len(log)
