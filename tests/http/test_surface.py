"""What each caller sees of the API itself: the schema, GraphiQL, suggestions, masked errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from graphql import get_introspection_query
from sqlalchemy import text

from app.settings import Settings
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import new_user
from tests.helpers import Gql, served

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "User") { name } }'
TYPENAME = "{ __typename }"
FULL_INTROSPECTION = get_introspection_query(
    descriptions=True, specified_by_url=True, directive_is_repeatable=True, input_value_deprecation=True
)
AUDIT = "{ auditLog { nodes { id } } }"
# Each of these is a mistake GraphQL would answer with "Did you mean …", naming the schema's parts.
MISTAKES: list[tuple[str, dict[str, Any] | None]] = [
    ("{ usr { id } }", None),  # a field
    ("{ users(frist: 1) { totalCount } }", None),  # an argument
    ("query ($i: IdentityInptu) { __typename }", None),  # a type
    ("{ ...F } fragment F on Quer { __typename }", None),  # a type condition
    ('{ user(identity: {kind: PHONEE, value: "1"}) { id } }', None),  # an enum value
    ('{ user(identity: {knd: PHONE, value: "1"}) { id } }', None),  # an input field
    ("query ($i: IdentityInput) { user(identity: $i) { id } }", {"i": {"kind": "PHONEE", "value": "1"}}),
    ("query ($i: IdentityInput) { user(identity: $i) { id } }", {"i": {"knd": "PHONE", "value": "1"}}),
]


async def callers(app: FastAPI, gql: Gql) -> dict[str, str | None]:
    admin = await operator_key(app, "admin")
    return {
        "anonymous": None,
        "service": await service_key(app, "APP"),
        "end user": user_token(app, await new_user(gql, admin, phone="+8613800150001")),
        "viewer": await operator_key(app, "viewer"),
    }


async def test_introspection_for_operators_only(app: FastAPI, gql: Gql) -> None:
    for who, token in (await callers(app, gql)).items():
        for query in (SCHEMA, TYPE):
            if who == "viewer":
                assert await gql(query, token=token)
            else:
                error = await gql.error(query, token=token, code="GRAPHQL_VALIDATION_FAILED")
                assert "introspection" in error["message"], who
        assert await gql(TYPENAME, token=token) == {"__typename": "Query"}


async def test_the_full_introspection_query_fits_the_bounds(app: FastAPI, gql: Gql) -> None:
    """What GraphiQL asks first: every type, field and argument, nested `ofType`s and all."""
    viewer = await operator_key(app, "viewer")
    data = await gql(FULL_INTROSPECTION, token=viewer)
    assert len(data["__schema"]["types"]) > 30


async def test_a_development_flag_opens_introspection_to_everyone(settings: Settings) -> None:
    async with served(settings, graphql_public_introspection=True) as (_app, client):
        assert await Gql(client)(SCHEMA, token=None) == {"__schema": {"queryType": {"name": "Query"}}}


@pytest.mark.parametrize(("query", "variables"), MISTAKES)
async def test_suggestions_for_operators_only(
    app: FastAPI, gql: Gql, query: str, variables: dict[str, Any] | None
) -> None:
    everyone = await callers(app, gql)
    for who, token in everyone.items():
        body = await gql.post(query, variables, token)
        messages = " ".join(e["message"] for e in body["errors"])
        if who == "viewer":
            assert "Did you mean" in messages, messages
        else:
            assert "Did you mean" not in messages, (who, messages)


async def test_unexpected_errors_are_masked_for_everyone_and_logged_with_the_trace_id(
    app: FastAPI, gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await operator_key(app, "admin", "pii_reader")
    async with app.state.db.write_sessions() as session, session.begin():
        await session.execute(text("DROP TABLE audit_log"))
    with caplog.at_level(logging.ERROR, logger="troika.graphql"):
        body = await gql.post(AUDIT, None, admin)
    [error] = body["errors"]
    assert error["message"] == "internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "audit_log" not in str(body)
    trace = error["extensions"]["traceId"]
    [record] = [r for r in caplog.records if trace in r.getMessage()]
    assert record.exc_info is not None
    assert "audit_log" in str(record.exc_info[1])


async def test_every_error_has_a_code_and_the_requests_trace_id(app: FastAPI, gql: Gql) -> None:
    body = await gql.post("{ a: usr b: usr2 }", None, None)
    traces = {e["extensions"]["traceId"] for e in body["errors"]}
    assert len(body["errors"]) == 2
    assert len(traces) == 1
    other = await gql.post("{ a: usr }", None, None)
    assert other["errors"][0]["extensions"]["traceId"] not in traces
