"""Compiled reads answer exactly as the resolvers do: many generated operations, every kind of
caller, both databases, the channel stores on the hub's database or on one of their own."""

from __future__ import annotations

import pytest

from graphql_schema.compiled import direct
from graphql_schema.compiled.hook import STATS
from tests.compiled.conftest import Pair, build_world
from tests.compiled.generator import Generator
from tests.helpers import untraced

UNIFIED = """
query ($id: ID) {
  user(id: $id) {
    id phone identities { kind value channel }
    orders(first: 20) { totalCount nodes { sourceId status items { sku quantity } } }
    cart { items { sku quantity channel } }
    consents { purpose channel granted }
    membership { tier points } interests { tag weight }
  }
}
"""


async def _both(
    pair: Pair, query: str, variables: dict[str, object], token: str | None
) -> tuple[object, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": query, "variables": variables}
    on = await pair.on_client.post("/graphql", json=body, headers=headers)
    off = await pair.off_client.post("/graphql", json=body, headers=headers)
    assert on.status_code == off.status_code, (on.text, off.text)
    return untraced(on.json()), untraced(off.json())


@pytest.mark.parametrize(
    ("app_store_url", "operations"), [("shared", 45), ("split", 15)], indirect=["app_store_url"]
)
async def test_generated_operations_answer_the_same_compiled_or_not(pair: Pair, operations: int) -> None:
    world = await build_world(pair.on, pair.on_client)
    # The fixed unified query first: it must compile for the callers who may read the user.
    before = STATS["compiled"]
    on, off = await _both(pair, UNIFIED, {"id": world.full}, world.callers["admin"])
    assert on == off
    assert STATS["compiled"] == before + 1
    assert on["data"]["user"]["orders"]["totalCount"] == 5  # type: ignore[index]
    generator = Generator(seed=17, world=world)
    compared, compiled_before, failed_before = 0, STATS["compiled"], STATS["failed"]
    for n in range(operations):
        op = generator.op()
        for name, token in world.callers.items():
            on, off = await _both(pair, op.query, op.variables, token)
            assert on == off, f"operation {n} as {name}:\n{op.query}\n{op.variables}"
            compared += 1
    assert compared == operations * len(world.callers)
    assert STATS["failed"] == failed_before, "the compiler met an error the resolvers did not"
    # Many were compiled (the others: callers refused, bad input, fields outside the subset).
    assert STATS["compiled"] - compiled_before >= compared // 4, dict(STATS)


@pytest.mark.parametrize(
    ("app_store_url", "operations"), [("shared", 40), ("split", 12)], indirect=["app_store_url"]
)
async def test_direct_answers_are_the_resolvers_answers(pair: Pair, operations: int) -> None:
    """Operations of only the fields answered straight from the rows (no loaders, no field
    functions): every caller, aliases, fragments, directives, arguments; the same answers."""
    world = await build_world(pair.on, pair.on_client)
    generator = Generator(seed=29, world=world, direct=True)
    direct_before, failed_before = direct.STATS["roots"], STATS["failed"]
    for n in range(operations):
        op = generator.op()
        for name, token in world.callers.items():
            on, off = await _both(pair, op.query, op.variables, token)
            assert on == off, f"operation {n} as {name}:\n{op.query}\n{op.variables}"
    assert STATS["failed"] == failed_before, "the compiler met an error the resolvers did not"
    # Most roots of non-PII callers who may read someone were answered directly.
    assert direct.STATS["roots"] - direct_before >= operations, dict(direct.STATS)


MIXED = """
query ($id: ID) {
  user(id: $id) {
    id orders(first: 5) { totalCount nodes { sourceId } } cart { items { sku quantity } }
    preferences(first: 5) { sku cartAdds purchases channels }
    traits { lifetimeValueCents paidOrders ordersByChannel { channel count } }
    journey { path }
  }
}
"""


@pytest.mark.parametrize("app_store_url", ["shared", "split"], indirect=True)
async def test_portrait_fields_mixed_with_compiled_ones_answer_the_same(pair: Pair) -> None:
    """The portrait's fields are compiled too: their loaders read them after the prefetch."""
    world = await build_world(pair.on, pair.on_client)
    before = STATS["compiled"]
    on, off = await _both(pair, MIXED, {"id": world.full}, world.callers["admin"])
    assert on == off
    assert STATS["compiled"] == before + 1
    user = on["data"]["user"]  # type: ignore[index]
    assert user["orders"]["totalCount"] == 5
    assert user["traits"]["paidOrders"] >= 2  # MP-2 paid, MP-3 completed
    assert {p["sku"] for p in user["preferences"]} >= {"A1", "B2"}
    assert "MINI_PROGRAM" in user["journey"]["path"]


VARIED = """
query ($id: ID, $n: Int, $orders: Boolean!, $ch: Channel) {
  user(id: $id) {
    id
    orders(first: $n, channel: $ch) @include(if: $orders) { totalCount nodes { sourceId } }
    ... on User @skip(if: $orders) { cart { items { sku } } }
    ...Consents
  }
}
fragment Consents on User { consents @include(if: $orders) { purpose granted } }
"""


@pytest.mark.parametrize("app_store_url", ["shared"], indirect=True)
async def test_one_document_with_changing_variables_answers_each_time_as_the_resolvers(pair: Pair) -> None:
    """What a plan keeps between requests follows the variables under its roots, not the first
    request's: the same document alternates them, and every answer is the resolvers' own."""
    world = await build_world(pair.on, pair.on_client)
    admin, before = world.callers["admin"], STATS["compiled"]
    runs: list[dict[str, object]] = [
        {"id": world.full, "n": 2, "orders": True},
        {"id": world.full, "n": 2, "orders": False},
        {"id": world.absorbed, "n": 1, "orders": True, "ch": "MINI_PROGRAM"},
        {"id": world.full, "orders": True},  # `first` left to its default
        {"id": world.full, "n": None, "orders": True},
        {"id": world.full, "n": 2, "orders": True},
    ]
    seen = set()
    for variables in runs:
        on, off = await _both(pair, VARIED, variables, admin)
        assert on == off, variables
        seen.add(str(on))
    assert len(seen) >= 4
    assert STATS["compiled"] == before + len(runs)
