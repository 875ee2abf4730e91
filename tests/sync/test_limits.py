"""Subscriptions are bounded like queries, refused with the same codes, and the socket lives on."""

from __future__ import annotations

from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.sync.ws import listening, subscriptions

CHANGES = "subscription { changes { userId topic } }"
ALIASED = "subscription { " + " ".join(f"c{i}: changes {{ userId }}" for i in range(21)) + " }"
ORDERS_PAGE = (
    "orders(first: 100) { nodes { items { sku name quantity } id status channel sourceId totalCents "
    "currency placedAt updatedAt statusCode } }"
)
COSTLY = (  # 8 pages of 100 orders, each order 14 fields: over the cost limit of 10,000
    "subscription { changes { user { " + " ".join(f"o{i}: {ORDERS_PAGE}" for i in range(8)) + " } } }"
)
TOO_LARGE_PAGE = "subscription { changes { user { orders(first: 500) { totalCount } } } }"
UNPARSABLE = "subscription { changes { userId "
INTROSPECTION = "subscription { changes { __schema { types { name } } } }"


async def test_subscriptions_are_bounded(app: FastAPI, address: str) -> None:
    admin = await operator_key(app, "admin")
    async with subscriptions(address, admin) as subs:
        for query, code in (
            (ALIASED, "OPERATION_LIMIT_EXCEEDED"),
            (COSTLY, "OPERATION_LIMIT_EXCEEDED"),
            (TOO_LARGE_PAGE, "BAD_USER_INPUT"),
            (UNPARSABLE, "GRAPHQL_PARSE_FAILED"),
            (INTROSPECTION, "GRAPHQL_VALIDATION_FAILED"),  # __schema is a Query field only
        ):
            assert await subs.error_code(await subs.subscribe(query)) == code, query
        # The connection is still good for a subscription within the bounds: it starts listening.
        await subs.subscribe(CHANGES)
        await listening(app.state.feed, 1)
