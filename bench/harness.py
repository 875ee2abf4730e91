"""What the HTTP benchmarks share: the server process, client loops, CPU accounting, SQL counting."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.db.engine import Database
from app.settings import Settings

HOST = "127.0.0.1"
IGNORED = ("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")
MAX_REQUESTS_PER_LOOP = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
# One request of a client loop: returns what went wrong ("" when the answer was right).
Step = Callable[[httpx.AsyncClient, int, int], Awaitable[str]]


@dataclass
class Run:
    """What one timed load run saw."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


@dataclass
class Cpu:
    """CPU seconds used during a window: per server process, PostgreSQL in all, this process."""

    server: dict[int, float]
    postgres: float
    own: float
    machine_busy: float = 0.0  # fraction of all cores busy (user, system, irq), from /proc/stat


def server_env(settings: Settings) -> dict[str, str]:
    """The environment a benchmarked server reads its settings from: the bench's database and keys."""
    return {
        "TROIKA_ENV": "development",
        "TROIKA_DATABASE_URL": settings.database_url,
        "TROIKA_TOKEN_SECRET": settings.secret("token_secret"),
        "TROIKA_PII_KEY": settings.secret("pii_key"),
        "TROIKA_PII_INDEX_KEY": settings.secret("pii_index_key"),
        "TROIKA_VAR_DIR": str(settings.var_dir),
        # One client address and one key drive thousands of requests a second: measured here is
        # what serving costs, so the rate limits (which would refuse most of them) are off.
        "TROIKA_RATE_LIMIT_ENABLED": "false",
    }


def start_server(
    settings: Settings,
    port: int,
    workers: int,
    log_path: Path,
    *,
    access_log: bool = False,
    reuseport: bool = False,
) -> subprocess.Popen[bytes]:
    """Start the app factory in its own process group, logging to `log_path`.

    By default uvicorn itself (its workers share one listening socket); with `reuseport`,
    `troika serve`, whose workers each listen on their own SO_REUSEPORT socket. The access log is
    off unless asked for: one log line per request is a measurable cost at these rates.
    """
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            raise SystemExit(f"port {port} is already in use; pick another with --port")
    env = dict(os.environ) | server_env(settings)
    if reuseport:
        cmd = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--host", HOST]
    else:
        cmd = [
            str(Path(sys.executable).parent / "uvicorn"),
            "app.main:create_app",
            "--factory",
            "--host",
            HOST,
        ]
    cmd += ["--port", str(port), "--workers", str(workers)] + ([] if access_log else ["--no-access-log"])
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


async def load(base: str, headers: dict[str, str], step: Step, concurrency: int, seconds: float) -> Run:
    """Run `concurrency` loops of `step` against the server for `seconds`, timing each step."""
    run = Run()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0, headers=headers) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def loop(n: int) -> None:
            for i in range(MAX_REQUESTS_PER_LOOP):
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                try:
                    problem = await step(client, n, i)
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


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat's first line."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def measure_cpu(root: int, work: Callable[[], Any], *, postgres: bool) -> tuple[Any, Cpu]:
    """Call `work()` and return its result with the CPU the server, PostgreSQL and we spent."""
    before = (
        cpu_seconds(server_pids(root)),
        cpu_seconds(postgres_pids() if postgres else []),
        time.process_time(),
    )
    ticks = machine_ticks()
    result = work()
    ticks_after = machine_ticks()
    # Backends opened during the window count too (they start from zero).
    after = (
        cpu_seconds(server_pids(root)),
        cpu_seconds(postgres_pids() if postgres else []),
        time.process_time(),
    )
    server = {pid: after[0][pid] - before[0].get(pid, 0.0) for pid in after[0]}
    pg = sum(after[1][pid] - before[1].get(pid, 0.0) for pid in after[1])
    busy = (ticks_after[0] - ticks[0]) / max(ticks_after[1] - ticks[1], 1)
    return result, Cpu(server=server, postgres=pg, own=after[2] - before[2], machine_busy=busy)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values)) - 1))]


def all_engines(db: Database) -> list[Engine]:
    """Every distinct sync engine of the hub and its channel stores."""
    engines = []
    for group in (db, *(store.engines for store in db.stores)):
        engines.append(group.write_engine)
        if group.read_engine.pool is not group.write_engine.pool:  # else an option view of the writer
            engines.append(group.read_engine)
    return list({id(e.sync_engine): e.sync_engine for e in engines}.values())


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    """Collect the SQL statements (minus BEGIN/PRAGMA/SAVEPOINT/RELEASE) run on any engine of `db`."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(IGNORED):
            seen.append(" ".join(statement.split()))

    engines = all_engines(db)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)


def report(run: Run, cpu: Cpu, *, unit: str, per: int, pg: bool) -> None:
    """Print throughput, latency and CPU per `unit` (`per` units were processed in the run)."""
    n = len(run.latencies)
    lat = sorted(x * 1000 for x in run.latencies)
    print(f"requests: {n} in {run.seconds:.1f}s, errors: {run.errors}")
    if run.first_error:
        print(f"first error: {run.first_error}")
    print(
        f"req/s: {n / run.seconds:.0f}"
        + (f", {unit}/s: {per / run.seconds:.0f}" if unit != "request" else "")
    )
    print(
        f"latency ms: p50 {percentile(lat, 50):.1f}  p90 {percentile(lat, 90):.1f}  "
        f"p95 {percentile(lat, 95):.1f}  p99 {percentile(lat, 99):.1f}  max {lat[-1]:.1f}"
    )
    report_cpu(cpu, unit=unit, per=per, pg=pg, generator=("load generator", cpu.own))


def report_cpu(cpu: Cpu, *, unit: str, per: int, pg: bool, generator: tuple[str, float]) -> None:
    """The CPU lines of a report: per server process, per unit, and how busy the machine was."""
    busy = ", ".join(f"{pid}: {sec:.1f}s" for pid, sec in cpu.server.items() if sec >= 0.05)
    print(f"server CPU per process: {busy}")
    line = f"CPU ms per {unit}: server {1000 * sum(cpu.server.values()) / per:.3f}"
    if pg:
        line += f", postgres {1000 * cpu.postgres / per:.3f}"
    label, seconds = generator
    print(f"{line}, {label} {1000 * seconds / per:.3f}")
    print(f"machine CPU busy: {100 * cpu.machine_busy:.0f}% of {os.cpu_count()} cores")
