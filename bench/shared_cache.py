"""The race's mix on `troika serve --workers 2`, two checkouts alternated: read hit rate and server
CPU per request (issue 17: whether the workers share the response cache).

80% reads of the unified query over 1,000 hot users, 20% `setConsent` by the mini program's
service (the peer's wrk_mix.lua), after an untimed warm-up of the same load; then the stale-read
check: for each of `--stale-users` users, read on two connections (so both workers, most of the
time, hold or share an answer), write the opposite consent, read again at once on both. Runs
`A B A B …` for `--rounds`; each checkout's server is its own process started from its directory.

    .venv/bin/python -m bench.shared_cache --database-url URL --checkouts /tmp/main,. \
        [--rounds 3] [--secs 20] [--warmup 10] [--conns 32] [--stale-users 100] [--wfrac 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings
from bench import harness
from bench.generate import bench_settings
from bench.query import QUERIES
from bench.race import CACHE_BYTES, MUTATION, keys_and_ids

WORK = Path(tempfile.gettempdir()) / "troika-shared-cache"
LUA = Path(__file__).resolve().parents[2] / "shared" / "peers" / "wrk_mix.lua"
QFILE = WORK / "mix.graphql"


def write_files(viewer: str, service: str, hot: list[int]) -> None:
    """The query files wrk_mix.lua reads: query, ids, credentials, the mutation and its ids."""
    WORK.mkdir(parents=True, exist_ok=True)
    ids = "\n".join(map(str, hot)) + "\n"
    for suffix, text in (
        ("", QUERIES["unified"]),
        (".ids", ids),
        (".auth", f"Bearer {viewer}\n"),
        (".mutation", MUTATION),
        (".wids", ids),
        (".mauth", f"Bearer {service}\n"),
    ):
        Path(f"{QFILE}{suffix}").write_text(text)


def start(checkout: Path, settings: Settings, port: int) -> subprocess.Popen[bytes]:
    """`troika serve --workers 2` from `checkout` (its code, its venv), the cache at the race's size."""
    env = {**os.environ, **harness.server_env(settings), "TROIKA_RESPONSE_CACHE_BYTES": CACHE_BYTES}
    env.pop("TROIKA_RESPONSE_CACHE_DIR", None)
    cmd = [str(checkout / ".venv/bin/python"), "-c", "from app.cli import main; main()", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"]
    log = (WORK / f"server-{checkout.name}.log").open("wb")
    try:
        return subprocess.Popen(
            cmd, cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()


def wrk(url: str, secs: int, conns: int, wfrac: float) -> dict[str, Any]:
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--timeout", "10s", "-s", str(LUA), url]
    cmd += ["--", str(QFILE), "id", "string", "1000"]
    env = {**os.environ, "WFRAC": str(wfrac)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return result


def stale_reads(url: str, viewer: str, service: str, ids: list[int]) -> tuple[int, int]:
    """Reads that do not show the consent written just before them: (stale, reads)."""

    def push(client: httpx.Client, user_id: int) -> bool | None:
        body = client.post(
            url,
            json={"query": QUERIES["unified"], "variables": {"id": str(user_id)}},
            headers={"Authorization": f"Bearer {viewer}"},
        ).json()
        consents = body["data"]["user"]["consents"]
        wanted = ("PUSH", "MINI_PROGRAM")
        return next((c["granted"] for c in consents if (c["purpose"], c["channel"]) == wanted), None)

    stale = reads = 0
    with httpx.Client() as a, httpx.Client() as b, httpx.Client() as writer:
        for user_id in ids:
            before = [push(a, user_id), push(b, user_id)]
            wanted = not before[-1]
            answer = writer.post(
                url,
                json={"query": MUTATION, "variables": {"id": str(user_id), "g": wanted}},
                headers={"Authorization": f"Bearer {service}"},
            )
            assert answer.status_code == 200, answer.text[:300]
            for client in (a, b):
                reads += 1
                stale += push(client, user_id) is not wanted
    return stale, reads


def one_run(
    checkout: Path, settings: Settings, args: argparse.Namespace, keys: tuple[str, str, list[int]]
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{args.port}"
    proc = start(checkout, settings, args.port)
    try:
        asyncio.run(harness.wait_healthy(proc, url, within=120))
        wrk(f"{url}/graphql", args.warmup, args.conns, args.wfrac)
        pids = harness.server_pids(proc.pid)
        before = sum(harness.cpu_seconds(pids).values())
        t0 = time.monotonic()
        result = wrk(f"{url}/graphql", args.secs, args.conns, args.wfrac)
        wall = time.monotonic() - t0
        cpu = sum(harness.cpu_seconds(pids).values()) - before
        stale, reads = stale_reads(f"{url}/graphql", keys[0], keys[1], keys[2][: args.stale_users])
    finally:
        harness.stop_server(proc)
    return {
        "checkout": str(checkout),
        "rps": result["rps"],
        "read_hit_rate": result["hits"] / max(result["reads"], 1),
        "cpu_ms_per_request": 1000 * cpu / result["requests"],
        "server_cores": cpu / wall,
        "p99_ms": result["p99_ms"],
        "bad": result["bad"],
        "stale": stale,
        "stale_reads": reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--checkouts", required=True, help="two directories, comma-separated: A,B")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--secs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--stale-users", type=int, default=100)
    parser.add_argument("--port", type=int, default=8794)
    parser.add_argument("--wfrac", type=float, default=0.2, help="write fraction (0: reads only, all hits)")
    args = parser.parse_args()
    checkouts = [Path(p).resolve() for p in args.checkouts.split(",")]
    settings = bench_settings(args.database_url)
    keys = asyncio.run(keys_and_ids(settings, 1000))
    write_files(keys[0], keys[1], keys[2])
    runs = []
    for round_ in range(args.rounds):
        for checkout in checkouts:
            run = one_run(checkout, settings, args, keys)
            runs.append(run)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}
            print(f"round {round_ + 1}: {json.dumps(shown)}", flush=True)
    for checkout in checkouts:
        mine = [r for r in runs if r["checkout"] == str(checkout)]
        means = {
            k: sum(r[k] for r in mine) / len(mine)
            for k in ("rps", "read_hit_rate", "cpu_ms_per_request", "server_cores", "p99_ms")
        }
        stale = sum(r["stale"] for r in mine)
        print(f"{checkout}: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()) + f", stale {stale}")
    (WORK / "runs.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
