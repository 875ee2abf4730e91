"""Measure one GraphQL read over real HTTP, and count its SQL statements, to know the read path's cost."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.db.engine import make_database
from app.db.models import User
from app.main import create_app
from app.settings import Settings
from bench.generate import bench_settings

HOST = "127.0.0.1"
USER_QUERY = (
    "query ($id: ID!) { user(id: $id) { id phone createdAt "
    "identities { kind namespace value channel linkedAt linkedBy } } }"
)
LIST_QUERY = "{ users(first: 100) { nodes { id identities { kind value } } } }"
IGNORED = ("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")
MAX_REQUESTS_PER_LOOP = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """What one timed load run saw."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


async def prepare(settings: Settings, sample: int = 1000) -> tuple[str, list[int]]:
    """Mint an operator key (viewer + pii_reader) and pick random active user ids."""
    db = make_database(settings)
    try:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(
                session,
                kind=PrincipalKind.OPERATOR,
                roles=frozenset({Role.VIEWER, Role.PII_READER}),
                name="bench read_path",
            )
        async with db.read_sessions() as session:
            stmt = select(User.id).where(User.merged_into_id.is_(None)).order_by(func.random()).limit(sample)
            ids = list((await session.execute(stmt)).scalars())
    finally:
        await db.dispose()
    if not ids:
        raise SystemExit("no active users: run bench.generate first")
    return new.raw, ids


async def count_statements(settings: Settings, key: str, user_id: int) -> dict[str, list[str]]:
    """Send each query in-process (after one warm-up) and return the SQL statements it executed."""
    app = create_app(settings)
    db = app.state.db
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(IGNORED):
            seen.append(" ".join(statement.split()))

    engines = {id(e.sync_engine): e.sync_engine for e in (db.read_engine, db.write_engine)}
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", on_execute)
    queries = {
        "user(id) + identities": (USER_QUERY, {"id": str(user_id)}),
        "users(first: 100) + identities": (LIST_QUERY, {}),
    }
    out: dict[str, list[str]] = {}
    try:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
            for name, (query, variables) in queries.items():
                body = {"query": query, "variables": variables}
                (await client.post("/graphql", json=body, headers=headers)).raise_for_status()  # warm-up
                seen.clear()
                resp = await client.post("/graphql", json=body, headers=headers)
                if resp.status_code != 200 or resp.json().get("errors"):
                    raise SystemExit(f"{name} failed in-process: {resp.text[:500]}")
                out[name] = list(seen)
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", on_execute)
        await db.dispose()
    return out


def start_server(settings: Settings, port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `troika serve` in its own process group, logging to `log_path`."""
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            raise SystemExit(f"port {port} is already in use; pick another with --port")
    env = dict(os.environ)
    env.update(
        TROIKA_ENV="development",
        TROIKA_DATABASE_URL=settings.database_url,
        TROIKA_TOKEN_SECRET=settings.secret("token_secret"),
        TROIKA_PII_KEY=settings.secret("pii_key"),
        TROIKA_VAR_DIR=str(settings.var_dir),
    )
    troika = Path(sys.executable).parent / "troika"
    cmd = [str(troika), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    log = log_path.open("wb")
    try:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (uvicorn stops its workers); SIGKILL its own process group if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


async def wait_healthy(proc: subprocess.Popen[bytes], base: str, within: float = 60.0) -> None:
    """Poll GET /healthz until it answers, the server dies, or `within` seconds pass."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode} before answering /healthz")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"server did not answer /healthz within {within:.0f}s")


