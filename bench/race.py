"""Race Troika against the peer (PostGraphile 5, ../shared/peers) in one window, alternated.

Run `bench.race_setup` first (both datasets, the peer installed). Then this script mints the keys
and writes the query files (under $TMPDIR/troika-race), starts the peer, and for each workload
starts Troika (`troika serve --workers 2`, this checkout's code: whatever read path it has) and
runs the peer's `bench.py` (wrk, CPU from /proc, PostgreSQL's counted with the backends that exit
during a run) on `troika peer troika peer …`. It prints each run and, per workload, both servers'
req/s, p50/p99, CPU per request and the ratio of each alternated pair. Workloads:

- `cold`: the unified query for 10,000 users, Troika's response cache off;
- `cached`: the same 10,000 users with the cache on, after `--cache-warmup` seconds of load;
- `hot`: 1,000 users, cache on;
- `mix`: 80% reads of the 1,000 hot users, 20% consent writes (`setConsent` by the mini program's
  service key; the peer's `updateConsentByRowId`), then the stale-read check: for `--stale-users`
  users, read (twice, on two connections), write the opposite consent, read again at once on both
  connections; a read that does not show the write is stale.

    .venv/bin/python -m bench.race [--workloads cold,cached,hot,mix] [--rounds 2] [--secs 20]
        [--troika-env TROIKA_X=Y ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.cli import migrate
from app.db.engine import make_database
from app.db.models import User
from app.domain import Channel
from app.settings import Settings
from bench import harness
from bench.generate import bench_settings
from bench.query import QUERIES
from bench.race_setup import PEER_DB, PEERS, TROIKA_DB, pg_url, psql

WORK = Path(tempfile.gettempdir()) / "troika-race"
TROIKA_PORT = 8790
PEER_PORT = 5690
CACHE_BYTES = str(256 * 1024 * 1024)  # 10,000 answers of ~7 KB in each worker's cache
MUTATION = (
    "mutation ($id: ID!, $g: Boolean!) { setConsent(input: {userId: $id, purpose: PUSH, "
    "channel: MINI_PROGRAM, granted: $g, sourceChannel: MINI_PROGRAM}) { id } }"
)


@dataclass(frozen=True)
class Workload:
    name: str
    cache: bool
    troika_file: str
    peer_file: str
    nids: int
    lua: str | None = None  # the peer's wrk_mix.lua for the mix


WORKLOADS = {
    "cold": Workload("cold", False, "troika_users.graphql", "query_postgraphile.graphql", 10_000),
    "cached": Workload("cached", True, "troika_users.graphql", "query_postgraphile.graphql", 10_000),
    "hot": Workload("hot", True, "troika_hot.graphql", "query_postgraphile.graphql", 1_000),
    "mix": Workload("mix", True, "troika_mix.graphql", "peer_mix.graphql", 1_000, "wrk_mix.lua"),
}


async def keys_and_ids(settings: Settings, users: int) -> tuple[str, str, list[int]]:
    """A viewer key, the mini program's service key, and `users` active users (seeded)."""
    db = make_database(settings)
    try:
        async with db.write_sessions() as session, session.begin():
            viewer = await create_key(
                session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.VIEWER}), name="race"
            )
            service = await create_key(
                session, kind=PrincipalKind.SERVICE, channel=Channel.MINI_PROGRAM, name="race"
            )
        async with db.read_sessions() as session:
            stmt = (
                select(User.id)
                .where(User.merged_into_id.is_(None), User.erased_at.is_(None))
                .order_by(User.id)
            )
            active = list((await session.execute(stmt)).scalars())
    finally:
        await db.dispose()
    return viewer.raw, service.raw, random.Random(1).sample(active, min(users, len(active)))


