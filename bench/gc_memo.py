"""What the subscription leak of issue 19 did to garbage collection, in one process, no server.

Runs N events through one subscription's executor, as graphql-core 3.3 builds it (its memo of
collected subfields shared by every event) and as Troika's `CallerExecutor` does (a memo per event),
keeps the executor alive as an open subscription does, and times a full collection. The selection
has three object levels, like `userChanged { user { consents } }`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from graphql import build_schema, parse
from graphql.execution import Executor, map_source_to_response_event
from graphql.execution.incremental import IncrementalExecutor

from graphql_schema.validation import CallerExecutor

SCHEMA = build_schema("""
type Query { x: String }
type Consent { purpose: String, channel: String, granted: Boolean }
type User { id: ID, consents: [Consent] }
type Change { userId: ID, topic: String, cursor: String, user: User }
type Subscription { changes: Change }
""")
DOCUMENT = parse(
    "subscription { changes { userId topic cursor user { id consents { purpose channel granted } } } }"
)
CONSENT = {"purpose": "PUSH", "channel": "APP", "granted": True}
EVENT = {
    "changes": {"userId": 1, "topic": "CONSENT", "cursor": "1", "user": {"id": 1, "consents": [CONSENT]}}
}


async def events(n: int) -> AsyncIterator[dict[str, Any]]:
    for _ in range(n):
        yield EVENT


async def deliver(cls: type[Executor[Any]], n: int) -> Any:
    """The subscription's executor after `n` events (still referenced, as while it is open)."""
    executor = cls.build(SCHEMA, DOCUMENT)
    assert isinstance(executor, Executor)
    async for _ in map_source_to_response_event(executor, events(n)):
        pass
    return executor


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 300_000])
    args = parser.parse_args()
    gc.freeze()  # as the server does at start-up: only what comes after is walked
    for cls, label in (
        (IncrementalExecutor, "graphql-core 3.3 (shared memo)"),
        (CallerExecutor, "CallerExecutor"),
    ):
        for n in args.events:
            before = len(gc.get_objects())
            executor = asyncio.run(deliver(cls, n))
            tracked = len(gc.get_objects()) - before
            pause = full_collection_ms()
            print(f"{label:31s} {n:>8,} events: {tracked:>+11,} tracked, full collection {pause:,.0f} ms")
            del executor
            gc.collect()


if __name__ == "__main__":
    main()