async def load(base: str, key: str, ids: list[int], concurrency: int, seconds: float) -> Run:
    """Run `concurrency` request loops against the server for `seconds`."""
    run = Run()
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0, headers=headers) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def loop(n: int) -> None:
            rng = random.Random(n)
            for _ in range(MAX_REQUESTS_PER_LOOP):
                if time.perf_counter() >= deadline:
                    return
                body = {"query": USER_QUERY, "variables": {"id": str(rng.choice(ids))}}
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/graphql", json=body)
                    payload = resp.json()
                    problem = (
                        f"HTTP {resp.status_code}"
                        if resp.status_code != 200
                        else str(payload.get("errors") or "")
                        or ("" if (payload.get("data") or {}).get("user") else "user is null")
                    )
                except (httpx.HTTPError, ValueError) as exc:
                    problem = repr(exc)
                run.latencies.append(time.perf_counter() - t0)
                if problem:
                    run.errors += 1
                    run.first_error = run.first_error or problem[:300]

        await asyncio.gather(*(loop(n) for n in range(concurrency)))
        run.seconds = time.perf_counter() - start
    return run


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live pid, from /proc (Linux)."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def server_pids(root: int) -> list[int]:
    """The server process and its descendants (uvicorn workers)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            todo.extend(int(c) for c in task.read_text().split())
    return pids


def postgres_pids() -> list[int]:
    """Every process named postgres (the cluster serving the benchmark)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values)) - 1))]


def main() -> None:
    """Parse arguments, count statements, start the server, load it, report, and always stop it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load first")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if not (1 <= args.concurrency <= 1024 and 0 < args.seconds <= 600 and 0 <= args.warmup <= 60):
        parser.error("--concurrency 1..1024, --seconds 0..600, --warmup 0..60")
    settings = bench_settings(args.database_url)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key, ids = asyncio.run(prepare(settings))
    statements = asyncio.run(count_statements(settings, key, ids[0]))
    for name, stmts in statements.items():
        print(f"statements per request, {name}: {len(stmts)}")
        for s in stmts:
            print(f"    {s[:110]}")
    log_path = settings.var_dir / f"server-{args.port}.log"
    base = f"http://{HOST}:{args.port}"
    proc = start_server(settings, args.port, args.workers, log_path)
    try:
        asyncio.run(wait_healthy(proc, base))
        if args.warmup:
            asyncio.run(load(base, key, ids, args.concurrency, args.warmup))
        pg = [] if settings.is_sqlite else postgres_pids()
        before = cpu_seconds(server_pids(proc.pid)), cpu_seconds(pg), time.process_time()
        run = asyncio.run(load(base, key, ids, args.concurrency, args.seconds))
        pg_now = [] if settings.is_sqlite else postgres_pids()  # backends opened during the run too
        after = cpu_seconds(server_pids(proc.pid)), cpu_seconds(pg_now), time.process_time()
    finally:
        stop_server(proc)
    n = len(run.latencies)
    if not n:
        raise SystemExit("no request completed")
    lat = sorted(x * 1000 for x in run.latencies)
    server_cpu = {pid: after[0][pid] - before[0].get(pid, 0.0) for pid in after[0]}
    db_cpu = sum(after[1][pid] - before[1].get(pid, 0.0) for pid in after[1])
    print(f"server: {args.workers} worker(s), log {log_path}")
    print(f"requests: {n} in {run.seconds:.1f}s, errors: {run.errors}")
    if run.first_error:
        print(f"first error: {run.first_error}")
    print(f"req/s: {n / run.seconds:.0f}")
    print(
        f"latency ms: p50 {percentile(lat, 50):.1f}  p90 {percentile(lat, 90):.1f}  "
        f"p99 {percentile(lat, 99):.1f}  mean {statistics.fmean(lat):.1f}  max {lat[-1]:.1f}"
    )
    busy = ", ".join(f"{pid}: {sec:.1f}s" for pid, sec in server_cpu.items() if sec >= 0.05)
    print(f"server CPU per process: {busy}")
    cpu_line = f"CPU ms per request: server {1000 * sum(server_cpu.values()) / n:.2f}"
    if pg:
        cpu_line += f", postgres {1000 * db_cpu / n:.2f}"
    print(f"{cpu_line}, load generator {1000 * (after[2] - before[2]) / n:.2f}")


if __name__ == "__main__":
    main()