def write_files(peers: Path, viewer: str, service: str, ids: list[int]) -> None:
    """Query files with their ids and credentials, as the peer's wrk scripts read them."""
    WORK.mkdir(parents=True, exist_ok=True)
    hot = ids[:1000]

    def put(name: str, text: str) -> None:
        (WORK / name).write_text(text)

    query = QUERIES["unified"]
    for name, chosen in (
        ("troika_users.graphql", ids),
        ("troika_hot.graphql", hot),
        ("troika_mix.graphql", hot),
    ):
        put(name, query)
        put(f"{name}.ids", "\n".join(map(str, chosen)) + "\n")
        put(f"{name}.auth", f"Bearer {viewer}\n")
    put("troika_mix.graphql.mutation", MUTATION)
    put("troika_mix.graphql.wids", "\n".join(map(str, hot)) + "\n")
    put("troika_mix.graphql.mauth", f"Bearer {service}\n")
    # The peer's mix: its files as they are, its hot users by its formula, their consent rows.
    peer_hot = [(k * 7919) % 100_000 + 1 for k in range(1, 1001)]
    shutil.copyfile(peers / "query_postgraphile_mix.graphql", WORK / "peer_mix.graphql")
    shutil.copyfile(peers / "query_postgraphile_mix.graphql.mutation", WORK / "peer_mix.graphql.mutation")
    put("peer_mix.graphql.ids", "\n".join(map(str, peer_hot)) + "\n")
    wids = psql(
        "-c", f"SELECT id FROM consents WHERE user_id IN ({','.join(map(str, peer_hot))})", database=PEER_DB
    )
    put("peer_mix.graphql.wids", wids + "\n")


