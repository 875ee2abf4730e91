"""Bounded operations: every limit answers one clear error and runs nothing of the operation."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.factories.auth import operator_key
from tests.helpers import Gql, served, untraced

LIMIT = "OPERATION_LIMIT_EXCEEDED"
TYPENAME = "{ __typename }"
ALIASES_20 = "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }"
ALIASES_101 = "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }"
REPEATED_3 = "{ __typename __typename ... on Query { __typename } }"
REPEATED_500 = "{ " + "__typename\n" * 500 + "}"
REPEATED_IN_FRAGMENTS = "{ " + " ".join("... on Query { __typename }" for _ in range(4)) + " }"
UNKNOWN_DIRECTIVES_50 = "{ __typename " + "@aa" * 50 + " }"
DIRECTIVES_ON_MANY_FIELDS = "{ " + " ".join(f"f{i}: __typename @nope" for i in range(19)) + " }"
INCLUDES_3 = "query ($x: Boolean = true) { __typename @include(if: $x) @skip(if: false) }"
DEEP_UNKNOWN = "{ " + "a { " * 12 + "b" + " }" * 12 + " }"
DEEP_REAL = "{ users { nodes { orders { nodes { items { sku } } } } } }"
TOKENS_1001 = "query ($x: [Int] = [" + ", ".join("1" for _ in range(1000)) + "]) { __typename }"
COSTLY = "{ users(first: 100) { nodes { id orders(first: 100) { nodes { id } } } } }"
COSTLY_BY_VARIABLE = (
    "query ($n: Int!) { users(first: 100) { nodes { id orders(first: $n) { nodes { id } } } } }"
)
AFFORDABLE = "{ users(first: 100) { nodes { id orders(first: 20) { nodes { id status } } } } }"


def fragment_bomb(depth: int, name: str = "F") -> str:
    """2^depth `__typename`s once expanded, in `depth` + 1 fragments."""
    doubling = " ".join(
        f"fragment {name}{i} on Query {{ ...{name}{i + 1} ...{name}{i + 1} }}" for i in range(depth)
    )
    return f"{{ ...{name}0 }} {doubling} fragment {name}{depth} on Query {{ __typename }}"


PAGES = {
    "users": "query ($n: Int!) { users(first: $n) { totalCount } }",
    "auditLog": "query ($n: Int!) { auditLog(first: $n) { nodes { id } } }",
    "orders": "query ($n: Int!) { users(first: 1) { nodes { orders(first: $n) { totalCount } } } }",
    "behavior": "query ($n: Int!) { users(first: 1) { nodes { behavior(first: $n) { nodes { id } } } } }",
}
USERS_AND_TOO_MANY_PAGES = "{ users { totalCount } auditLog(first: 101) { nodes { id } } }"
LINKS_21 = (
    "mutation { "
    + " ".join(
        f'l{i}: linkIdentity(identity: {{kind: APP_USER_ID, value: "bound-{i}"}}) {{ dryRun }}'
        for i in range(21)
    )
    + " }"
)
USER_COUNT = "{ users { totalCount } }"


async def refused(
    gql: Gql, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    """The one error of an operation refused before it ran (no data at all)."""
    body = await gql.post(query, variables, token)
    assert body.get("data") is None, body
    [error] = body["errors"]
    assert error["extensions"]["traceId"]
    result: dict[str, Any] = error
    return result


@asynccontextmanager
async def gql_with(settings: Settings, **update: Any) -> AsyncIterator[Gql]:
    async with served(settings, **update) as (_app, client):
        yield Gql(client)


async def test_aliases(gql: Gql) -> None:
    assert len(await gql(ALIASES_20, token=None)) == 20
    error = await refused(gql, ALIASES_101)
    assert error["extensions"] | {"traceId": ""} == {
        "code": LIMIT,
        "limit": "aliases",
        "max": 20,
        "traceId": "",
    }
    assert "101 aliases" in error["message"]


async def test_a_field_repeated_in_one_selection_set(gql: Gql) -> None:
    assert await gql(REPEATED_3, token=None) == {"__typename": "Query"}
    for query in (REPEATED_500, REPEATED_IN_FRAGMENTS):
        error = await refused(gql, query)
        assert (error["extensions"]["code"], error["extensions"]["limit"]) == (LIMIT, "fieldRepeats")
        assert "`__typename` is selected" in error["message"]


async def test_directives_are_counted_before_validation(gql: Gql) -> None:
    """Fifty unknown directives cost one error, not fifty validation errors."""
    error = await refused(gql, UNKNOWN_DIRECTIVES_50)
    assert error["extensions"]["limit"] == "directivesPerField"
    assert error["extensions"]["max"] == 3
    body = await gql.post(DIRECTIVES_ON_MANY_FIELDS, None, None)  # under the total: validation answers
    assert {e["extensions"]["code"] for e in body["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    error = await refused(gql, DIRECTIVES_ON_MANY_FIELDS.replace("f0:", "f0: __typename @nope @nope g:"))
    assert (error["extensions"]["limit"], error["extensions"]["max"]) == ("directives", 20)
    # Known directives count the same.
    assert await gql(INCLUDES_3.replace("@skip(if: false)", ""), token=None) == {"__typename": "Query"}


async def test_depth(gql: Gql, settings: Settings) -> None:
    error = await refused(gql, DEEP_UNKNOWN)  # refused for its depth, before its unknown fields
    assert (error["extensions"]["limit"], error["extensions"]["max"]) == ("depth", 8)
    async with gql_with(settings, graphql_max_depth=3) as shallow:
        error = await refused(shallow, DEEP_REAL)
        assert (error["extensions"]["limit"], error["extensions"]["max"]) == ("depth", 3)


async def test_tokens(gql: Gql) -> None:
    error = await refused(gql, TOKENS_1001)
    assert (error["extensions"]["limit"], error["extensions"]["max"]) == ("tokens", 1000)
    assert error["message"] == "the document has more than 1000 tokens"


async def test_cost_multiplies_by_first(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    assert (await gql(AFFORDABLE, token=admin))["users"]["nodes"] == []
    error = await refused(gql, COSTLY, token=admin)
    assert (error["extensions"]["limit"], error["extensions"]["max"]) == ("cost", 10_000)
    assert error["extensions"]["cost"] > 10_000
    await refused(gql, COSTLY_BY_VARIABLE, {"n": 100}, token=admin)
    assert await gql(COSTLY_BY_VARIABLE, {"n": 20}, token=admin)
    await refused(gql, COSTLY_BY_VARIABLE, {"n": 100}, token=admin)  # checked once per page size


async def calls_to_refuse(gql: Gql, query: str) -> int:
    """Python function calls this thread made while the query was refused for its cost."""
    calls = 0

    def count(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        error = await refused(gql, query)
    finally:
        sys.setprofile(None)
    assert error["extensions"]["limit"] == "cost"
    return calls


async def test_a_fragment_bomb_is_costed_in_linear_time(gql: Gql) -> None:
    # 2^40 fields once expanded: answered at all only because no check expands the fragments.
    assert (await refused(gql, fragment_bomb(40)))["extensions"]["limit"] == "cost"
    # Work counted, not timed: seven fragments more add some hundreds of calls each (measured: 5,691
    # calls for 15 fragments, 7,798 for 22), not a doubling of the work per fragment.
    await calls_to_refuse(gql, fragment_bomb(14, "W"))  # warm-up (new names: nothing is cached)
    smaller = await calls_to_refuse(gql, fragment_bomb(14, "A"))
    larger = await calls_to_refuse(gql, fragment_bomb(21, "B"))
    assert larger < 2 * smaller, (smaller, larger)


@pytest.mark.parametrize("field", list(PAGES))
async def test_every_page_is_capped_alike_before_anything_runs(app: FastAPI, gql: Gql, field: str) -> None:
    admin = await operator_key(app, "admin")
    assert await gql(PAGES[field], {"n": 100}, token=admin)
    for n in (101, -1):
        error = await refused(gql, PAGES[field], {"n": n}, token=admin)
        assert error["message"] == "`first` must be between 0 and 100"
        assert untraced(error["extensions"]) == {"code": "BAD_USER_INPUT", "field": "first"}
    # No partial answer: the field within the cap did not run either.
    await refused(gql, USERS_AND_TOO_MANY_PAGES, token=admin)


async def test_a_refused_mutation_changes_nothing(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    error = await refused(gql, LINKS_21, token=admin)
    assert error["extensions"]["limit"] == "aliases"
    assert (await gql(USER_COUNT, token=admin))["users"]["totalCount"] == 0


async def test_limits_are_settings(settings: Settings) -> None:
    async with gql_with(
        settings,
        graphql_max_aliases=2,
        graphql_max_field_repeats=1,
        graphql_max_tokens=30,
        graphql_max_page_size=5,
    ) as tight:
        assert (await refused(tight, "{ a: __typename b: __typename c: __typename }"))["extensions"][
            "max"
        ] == 2
        assert (await refused(tight, "{ __typename __typename }"))["extensions"]["limit"] == "fieldRepeats"
        assert (await refused(tight, "{ " + "__typename " * 35 + "}"))["extensions"]["limit"] == "tokens"
        error = await refused(tight, PAGES["users"], {"n": 6})
        assert error["message"] == "`first` must be between 0 and 5"
