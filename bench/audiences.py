"""Evaluate a three-condition audience over a generated dataset (bench.generate) on PostgreSQL.

    python -m bench.audiences --database-url postgresql+asyncpg://…/troika_bench [--runs 5]

The condition: orders in the mini program within N days, not a paid order in the APP, and an
interest tag. The bench dataset's clock ends at 2026-11-01, so "within N days" is counted back
from there (the evaluation's `now`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from app.db.engine import make_database
from app.ingest.dictionary import load_dictionary
from app.services.audience_eval import evaluated
from app.services.audiences import Audiences
from bench.generate import EPOCH_END, bench_settings

CONDITION = {
    "all": [
        {"orders": {"channel": "MINI_PROGRAM", "withinDays": 30}},
        {"not": {"orders": {"channel": "APP", "statuses": ["PAID"]}}},
        {"interest": {"tag": "kids"}},
    ]
}


async def run(url: str, runs: int) -> None:
    settings = bench_settings(url)
    db = make_database(settings)
    service = Audiences(db, load_dictionary(None), settings)
    node = service.parse(CONDITION)
    timings, size = [], 0
    try:
        for _ in range(runs):
            start = time.perf_counter()
            async with evaluated(db, service.dictionary, settings, node, now=EPOCH_END) as ev:
                size = await ev.size()
            timings.append(time.perf_counter() - start)
    finally:
        await db.dispose()
    print(f"size {size}; {runs} runs: median {statistics.median(timings):.3f} s, max {max(timings):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.runs))


if __name__ == "__main__":
    main()
