"""The fast lane (app/http/lane.py) answers a cleared query byte for byte as the full path does,
and only a query the full path cleared for the same class of caller, limits and page sizes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.http.lane import STATS
from app.settings import Settings
from tests.compiled.conftest import build_world
from tests.factories.auth import operator_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql, lane_and_full, served, untraced

UNIFIED = """query ($id: ID) {
  user(id: $id) {
    id phone identities { kind value channel }
    orders(first: 20) { totalCount nodes { sourceId status items { sku quantity } } }
    cart { items { sku quantity channel } }
    consents { purpose channel granted }
    membership { tier points } interests { tag weight }
  }
}"""
ALIASED = """query Who($id: ID) {
  a: user(id: $id) { key: id phone }
  b: user(id: $id) { identities { kind value } }
}"""
FRAGMENTS = """query ($id: ID) { user(id: $id) { ...Person ... on User { cart { items { sku } } } } }
fragment Person on User { id membership { tier points } consents { purpose granted } }"""
DIRECTIVES = """query ($id: ID, $withCart: Boolean!, $noOrders: Boolean!) {
  user(id: $id) {
    id cart @include(if: $withCart) { items { sku } } orders(first: 5) @skip(if: $noOrders) { totalCount }
  }
}"""
NAMED = """query One($id: ID) { user(id: $id) { id } }
query Two($id: ID) { user(id: $id) { id phone interests { tag } } }"""
PAGED = "query ($id: ID, $n: Int) { user(id: $id) { orders(first: $n) { totalCount nodes { sourceId } } } }"
SMALL = "query ($id: ID) { user(id: $id) { id phone } }"


@dataclass
class Lanes:
    """One database served twice, compiled both times: `lane` with the fast lane, `full` without."""

    lane: FastAPI
    lane_client: httpx.AsyncClient
    full_client: httpx.AsyncClient


@pytest.fixture
async def lanes(settings: Settings) -> AsyncIterator[Lanes]:
    async with lane_and_full(settings) as (lane, lane_client, full_client):
        yield Lanes(lane, lane_client, full_client)


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None,
    token: str | None,
    name: str | None = None,
    **more: Any,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"query": query, "variables": variables, **more}
    if name is not None:
        body["operationName"] = name
    return await client.post("/graphql", json=body, headers=headers)


def same(a: httpx.Response, b: httpx.Response) -> None:
    """Byte for byte, status and headers included."""
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert a.headers == b.headers


async def test_the_lane_answers_as_the_full_path_for_every_caller(lanes: Lanes) -> None:
    world = await build_world(lanes.lane, lanes.lane_client)
    full, other = world.full, world.survivor
    documents: list[tuple[str, dict[str, Any], str | None]] = [
        (UNIFIED, {"id": full}, None),
        (ALIASED, {"id": full}, None),
        (FRAGMENTS, {"id": full}, None),
        (DIRECTIVES, {"id": full, "withCart": True, "noOrders": False}, None),
        (DIRECTIVES, {"id": full, "withCart": False, "noOrders": True}, None),
        (NAMED, {"id": full}, "Two"),
        (PAGED, {"id": full, "n": 2}, None),
    ]
    for caller in ("viewer", "pii", "mp", "self"):
        token = world.callers[caller]
        for query, variables, name in documents:
            first = await post(lanes.lane_client, query, variables, token, name)  # the full path clears it
            assert first.status_code == 200
            assert "errors" not in first.json(), (caller, query, first.text)
            taken = STATS["taken"]
            again = await post(lanes.lane_client, query, variables, token, name)
            assert STATS["taken"] == taken + 1, (caller, query)
            same(again, first)
            # Another user's data through the lane, against a full path that never saw the query.
            if caller != "self":
                lane = await post(lanes.lane_client, query, {**variables, "id": other}, token, name)
                assert STATS["taken"] == taken + 2, (caller, query, lane.text)
                same(lane, await post(lanes.full_client, query, {**variables, "id": other}, token, name))
                assert lane.json()["data"]


async def test_a_document_that_fails_a_check_never_takes_the_lane(lanes: Lanes) -> None:
    world = await build_world(lanes.lane, lanes.lane_client)
    viewer = world.callers["viewer"]
    await post(lanes.lane_client, SMALL, {"id": world.full}, viewer)
    taken = STATS["taken"]
    assert (await post(lanes.lane_client, SMALL, {"id": world.full}, viewer)).json()["data"]
    assert STATS["taken"] == taken + 1
    invalid = SMALL.replace("id phone", "id phone nope")  # one field from the cleared text
    aliased = SMALL.replace("id phone", "id phone " + " ".join(f"a{n}: id" for n in range(21)))
    for query, code in ((invalid, "GRAPHQL_VALIDATION_FAILED"), (aliased, "OPERATION_LIMIT_EXCEEDED")):
        for _ in range(3):
            taken = STATS["taken"]
            lane = await post(lanes.lane_client, query, {"id": world.full}, viewer)
            assert STATS["taken"] == taken
            assert lane.json()["errors"][0]["extensions"]["code"] == code, lane.text
            full = await post(lanes.full_client, query, {"id": world.full}, viewer)
            assert (lane.status_code, untraced(lane.json())) == (full.status_code, untraced(full.json()))
    # Cleared with a page of 2: a page over the cap is still checked (and refused), every time.
    await post(lanes.lane_client, PAGED, {"id": world.full, "n": 2}, viewer)
    for n in (1000, 1000, True):
        taken = STATS["taken"]
        lane = await post(lanes.lane_client, PAGED, {"id": world.full, "n": n}, viewer)
        assert STATS["taken"] == taken
        assert lane.json()["errors"], lane.text
        full = await post(lanes.full_client, PAGED, {"id": world.full, "n": n}, viewer)
        assert (lane.status_code, untraced(lane.json())) == (full.status_code, untraced(full.json()))
    # Several operations and no name: a request error, though each operation alone was cleared.
    for _ in range(2):
        taken = STATS["taken"]
        lane = await post(lanes.lane_client, NAMED, {"id": world.full}, viewer)
        assert STATS["taken"] == taken
        assert lane.json()["errors"][0]["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE"


async def test_a_caller_of_another_class_is_not_cleared_by_an_operator_run(lanes: Lanes) -> None:
    world = await build_world(lanes.lane, lanes.lane_client)
    await post(lanes.lane_client, SMALL, {"id": world.full}, world.callers["admin"])
    taken = STATS["taken"]
    await post(lanes.lane_client, SMALL, {"id": world.full}, world.callers["viewer"])
    assert STATS["taken"] == taken + 1  # another operator: the same class
    # A channel's service is validated as one that may not see the schema: its own first run
    # takes the full path, which then clears the document for every caller of that class.
    first = await post(lanes.lane_client, SMALL, {"id": world.full}, world.callers["mp"])
    assert STATS["taken"] == taken + 1
    for caller in ("mp", "app", "self"):
        again = await post(lanes.lane_client, SMALL, {"id": world.full}, world.callers[caller])
        assert again.json()["data"]["user"]["id"] == world.full
    assert STATS["taken"] == taken + 4
    same(again, await post(lanes.full_client, SMALL, {"id": world.full}, world.callers["self"]))
    same(first, await post(lanes.full_client, SMALL, {"id": world.full}, world.callers["mp"]))


async def test_a_query_the_plan_hands_over_is_answered_as_before(lanes: Lanes) -> None:
    world = await build_world(lanes.lane, lanes.lane_client)
    outcomes = []
    for caller, variables in (
        ("viewer", {"id": "987654"}),  # nobody
        ("viewer", {"id": world.absorbed}),  # merged into another: the survivor answers
        ("viewer", {"id": world.erased}),
        ("viewer", {"id": {"not": "an id"}}),  # does not coerce
        ("viewer", {"id": None}),
        ("self", {"id": world.survivor}),  # someone else
        ("mp", {"id": "0"}),
    ):
        token = world.callers[caller]
        await post(lanes.lane_client, UNIFIED, {"id": world.full}, token)  # cleared
        taken, handed = STATS["taken"], STATS["handed"]
        lane = await post(lanes.lane_client, UNIFIED, variables, token)
        full = await post(lanes.full_client, UNIFIED, variables, token)
        outcome = (STATS["taken"] - taken, STATS["handed"] - handed)
        assert outcome in ((1, 0), (0, 1)), outcome
        outcomes.append("handed" if outcome == (0, 1) else "taken")
        assert (lane.status_code, untraced(lane.json())) == (full.status_code, untraced(full.json()))
        assert lane.headers == full.headers
        assert all(error["extensions"]["code"] for error in lane.json().get("errors", []))
    # graphql-core reports the variable; the resolvers refuse another user to an end user.
    assert outcomes[3] == outcomes[5] == "handed", outcomes


def _count(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_lane_counts_its_operations(lanes: Lanes) -> None:
    world = await build_world(lanes.lane, lanes.lane_client)
    query = "query LaneCounted($id: ID) { user(id: $id) { id } }"
    ok = {"operation": "LaneCounted", "type": "query", "outcome": "ok"}
    timed = {"operation": "LaneCounted", "type": "query"}
    before = _count("troika_graphql_operations_total", ok)
    timed_before = _count("troika_graphql_operation_duration_seconds_count", timed)
    taken = STATS["taken"]
    for _ in range(3):
        answer = await post(lanes.lane_client, query, {"id": world.full}, world.callers["viewer"])
        assert answer.json()["data"]
    assert STATS["taken"] == taken + 2
    assert _count("troika_graphql_operations_total", ok) == before + 3
    assert _count("troika_graphql_operation_duration_seconds_count", timed) == timed_before + 3


async def test_the_response_cache_keeps_and_serves_the_lanes_answers(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    admin = await operator_key(app, "admin")
    viewer = await operator_key(app, "viewer")
    first = await new_user(gql, admin, phone="+8613800170001")
    second = await new_user(gql, admin, phone="+8613800170002")
    query = "query ($id: ID) { user(id: $id) { id identities { kind namespace } } }"
    await post(client, query, {"id": first}, viewer)  # the full path clears it
    taken = STATS["taken"]
    miss = await post(client, query, {"id": second}, viewer)
    assert STATS["taken"] == taken + 1
    assert "x-troika-cache" not in miss.headers
    hit = await post(client, query, {"id": second}, viewer)
    assert STATS["taken"] == taken + 1
    assert hit.headers.get("x-troika-cache") == "hit"
    assert (hit.status_code, hit.content) == (miss.status_code, miss.content)
    await link(gql, admin, kind="EXTERNAL", namespace="crm", value="lane-1", user_id=second)  # a write
    after = await post(client, query, {"id": second}, viewer)
    assert STATS["taken"] == taken + 2
    assert "x-troika-cache" not in after.headers
    assert {"kind": "EXTERNAL", "namespace": "crm"} in after.json()["data"]["user"]["identities"]
    assert (await post(client, query, {"id": second}, viewer)).content == after.content


async def test_a_persisted_query_takes_the_lane_once_resolved(lanes: Lanes) -> None:
    world = await build_world(lanes.lane, lanes.lane_client)
    viewer = world.callers["viewer"]
    sha = hashlib.sha256(SMALL.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    first = await post(lanes.lane_client, SMALL, {"id": world.full}, viewer, extensions=persisted)
    taken = STATS["taken"]
    by_hash = await post(lanes.lane_client, "", {"id": world.full}, viewer, extensions=persisted)
    assert STATS["taken"] == taken + 1
    same(by_hash, first)


async def test_each_operation_of_a_batch_may_take_the_lane(settings: Settings) -> None:
    async with served(settings, graphql_batch_max=3, response_cache_bytes=0) as (app, client):
        gql = Gql(client)
        admin = await operator_key(app, "admin")
        users = [await new_user(gql, admin, phone=f"+861380018000{n}") for n in (1, 2)]
        await post(client, SMALL, {"id": users[0]}, admin)  # cleared
        batch = [
            {"query": SMALL, "variables": {"id": users[1]}},
            {"query": SMALL.replace("phone", "phone nope"), "variables": {"id": users[1]}},
            {"query": SMALL, "variables": {"id": users[0]}},
        ]
        headers = {"Authorization": f"Bearer {admin}"}
        taken = STATS["taken"]
        answers = (await client.post("/graphql", json=batch, headers=headers)).json()
        assert STATS["taken"] == taken + 2
        assert [a["data"]["user"]["id"] for a in (answers[0], answers[2])] == [users[1], users[0]]
        assert answers[1]["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        one_by_one = [(await client.post("/graphql", json=b, headers=headers)).json() for b in batch]
        assert untraced(answers) == untraced(one_by_one)


async def test_rate_limits_still_count_every_request_the_lane_answers(settings: Settings) -> None:
    """OperationRateLimits counts only mutations over HTTP; the per-address and per-caller limits
    are the middleware's, in front of the lane: a query over the limit is refused all the same."""
    limited: dict[str, Any] = {
        "rate_limit_enabled": True,
        "rate_limit_principal": "4/minute",
        "response_cache_bytes": 0,
    }
    async with served(settings, **limited) as (app, client):
        admin = await operator_key(app, "admin")
        viewer = await operator_key(app, "viewer")
        user = await new_user(Gql(client), admin, phone="+8613800190001")
        taken = STATS["taken"]
        statuses = [(await post(client, SMALL, {"id": user}, viewer)).status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]
        assert STATS["taken"] == taken + 3
