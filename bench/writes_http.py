"""Server CPU per setConsent over real HTTP: `troika serve` (its workers, their background loops,
the response cache and the change feed included), the race's mix write by the mini program's key.

A fresh PostgreSQL database (`--prefix`, dropped after) gets `--users` users with a mini-program
openid; `troika serve --workers N` serves it; `--clients` httpx loops send the write back to back.
Reported: writes/s, latency, and CPU per write of the whole server process tree and of PostgreSQL
(/proc: every postgres process, and this database's backends alone), plus the server's idle CPU
over as long a window (what its loops cost with no traffic).
With `--profile SECONDS`, py-spy (if installed) samples one worker while the load runs.
Rerun: `python -m bench.writes_http --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bench import harness
from bench.writes import fresh_app
from bench.writes_race import MIX_WRITE, keys_and_users


def step_for(ids: list[str]) -> harness.Step:
    async def step(client: httpx.AsyncClient, n: int, i: int) -> str:
        k = n * 100_003 + i
        body = {"query": MIX_WRITE, "variables": {"id": ids[k * 7919 % len(ids)], "g": k % 2 == 0}}
        answer = await client.post("/graphql", json=body)
        return "" if answer.status_code == 200 and "errors" not in answer.text else answer.text

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--prefix", default="writes_http", help="the made database's name starts so")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy one worker this long")
    args = parser.parse_args()
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    async with fresh_app(args.database_url, args.prefix) as (app, url):
        _operator, mini, ids = await keys_and_users(app, args.users)
        settings = app.state.settings  # the server's response cache is on (start_server's env)
        await app.state.db.dispose()
        log = settings.var_dir / f"writes-http-{args.port}.log"
        proc = harness.start_server(settings, args.port, args.workers, log, reuseport=True)
        try:
            database = make_url(url).database or ""
            await asyncio.to_thread(serve_and_measure, proc, args, mini, ids, database)
        finally:
            harness.stop_server(proc)


def serve_and_measure(
    proc: subprocess.Popen[bytes], args: argparse.Namespace, key: str, ids: list[str], database: str
) -> None:
    base = f"http://{harness.HOST}:{args.port}"
    headers = {"Authorization": f"Bearer {key}"}
    step = step_for(ids)
    asyncio.run(harness.wait_healthy(proc, base))
    asyncio.run(harness.load(base, headers, step, args.clients, 3.0))  # warm-up: plans, pools, the key
    _, idle = harness.measure_cpu(proc.pid, lambda: time.sleep(args.seconds), postgres=False)
    print(f"idle server CPU over {args.seconds:.0f}s: {1000 * sum(idle.server.values()):.0f} ms")
    for n in range(args.rounds):
        spies = _py_spy(proc.pid, args) if args.profile and n == 0 else []
        own = backends_cpu(database)
        run, cpu = harness.measure_cpu(
            proc.pid,
            lambda: asyncio.run(harness.load(base, headers, step, args.clients, args.seconds)),
            postgres=True,
        )
        own_after = backends_cpu(database)
        own_ms = sum(t - own.get(pid, 0.0) for pid, t in own_after.items()) * 1000
        for spy in spies:
            spy.wait()
        writes = len(run.latencies)
        print(f"round {n + 1}: {args.workers} worker(s), {args.clients} clients")
        harness.report(run, cpu, unit="write", per=writes, pg=True)
        print(f"PostgreSQL CPU ms per write, this database's backends only: {own_ms / max(writes, 1):.3f}")


def backends_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (its process title names
    it), from /proc: the writes' own, without the other databases' sessions on the machine."""
    out: dict[int, float] = {}
    for pid in harness.postgres_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if f" {database} " in title:
                out[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except OSError:
            continue
    return out


def _py_spy(root: int, args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    """py-spy on every worker (the two busiest processes after the warm-up), GIL holders only:
    samples of work done, not of waiting."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("py-spy is not installed: no profile")
        return []
    used = harness.cpu_seconds(harness.server_pids(root))
    spies = []
    for worker in sorted(used, key=lambda pid: used[pid])[-args.workers :]:
        out = Path(f"/tmp/writes-http-{worker}.txt")
        print(f"py-spy on worker {worker} -> {out}")
        cmd = [exe, "record", "-p", str(worker), "-d", str(int(args.profile)), "-f", "raw", "-o", str(out)]
        spies.append(subprocess.Popen([*cmd, "-r", "200", "--gil"], stdout=subprocess.DEVNULL))
    return spies


if __name__ == "__main__":
    main()
