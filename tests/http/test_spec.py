"""GraphQL over HTTP, check by check as the public audit suite (graphql-http) puts the spec's
MUSTs and SHOULDs to a server; each test names the audit it mirrors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Route

from app.http.graphql import GraphQLApp
from app.settings import Settings
from tests.factories.auth import operator_key
from tests.helpers import served

GR = "application/graphql-response+json"
JSON = "application/json"
BOTH = f"{GR}, {JSON}"
TYPENAME = "{ __typename }"
UTF8_QUERY = '{ __type(name: "Run🏃") { name } }'
NAMED = "query A { __typename } query B { __typename }"
WITH_VARIABLE = "query ($id: ID!) { __typename @include(if: true) user(id: $id) { id } }"
TYPED_VARIABLE = "query ($first: Int!) { users(first: $first) { totalCount } }"
UNPARSABLE = "{"
INVALID = "{ iDontExist }"
MUTATION = 'mutation { linkIdentity(identity: {kind: APP_USER_ID, value: "x"}, dryRun: true) { dryRun } }'
SUBSCRIPTION = "subscription { changes { userId } }"
FIELD_ERROR = "{ __typename me { id } }"  # `me` without credentials: a field error, data present


def post(client: httpx.AsyncClient, body: object, accept: str | None = JSON, **headers: str) -> Any:
    if accept is not None:
        headers["accept"] = accept
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers.setdefault("content-type", JSON)
    return client.post("/graphql", content=content, headers=headers)


def assert_request_error(response: httpx.Response, status: int, media: str = GR) -> dict[str, Any]:
    """A 4xx answer: the negotiated type, no `data`, coded errors with a traceId."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == f"{media}; charset=utf-8"
    body: dict[str, Any] = response.json()
    assert "data" not in body
    assert body["errors"]
    for error in body["errors"]:
        assert error["extensions"]["code"]
        assert error["extensions"]["traceId"]
    return body


# -- media types ---------------------------------------------------------------------------------


async def test_22eb_must_accept_application_graphql_response_json_and_match_the_content_type(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"query": TYPENAME}, accept=GR)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{GR}; charset=utf-8"
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_4655_must_accept_application_json_and_match_the_content_type(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"query": TYPENAME}, accept=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{JSON}; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("*/*", JSON),  # 51B4: accept */* and use application/json
        (None, JSON),  # 2C94: assume application/json when Accept is missing
        ("application/*", JSON),
        (BOTH, GR),  # both named: the spec's own type
        (f"{GR};q=0.9, {JSON}", JSON),
        (f"{JSON};q=0.5, {GR}", GR),
        (f"text/html, {GR};charset=utf-8", GR),
    ],
)
async def test_negotiation(client: httpx.AsyncClient, accept: str | None, media: str) -> None:
    response = await post(client, {"query": TYPENAME}, accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media}; charset=utf-8"


async def test_406_when_neither_type_is_acceptable(client: httpx.AsyncClient) -> None:
    response = await post(client, {"query": TYPENAME}, accept="text/plain")
    assert_request_error(response, 406, JSON)