def wait_for(url: str, body: dict[str, Any], proc: subprocess.Popen[bytes], within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited ({proc.returncode}); see its log in {WORK}")
        with suppress(httpx.HTTPError):
            if httpx.post(url, json=body, timeout=2.0).status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {within:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (its workers too), SIGKILL if it lingers."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextmanager
def peer(peers: Path, pool: int) -> Iterator[Path]:
    """PostGraphile on its copy of the data, 2 workers, a pool of `pool` each; yields its pid file."""
    env = {
        **os.environ,
        "DATABASE_URL": pg_url(PEER_DB, driver="postgres"),
        "PG_POOL_MAX": str(pool),
        "WORKERS": "2",
        "PORT": str(PEER_PORT),
        "HOST": "127.0.0.1",
    }
    with (WORK / "peer.log").open("wb") as log:
        proc = subprocess.Popen(
            ["bash", str(peers / "postgraphile.sh"), "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(f"http://127.0.0.1:{PEER_PORT}/graphql", {"query": "{ __typename }"}, proc)
        pidfile = WORK / "peer.pid"
        pidfile.write_text(str(proc.pid))
        yield pidfile
    finally:
        stop(proc)


@contextmanager
def troika(settings: Settings, *, cache: bool, extra: dict[str, str]) -> Iterator[Path]:
    """`troika serve --workers 2` (a SO_REUSEPORT socket each) on the race's dataset."""
    os.environ["TROIKA_RESPONSE_CACHE_BYTES"] = CACHE_BYTES if cache else "0"
    os.environ.update(extra)
    proc = harness.start_server(settings, TROIKA_PORT, 2, WORK / "troika.log", reuseport=True)
    try:
        asyncio.run(harness.wait_healthy(proc, f"http://127.0.0.1:{TROIKA_PORT}"))
        pidfile = WORK / "troika.pid"
        pidfile.write_text(str(proc.pid))
        yield pidfile
    finally:
        harness.stop_server(proc)


def target(name: str, url: str, qfile: Path, pidfile: Path, idtype: str, w: Workload, peers: Path) -> str:
    fields = [url, str(qfile), str(pidfile), idtype, str(w.nids)]
    if w.lua:
        fields.append(str(peers / w.lua))
    return f"{name}={','.join(fields)}"


def race(
    w: Workload, peers: Path, troika_pid: Path, peer_pid: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The peer's bench.py on `troika peer` × rounds; its results (one dict per run)."""
    t = target(
        "troika",
        f"http://127.0.0.1:{TROIKA_PORT}/graphql",
        WORK / w.troika_file,
        troika_pid,
        "string",
        w,
        peers,
    )
    pq = WORK / w.peer_file if w.lua else peers / w.peer_file
    p = target("peer", f"http://127.0.0.1:{PEER_PORT}/graphql", pq, peer_pid, "int", w, peers)
    out = WORK / f"{w.name}.json"
    env = {
        **os.environ,
        "HARNESS": str(peers),
        "MYDBS": f"{TROIKA_DB},{PEER_DB}",
        "BENCH_OUT": str(out),
        "QUIET_LIMIT": os.environ.get("QUIET_LIMIT", str(args.quiet_limit)),
        "RETRIES": os.environ.get("RETRIES", "2"),
    }
    print(f"\n== {w.name} (Troika's response cache {'on' if w.cache else 'off'}) ==", flush=True)
    cmd = [sys.executable, str(peers / "bench.py"), "--secs", str(args.secs), "--conns", str(args.conns)]
    out.unlink(missing_ok=True)
    done = subprocess.run([*cmd, *[t, p] * args.rounds], env=env, check=False)
    if done.returncode != 0 or not out.exists():
        print(
            f"  {w.name}: the peer's bench.py failed (exit {done.returncode}); workload skipped", flush=True
        )
        return []
    runs: list[dict[str, Any]] = json.loads(out.read_text())
    for i, run in enumerate(runs):  # in the order given: troika, peer, troika, peer, …
        run["name"] = ("troika", "peer")[i % 2]
    return runs


def warm(w: Workload, peers: Path, seconds: int) -> None:
    """Untimed load, so the cache holds what the timed runs ask for."""
    if seconds <= 0:
        return
    qfile = WORK / w.troika_file
    cmd = [
        "wrk",
        "-t2",
        "-c32",
        f"-d{seconds}s",
        "-s",
        str(peers / "wrk_post.lua"),
        f"http://127.0.0.1:{TROIKA_PORT}/graphql",
        "--",
        str(qfile),
        "id",
        "string",
        str(w.nids),
    ]
    subprocess.run(cmd, capture_output=True, check=True)


def stale_reads(viewer: str, service: str, ids: list[int]) -> tuple[int, int]:
    """Reads that do not show a consent written just before them: (stale, reads)."""
    url = f"http://127.0.0.1:{TROIKA_PORT}/graphql"
    read = {"Authorization": f"Bearer {viewer}"}
    stale = reads = 0

    def push(client: httpx.Client, user_id: int) -> bool | None:
        body = client.post(
            url, json={"query": QUERIES["unified"], "variables": {"id": str(user_id)}}, headers=read
        )
        consents = body.json()["data"]["user"]["consents"]
        return next(
            (c["granted"] for c in consents if (c["purpose"], c["channel"]) == ("PUSH", "MINI_PROGRAM")), None
        )

    with httpx.Client() as a, httpx.Client() as b, httpx.Client() as writer:
        for user_id in ids:
            before = [push(a, user_id), push(b, user_id), push(a, user_id), push(b, user_id)]  # cached now
            wanted = not before[-1]
            answer = writer.post(
                url,
                json={"query": MUTATION, "variables": {"id": str(user_id), "g": wanted}},
                headers={"Authorization": f"Bearer {service}"},
            )
            if answer.status_code != 200 or answer.json().get("errors"):
                raise SystemExit(f"the stale-read check's write failed: {answer.text[:300]}")
            for client in (a, b):
                reads += 1
                stale += push(client, user_id) is not wanted
    return stale, reads


def summary(name: str, runs: list[dict[str, Any]], notes: str = "") -> None:
    t = [r for r in runs if r["name"] == "troika"]
    p = [r for r in runs if r["name"] == "peer"]
    ratios = [a["rps"] / b["rps"] for a, b in zip(t, p, strict=False) if b["rps"]]

    def span(rows: list[dict[str, Any]], key: str, fmt: str = ".0f") -> str:
        values = [r[key] for r in rows]
        return f"{min(values):{fmt}}–{max(values):{fmt}}" if values else "-"

    for label, rows in (("Troika", t), ("peer", p)):
        # Of the reads: in the mix wrk_mix.lua counts them apart from the writes (which never hit).
        hits = [100.0 * r.get("hits", 0) / max(1, r.get("reads") or r["requests"]) for r in rows]
        print(
            f"  {label:7s} req/s {span(rows, 'rps')}  p50 {span(rows, 'p50_ms', '.1f')} ms  "
            f"p99 {span(rows, 'p99_ms', '.1f')} ms  "
            f"CPU ms/req server {span(rows, 'server_ms_per_req', '.2f')} "
            f"+ PostgreSQL {span(rows, 'pg_ms_per_req', '.2f')}  bad {sum(r.get('bad', 0) for r in rows)}  "
            f"hits {min(hits, default=0):.1f}–{max(hits, default=0):.1f}% of reads  other cores "
            f"{span(rows, 'other_cores', '.2f')}"
        )
    shown = ", ".join(f"{r:.2f}×" for r in ratios)
    mean = f" (mean {statistics.mean(ratios):.2f}×)" if ratios else ""
    print(f"  {name}: Troika / peer req/s per alternated pair: {shown}{mean}{notes}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=Path, default=Path(os.environ.get("TROIKA_PEERS", PEERS)))
    parser.add_argument("--workloads", default="cold,cached,hot,mix")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--secs", type=int, default=20)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--cache-warmup", type=int, default=30, help="seconds of load before `cached`")
    parser.add_argument("--stale-users", type=int, default=200)
    parser.add_argument(
        "--pool",
        type=int,
        default=10,
        help="connections per worker of both servers (PostgreSQL's max_connections is shared with "
        "everything else on the machine; 16 requests per worker is the most that are in flight)",
    )
    parser.add_argument(
        "--quiet-limit",
        type=float,
        default=0.3,
        help="bench.py waits (up to 4 minutes) until other processes use fewer cores than this, and "
        "retries a run they disturbed (RETRIES, 2); on a shared machine raise it and read `other cores`",
    )
    parser.add_argument(
        "--troika-env",
        action="append",
        default=[],
        metavar="TROIKA_X=Y",
        help="a setting for the Troika server (repeatable)",
    )
    args = parser.parse_args()
    # Stopped by a signal (also when started in the background, where SIGINT is ignored), the
    # servers are still stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [WORKLOADS[n] for n in args.workloads.split(",")]
    extra = dict(item.split("=", 1) for item in args.troika_env)
    settings = bench_settings(pg_url(TROIKA_DB))
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)  # a dataset made before the newest migrations serves this checkout's code too
    viewer, service, ids = asyncio.run(keys_and_ids(settings, 10_000))
    write_files(args.peers, viewer, service, ids)
    results: dict[str, list[dict[str, Any]]] = {}
    notes: dict[str, str] = {}
    extra.setdefault("TROIKA_DB_POOL_SIZE", str(args.pool))
    with peer(args.peers, args.pool) as peer_pid:
        cold = [w for w in chosen if not w.cache]
        warm_ones = [w for w in chosen if w.cache]
        for w in cold:
            with troika(settings, cache=False, extra=extra) as troika_pid:
                results[w.name] = race(w, args.peers, troika_pid, peer_pid, args)
        if warm_ones:
            with troika(settings, cache=True, extra=extra) as troika_pid:
                for w in warm_ones:
                    if w.name == "cached":
                        warm(w, args.peers, args.cache_warmup)
                    results[w.name] = race(w, args.peers, troika_pid, peer_pid, args)
                    if w.name == "mix":
                        stale, reads = stale_reads(viewer, service, ids[: args.stale_users])
                        notes["mix"] = f"; stale reads {stale} of {reads}"
    print(
        f"\n== summary ({time.strftime('%Y-%m-%d %H:%M')} UTC; {args.rounds} rounds of {args.secs} s, "
        f"{args.conns} connections) =="
    )
    for name, runs in results.items():
        summary(name, runs, notes.get(name, ""))


if __name__ == "__main__":
    main()
