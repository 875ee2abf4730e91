"""Automatic persisted queries (Apollo's protocol): a document by its SHA-256, over POST and GET."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from fastapi import FastAPI

from app.http.bodies import Params
from app.http.persisted import PersistedQueries
from app.settings import Settings
from tests.factories.auth import operator_key
from tests.helpers import served

GR = "application/graphql-response+json"
TYPENAME = "query Probe { __typename }"
USERS = "query Users($first: Int!) { users(first: $first) { totalCount } }"
MUTATION = 'mutation { linkIdentity(identity: {kind: APP_USER_ID, value: "x"}, dryRun: true) { dryRun } }'
COSTLY = "{ users(first: 100) { nodes { id orders(first: 100) { nodes { id } } } } }"


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def extension(document: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha(document)}}


async def post(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    token: str | None = None,
    accept: str = "application/json",
) -> httpx.Response:
    headers = {"accept": accept, **({"authorization": f"Bearer {token}"} if token else {})}
    return await client.post("/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert "data" not in body, body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


async def test_a_hash_alone_runs_once_the_document_was_sent(client: httpx.AsyncClient) -> None:
    hashed = {"extensions": extension(TYPENAME)}
    response = await post(client, hashed)
    assert response.status_code == 200
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"
    assert response.json()["errors"][0]["message"] == "PersistedQueryNotFound"  # what Apollo looks for
    response = await post(client, hashed, accept=GR)
    assert response.status_code == 400  # a request error, as the spec's media type says
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"
    response = await post(client, {"query": TYPENAME, **hashed})
    assert response.json() == {"data": {"__typename": "Query"}}
    for _ in range(2):
        response = await post(client, hashed)
        assert response.json() == {"data": {"__typename": "Query"}}


async def test_variables_and_operation_name_travel_with_the_hash(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await operator_key(app, "admin")
    first = {
        "query": USERS,
        "variables": {"first": 2},
        "operationName": "Users",
        "extensions": extension(USERS),
    }
    assert (await post(client, first, token=admin)).json() == {"data": {"users": {"totalCount": 0}}}
    again = {"variables": {"first": 3}, "operationName": "Users", "extensions": extension(USERS)}
    assert (await post(client, again, token=admin)).json() == {"data": {"users": {"totalCount": 0}}}
    response = await post(client, {**again, "variables": {}}, token=admin)
    assert code_of(response) == "BAD_USER_INPUT"  # the variables are checked as for any document


async def test_a_hash_that_does_not_match_is_refused_and_nothing_is_kept(client: httpx.AsyncClient) -> None:
    wrong = {"query": TYPENAME, "extensions": extension("{ __typename }")}
    response = await post(client, wrong)
    assert response.status_code == 400
    assert code_of(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    response = await post(client, {"extensions": extension("{ __typename }")})
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


async def test_malformed_extensions_are_bad_requests(client: httpx.AsyncClient) -> None:
    response = await post(client, {"query": TYPENAME, "extensions": extension(TYPENAME, version=2)})
    assert (response.status_code, code_of(response)) == (400, "PERSISTED_QUERY_VERSION_UNSUPPORTED")
    bad_hash = {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}
    response = await post(client, {"extensions": bad_hash})
    assert (response.status_code, code_of(response)) == (400, "BAD_REQUEST")
    response = await post(client, {"extensions": {"persistedQuery": "yes"}})
    assert (response.status_code, code_of(response)) == (400, "BAD_REQUEST")


async def test_a_persisted_document_is_bounded_and_a_refused_one_not_kept(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await operator_key(app, "admin")
    response = await post(client, {"query": COSTLY, "extensions": extension(COSTLY)}, token=admin)
    assert code_of(response) == "OPERATION_LIMIT_EXCEEDED"
    response = await post(client, {"extensions": extension(COSTLY)}, token=admin)
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


async def test_get_by_hash_when_get_queries_are_on(settings: Settings) -> None:
    async with served(settings, graphql_get_queries=True) as (app, client):
        admin = await operator_key(app, "admin")
        auth = {"authorization": f"Bearer {admin}", "accept": GR}
        params = {"variables": json.dumps({"first": 1}), "extensions": json.dumps(extension(USERS))}
        response = await client.get("/graphql", params=params, headers=auth)
        assert (response.status_code, code_of(response)) == (400, "PERSISTED_QUERY_NOT_FOUND")
        response = await client.get("/graphql", params={**params, "query": USERS}, headers=auth)
        assert response.json() == {"data": {"users": {"totalCount": 0}}}
        response = await client.get("/graphql", params=params, headers=auth)
        assert response.json() == {"data": {"users": {"totalCount": 0}}}
        # A mutation persisted over POST still runs over POST only.
        assert (
            "data"
            in (
                await post(client, {"query": MUTATION, "extensions": extension(MUTATION)}, token=admin)
            ).json()
        )
        response = await client.get(
            "/graphql", params={"extensions": json.dumps(extension(MUTATION))}, headers=auth
        )
        assert (response.status_code, code_of(response)) == (405, "METHOD_NOT_ALLOWED")


async def test_turned_off(settings: Settings) -> None:
    async with served(settings, persisted_queries_bytes=0) as (_app, client):
        response = await post(client, {"extensions": extension(TYPENAME)})
        assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"
        response = await post(client, {"query": TYPENAME, "extensions": extension(TYPENAME)})
        assert response.json() == {"data": {"__typename": "Query"}}
        response = await post(client, {"extensions": extension(TYPENAME)})
        assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"


def test_the_documents_kept_are_bounded_in_bytes() -> None:
    store = PersistedQueries(max_bytes=3 * (200 + 100))
    documents = [f"query Q{n} {{ __typename }}".ljust(100) for n in range(5)]
    for document in documents:
        params, keep = store.resolve(Params("" + document, extensions=extension(document)))
        assert keep == sha(document)
        store.keep(keep, params.query)
    assert sum(len(d) + 200 for d in store.documents.values()) <= 3 * 300
    assert set(store.documents) == {sha(d) for d in documents[2:]}  # the least recently used went first
    store.keep(sha("x" * 1000), "x" * 1000)  # larger than the whole store: not kept
    assert sha("x" * 1000) not in store.documents
