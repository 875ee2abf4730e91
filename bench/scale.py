"""Scale-out on one machine: one instance against two instances and a streaming replica.

Starts its own PostgreSQL primary and streaming replica (pg_basebackup, tests/replicas/cluster.py),
generates a dataset on the primary, then runs the unified-user read and APP ingestion at once:
first against one instance (`--workers 2`, no replica), then against two instances
(`--workers 1` each, GraphQL queries on the replica), the clients alternating between them.
Reports req/s, p50/p99, records/s and each process group's CPU. On two cores this measures what
the extra machinery costs, not linear scaling: every process shares the same cores.

    .venv/bin/python -m bench.scale --users 5000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import harness
from bench.generate import bench_settings
from bench.ingest import Tally
from bench.ingest import make_step as ingest_step
from bench.ingest import prepare as prepare_ingest
from bench.query import QUERIES
from bench.query import make_step as query_step
from bench.query import prepare as prepare_query
from tests.replicas.cluster import Cluster, streaming_replica


async def _caught_up(cluster: Cluster) -> None:
    replica = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.replica_port}/postgres")
    try:
        for _ in range(600):
            if await replica.fetchval("SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"):
                return
            await asyncio.sleep(0.1)
    finally:
        await replica.close()
    raise SystemExit("the replica did not catch up")


def _postmasters(cluster: Cluster) -> dict[str, int]:
    """The primary's and the replica's postmaster pids (the first line of postmaster.pid)."""
    return {
        name: int((cluster.root / name / "postmaster.pid").read_text().split()[0])
        for name in ("primary", "replica")
        if (cluster.root / name / "postmaster.pid").exists()
    }


async def _run(
    bases: list[str],
    procs: list[subprocess.Popen[bytes]],
    args: argparse.Namespace,
    setup: tuple[str, ...],
    cluster: Cluster,
) -> dict[str, object]:
    key, ids_csv, service, pool_csv, tag = setup
    ids = [int(i) for i in ids_csv.split(",")]
    pool = pool_csv.split(",")
    tally = Tally()
    read = query_step(QUERIES["unified"], ids)
    tag = f"{tag}-{len(bases)}"  # each layout, and below each instance's senders, its own record ids

    async def spread(steps: list[harness.Step], headers: dict[str, str], concurrency: int) -> harness.Run:
        runs = await asyncio.gather(
            *(
                harness.load(base, headers, step, max(1, concurrency // len(bases)), args.seconds)
                for base, step in zip(bases, steps, strict=True)
            )
        )
        total = harness.Run(seconds=max(r.seconds for r in runs))
        for r in runs:
            total.latencies += r.latencies
            total.errors += r.errors
            total.first_error = total.first_error or r.first_error
        return total

    groups = {f"instance {i + 1}": harness.server_pids(p.pid) for i, p in enumerate(procs)}
    groups |= {f"PostgreSQL {name}": harness.server_pids(pid) for name, pid in _postmasters(cluster).items()}
    before = {name: sum(harness.cpu_seconds(pids).values()) for name, pids in groups.items()}
    started = time.perf_counter()
    reads, writes = await asyncio.gather(
        spread([read] * len(bases), {"Authorization": f"Bearer {key}"}, args.concurrency),
        spread(
            [ingest_step(f"{tag}-{i}", pool, args.batch, tally) for i in range(len(bases))],
            {"Authorization": f"Bearer {service}"},
            args.senders,
        ),
    )
    wall = time.perf_counter() - started
    groups = {name: harness.server_pids(pids[0]) for name, pids in groups.items()}  # forks since
    cpu = {name: sum(harness.cpu_seconds(pids).values()) - before[name] for name, pids in groups.items()}
    where: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        texts = [(await http.get(f"{base}/metrics")).text for base in bases]
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "troika_db_query_reads_total":
                    where[sample.labels["target"]] = where.get(sample.labels["target"], 0) + sample.value
    lat = sorted(reads.latencies)
    return {
        "req/s": len(lat) / reads.seconds,
        "p50 ms": 1000 * harness.percentile(lat, 50),
        "p99 ms": 1000 * harness.percentile(lat, 99),
        "read errors": reads.errors,
        "records/s": tally.accepted / writes.seconds,
        "ingest errors": writes.errors,
        "first error": reads.first_error or writes.first_error,
        **{f"{name} CPU s": round(seconds, 1) for name, seconds in cpu.items()},
        "queries read on": where or "the primary (no replica configured)",
        "wall s": round(wall, 1),
    }


async def _prepare(url: str) -> tuple[str, ...]:
    settings = bench_settings(url)
    key, ids = await prepare_query(settings)
    service, pool = await prepare_ingest(settings, 2000, f"scale{int(time.time())}")
    return key, ",".join(map(str, ids)), service, ",".join(pool), f"scale{int(time.time())}"


def _serve(url: str, port: int, workers: int, replica: str | None, log: Path) -> subprocess.Popen[bytes]:
    if replica:
        os.environ["TROIKA_DATABASE_REPLICA_URLS"] = replica
    else:
        os.environ.pop("TROIKA_DATABASE_REPLICA_URLS", None)
    return harness.start_server(bench_settings(url), port, workers, log, reuseport=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16, help="read clients in all")
    parser.add_argument("--senders", type=int, default=2, help="ingestion senders in all")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--port", type=int, default=8710)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="troika-scale-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user below it
    with streaming_replica(root / "pg") as cluster:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.primary_port),
                "-U",
                "postgres",
                "-qc",
                "CREATE DATABASE scale",
            ],
            check=True,
        )
        url = cluster.url(cluster.primary_port, "scale")
        subprocess.run(
            [sys.executable, "-m", "bench.generate", "--database-url", url, "--users", str(args.users)],
            check=True,
        )
        asyncio.run(_caught_up(cluster))
        setup = asyncio.run(_prepare(url))
        layouts: dict[str, list[tuple[int, int, str | None]]] = {
            "one instance, 2 workers, primary only": [(args.port, 2, None)],
            "two instances, 1 worker each, replica": [
                (args.port + 1, 1, cluster.url(cluster.replica_port, "scale")),
                (args.port + 2, 1, cluster.url(cluster.replica_port, "scale")),
            ],
        }
        for title, layout in layouts.items():
            procs = [_serve(url, port, w, rep, root / f"{port}.log") for port, w, rep in layout]
            bases = [f"http://{harness.HOST}:{port}" for port, _, _ in layout]
            try:
                for proc, base in zip(procs, bases, strict=True):
                    asyncio.run(harness.wait_healthy(proc, base, within=120))
                asyncio.run(_caught_up(cluster))
                result = asyncio.run(_run(bases, procs, args, setup, cluster))
            finally:
                for proc in procs:
                    harness.stop_server(proc)
            print(f"\n{title}")
            for name, value in result.items():
                print(f"  {name}: {value:.1f}" if isinstance(value, float) else f"  {name}: {value}")


if __name__ == "__main__":
    main()
