"""A cache hit answers as the GraphQL-over-HTTP rules say, exactly like the miss it repeats."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.factories.identity import new_user
from tests.helpers import Gql

PHONE = "query ($id: ID!) { user(id: $id) { id phone } }"
GR = "application/graphql-response+json"


async def test_hits_keep_the_negotiated_type_and_the_rules_of_the_request(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="+8613800160001")
    body = json.dumps({"query": PHONE, "variables": {"id": user_id}}).encode()
    headers = {"authorization": f"Bearer {admin}", "content-type": "application/json", "accept": GR}
    miss = await client.post("/graphql", content=body, headers=headers)
    hit = await client.post("/graphql", content=body, headers=headers)
    assert hit.headers.get("x-troika-cache") == "hit"
    assert (hit.status_code, hit.content) == (miss.status_code, miss.content)
    for name in ("content-type", "cache-control"):
        assert hit.headers[name] == miss.headers[name]
    assert hit.headers["content-type"] == f"{GR}; charset=utf-8"
    # The same bytes under another media type are never a hit: they are judged afresh.
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        refused = await client.post(
            "/graphql", content=body, headers={**headers, "content-type": content_type}
        )
        assert refused.status_code == 415
        assert "x-troika-cache" not in refused.headers
    refused = await client.post("/graphql", content=body, headers={**headers, "accept": "text/plain"})
    assert refused.status_code == 406
    # A request error is a 400 and never kept: asked again, it is run (and refused) again.
    broken = json.dumps({"query": PHONE}).encode()
    for _ in range(2):
        response = await client.post("/graphql", content=broken, headers=headers)
        assert response.status_code == 400
        assert "x-troika-cache" not in response.headers
