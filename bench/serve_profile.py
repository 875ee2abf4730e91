"""Profile one `troika serve` worker under wrk's load: uvicorn (httptools, uvloop), the middleware,
the fast lane and asyncpg, in the very process that serves, with cProfile or only counting.

The server runs in this process as a worker of `troika serve` runs (uvicorn.Config as app/serve.py
gives it, the app's lifespan: gc.freeze and the raised thresholds); wrk, started from here, drives
it with the race's cold request (the unified query, random users, a viewer key, the response cache
off). After `--warm` seconds of load it measures `--secs` seconds: this process's CPU per request
and, with `--profile`, the function calls per request and where the time goes; also the collector's
passes by generation and the longest event-loop stall seen (a watchdog task's lateness).

    .venv/bin/python -m bench.serve_profile --database-url postgresql+asyncpg://…/coldsrv_cold \
        [--profile] [--secs 10] [--conns 16]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import re
import resource
import tempfile
import time
from pathlib import Path

import uvicorn

from app.auth.principal import Role
from app.serve import APP, server_config
from bench.generate import bench_settings
from bench.harness import server_env
from bench.query import QUERIES, prepare

WRK_LUA = Path(__file__).resolve().parents[2] / "shared" / "peers" / "wrk_post.lua"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _watchdog(stalls: list[float], stop: asyncio.Event) -> None:
    """How late a 1 ms sleep wakes: the event loop's stalls (the collector, a long callback)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.001)
        stalls.append(loop.time() - before - 0.001)


async def _wrk(url: str, qfile: Path, secs: int, conns: int, nids: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", "-s", str(WRK_LUA), url,
        "--", str(qfile), "id", "string", str(nids),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode()
    found = re.search(r"WRK_JSON (\{.*\})", text)
    if not found:
        raise SystemExit(f"wrk: {text}")
    result: dict[str, float] = json.loads(found.group(1))
    return result


async def run(args: argparse.Namespace) -> None:
    settings = bench_settings(args.database_url)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key, ids = await prepare(settings, args.users, frozenset({Role.VIEWER}))
    work = Path(tempfile.mkdtemp(prefix="serve-profile-"))
    qfile = work / "q.graphql"
    qfile.write_text(QUERIES["unified"])
    (work / "q.graphql.ids").write_text("\n".join(map(str, ids)) + "\n")
    (work / "q.graphql.auth").write_text(f"Bearer {key}\n")
    os.environ.update(
        server_env(settings), TROIKA_RESPONSE_CACHE_BYTES="0", TROIKA_DB_POOL_SIZE=str(args.pool)
    )
    server = uvicorn.Server(server_config("127.0.0.1", args.port, access_log=False))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, no event
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{args.port}/graphql"
    try:
        await _wrk(url, qfile, args.warm, args.conns, len(ids))
        stalls: list[float] = []
        stop = asyncio.Event()
        watch = asyncio.create_task(_watchdog(stalls, stop))
        gc_before = [s["collections"] for s in gc.get_stats()]
        profile = cProfile.Profile() if args.profile else None
        cpu, wall = _cpu(), time.perf_counter()
        if profile is not None:
            profile.enable()
        result = await _wrk(url, qfile, args.secs, args.conns, len(ids))
        if profile is not None:
            profile.disable()
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
        stop.set()
        await watch
        gcs = [s["collections"] - b for s, b in zip(gc.get_stats(), gc_before, strict=True)]
    finally:
        server.should_exit = True
        await serving
    n = int(result["requests"])
    stalls.sort()
    print(
        f"requests {n}, {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, bad {result['bad']}; server CPU {cpu * 1000 / n:.3f} ms/request "
        f"({cpu / wall:.2f} cores); collections by generation {gcs}; "
        f"loop lateness p99 {stalls[int(len(stalls) * 0.99)] * 1000:.2f} ms, max {stalls[-1] * 1000:.1f} ms"
    )
    if profile is not None:
        stats = pstats.Stats(profile)
        calls = sum(s[1] for s in stats.stats.values())  # type: ignore[attr-defined]
        print(f"function calls per request: {calls / n:.0f}")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
        if args.dump:
            profile.dump_stats(args.dump)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, default=8795)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--conns", type=int, default=16, help="one worker's share of the race's 32")
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--secs", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--dump", help="write the profile here (pstats)")
    args = parser.parse_args()
    # uvloop, as a worker of `troika serve` has it
    with asyncio.Runner(loop_factory=uvicorn.Config(APP).get_loop_factory()) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