async def test_47de_utf8_both_ways(app: FastAPI, client: httpx.AsyncClient) -> None:
    """MUST accept utf-8 encoded requests, assume utf-8 when no charset says, answer in utf-8."""
    admin = await operator_key(app, "viewer")
    for content_type in (f"{JSON}; charset=utf-8", JSON, f"{JSON}; charset=UTF-8"):
        response = await post(
            client,
            {"query": UTF8_QUERY},
            accept=GR,
            **{"content-type": content_type, "authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"data": {"__type": None}}
        assert "charset=utf-8" in response.headers["content-type"]


# -- methods and request bodies -----------------------------------------------------------------


@pytest.mark.parametrize("accept", [GR, JSON])
async def test_only_json_post_bodies(client: httpx.AsyncClient, accept: str) -> None:
    """9ABE: 4xx without a Content-Type; form, multipart and text bodies (a cross-site form's)
    are refused, and so is another charset."""
    body = json.dumps({"query": TYPENAME}).encode()
    for content_type in (
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        f"{JSON}; charset=latin-1",
    ):
        headers = {"accept": accept} | ({"content-type": content_type} if content_type else {})
        response = await client.post("/graphql", content=body, headers=headers)
        assert_request_error(response, 415, accept)


async def test_form_encoded_query_is_not_run(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", data={"query": MUTATION}, headers={"accept": GR})
    assert_request_error(response, 415)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_other_methods_are_405_with_allow(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/graphql", headers={"accept": GR})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_queries_over_get_are_off_by_default(client: httpx.AsyncClient) -> None:
    for accept in (GR, JSON):
        response = await client.get("/graphql", params={"query": TYPENAME}, headers={"accept": accept})
        assert_request_error(response, 405, accept)
        assert response.headers["allow"] == "POST"


async def test_get_when_turned_on(settings: Settings) -> None:
    """82A3, 9FE0, 2EA1, 1B7A: form-encoded GET queries and JSON variables; never a mutation."""
    async with served(settings, graphql_get_queries=True) as (app, client):
        admin = await operator_key(app, "admin")
        auth = {"authorization": f"Bearer {admin}"}
        response = await client.get("/graphql", params={"query": TYPENAME}, headers={"accept": GR})
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}
        variables = json.dumps({"first": 3})
        response = await client.get(
            "/graphql",
            params={"query": TYPED_VARIABLE, "variables": variables},
            headers={"accept": GR, **auth},
        )
        assert response.json() == {"data": {"users": {"totalCount": 0}}}
        for accept in (GR, JSON):
            response = await client.get(
                "/graphql", params={"query": MUTATION}, headers={"accept": accept, **auth}
            )
            body = assert_request_error(response, 405, accept)
            assert response.headers["allow"] == "POST"
            assert body["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
        response = await client.get(
            "/graphql", params={"query": TYPENAME, "variables": "[" * 20_000}, headers={"accept": GR}
        )
        assert_request_error(response, 400)
        response = await client.put("/graphql", headers={"accept": GR})
        assert response.headers["allow"] == "GET, POST"


async def test_03d4_must_require_a_request_body_on_post(client: httpx.AsyncClient) -> None:
    response = await post(client, b"", accept=GR)
    assert_request_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        {},  # A5BF: missing {query}
        {"qeury": TYPENAME},  # parameters are invalid
        {"query": {"obj": "ect"}},  # 423L / 1C6A …: {query} of another type
        {"query": 0},
        {"query": False},
        {"query": [TYPENAME]},
        {"query": "  "},
        {"query": TYPENAME, "operationName": {"obj": "ect"}},  # F0D3 …: {operationName}
        {"query": TYPENAME, "operationName": 0},
        {"query": TYPENAME, "operationName": False},
        {"query": TYPENAME, "operationName": ["A"]},
        {"query": TYPENAME, "variables": "string"},  # 2C1F …: {variables}
        {"query": TYPENAME, "variables": 0},
        {"query": TYPENAME, "variables": False},
        {"query": TYPENAME, "variables": ["array"]},
        {"query": TYPENAME, "extensions": "string"},  # 4BA3 …: {extensions}
        {"query": TYPENAME, "extensions": 0},
        {"query": TYPENAME, "extensions": False},
        {"query": TYPENAME, "extensions": ["array"]},
        "just a string",
        42,
        None,
    ],
)
@pytest.mark.parametrize("accept", [GR, JSON])
async def test_malformed_parameters_are_400(client: httpx.AsyncClient, body: object, accept: str) -> None:
    response = await post(client, body, accept=accept)
    body_ = assert_request_error(response, 400, accept)
    assert body_["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "body",
    [
        {"query": TYPENAME},  # 13EE / 8764: a string {query}
        {"query": TYPENAME, "operationName": None},  # 7B9B / 94B0: null {operationName}
        {"query": NAMED, "operationName": "B"},  # 8161 / B8B3: a string {operationName}
        {"query": TYPENAME, "variables": None},  # 0220 / 94B0: null {variables}
        {"query": TYPENAME, "variables": {}},  # 28B9: a map {variables}
        {"query": TYPENAME, "extensions": None},  # 0220: null {extensions}
        {"query": TYPENAME, "extensions": {"some": "value"}},  # 428F: a map {extensions}
    ],
)
@pytest.mark.parametrize("accept", [GR, JSON])
async def test_well_formed_parameters_are_200(client: httpx.AsyncClient, body: object, accept: str) -> None:
    response = await post(client, body, accept=accept)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


# -- bodies an attacker sends -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"query": "{ __typename }"', "not JSON"),  # 572B: JSON parsing failure
        (b"\xff\xfe{\x00}\x00", "not UTF-8"),
        ('{"query": "{ __typename }", "x": "caf\xe9"}'.encode("latin-1"), "not UTF-8"),
        (b"[" * 20_000 + b"]" * 20_000, "nests deeper than 32"),
        (b'{"variables": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_001, "nests deeper than 32"),
        (b'{"query": "{ __typename }", "x": ' + b"9" * 5000 + b"}", "not JSON"),
        (b"\xef\xbb\xbf" + json.dumps({"query": TYPENAME}).encode(), "not JSON"),
    ],
)
@pytest.mark.parametrize("accept", [GR, JSON])
async def test_bad_bodies_are_400_never_500(
    client: httpx.AsyncClient, body: bytes, says: str, accept: str
) -> None:
    response = await post(client, body, accept=accept)
    error = assert_request_error(response, 400, accept)["errors"][0]
    assert says in error["message"]


async def test_brackets_inside_strings_do_not_count_as_nesting(client: httpx.AsyncClient) -> None:
    body = {"query": TYPENAME, "extensions": {"note": "[" * 1000 + '\\"{' * 100}}
    response = await post(client, body, accept=GR)
    assert response.status_code == 200, response.text


async def test_oversized_bodies_are_413_without_reading_them(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    limit = settings.graphql_max_body_bytes
    big = json.dumps({"query": TYPENAME, "extensions": {"pad": "x" * limit}}).encode()
    response = await post(client, big, accept=GR)
    assert_request_error(response, 413)

    async def chunks() -> Any:  # no Content-Length: counted while streaming
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = await client.post("/graphql", content=chunks(), headers={"content-type": JSON, "accept": GR})
    assert_request_error(response, 413)


async def test_batching_is_off(client: httpx.AsyncClient) -> None:
    response = await post(client, [{"query": TYPENAME}] * 2, accept=GR)
    body = assert_request_error(response, 400)
    assert body["errors"][0]["extensions"]["code"] == "BATCHING_DISABLED"


async def test_batching_capped_when_turned_on(settings: Settings) -> None:
    async with served(settings, graphql_batch_max=3) as (_app, client):
        response = await post(client, [{"query": TYPENAME}, {"query": INVALID}], accept=GR)
        assert response.status_code == 200
        answers = response.json()
        assert answers[0] == {"data": {"__typename": "Query"}}
        assert answers[1]["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        response = await post(client, [{"query": TYPENAME}] * 4, accept=GR)
        assert assert_request_error(response, 400)["errors"][0]["extensions"]["code"] == "TOO_MANY_OPERATIONS"
        assert_request_error(await post(client, [], accept=GR), 400)


# -- GraphQL errors and status codes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": UNPARSABLE}, "GRAPHQL_PARSE_FAILED"),  # 556A / 3E36: document parsing failure
        ({"query": INVALID}, "GRAPHQL_VALIDATION_FAILED"),  # D586 / 86EE: document validation failure
        ({"query": TYPED_VARIABLE, "variables": {"first": "two"}}, "BAD_USER_INPUT"),  # variable coercion
        ({"query": TYPED_VARIABLE}, "BAD_USER_INPUT"),  # a required variable missing
        ({"query": NAMED}, "OPERATION_RESOLUTION_FAILURE"),  # which operation?
        ({"query": NAMED, "operationName": "C"}, "OPERATION_RESOLUTION_FAILURE"),
        ({"query": SUBSCRIPTION}, "OPERATION_NOT_SUPPORTED"),  # subscriptions: WebSocket only
    ],
)
async def test_request_errors(client: httpx.AsyncClient, body: dict[str, Any], code: str) -> None:
    """With application/graphql-response+json: 400 and no `data`; with application/json: 200
    with the same errors (no `data` either: nothing ran)."""
    strict = assert_request_error(await post(client, body, accept=GR), 400)
    assert strict["errors"][0]["extensions"]["code"] == code
    legacy = await post(client, body, accept=JSON)
    assert legacy.status_code == 200
    assert "data" not in legacy.json()
    assert legacy.json()["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize("accept", [GR, JSON])
async def test_field_errors_keep_data_and_200(client: httpx.AsyncClient, accept: str) -> None:
    response = await post(client, {"query": FIELD_ERROR}, accept=accept)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"__typename": "Query", "me": None}
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_every_answer_is_private(client: httpx.AsyncClient) -> None:
    for body in ({"query": TYPENAME}, {"query": INVALID}, b"{"):
        response = await post(client, body, accept=GR)
        assert response.headers["cache-control"] == "no-store"


def test_answers_are_utf8_even_around_a_lone_surrogate(app: FastAPI) -> None:
    """JSON text can carry a lone surrogate (as an escape) where UTF-8 cannot: it never fails an
    answer (a 500 after the work is done)."""
    [view] = [r.app for r in app.router.routes if isinstance(r, Route) and r.path == "/graphql"]
    assert isinstance(view, GraphQLApp)
    encoded = view.encode_json({"data": {"name": "\ud800张"}})
    assert json.loads(encoded.decode("utf-8")) == {"data": {"name": "\ud800张"}}
