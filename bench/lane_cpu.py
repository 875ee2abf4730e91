"""Server CPU and function calls of a cold read on the fast lane, in process, load-independent.

The app runs in this process and each request goes straight to its ASGI callable (bench.cold_cpu's
`call`), one after another: no sockets but PostgreSQL's, so the CPU counted is the app's own work
for a request (HTTP app, lane, compiled plan, asyncpg). The users are the first `--users` active
ids in id order, the same in every tree, so two trees' runs read the same rows: `--answers FILE`
writes the answers (body, status and headers, one line per request) or, when FILE exists, checks
every answer against it byte for byte.

`--replay`: the statements' answers recorded in the first pass are given back from memory after
it (app/db/direct.py's `fetchval`): no PostgreSQL, no socket, only the app's own Python, the
steadiest figure for changes above the driver. Rounds time a pass (process CPU per request) and,
under `--profile`, run a cProfile pass (function calls per request, whatever the machine's load).
`--callgrind`, under `valgrind --tool=callgrind --instr-atstart=no`, instruments one pass only:
its instructions per request are the figure no other load on the machine moves.

    .venv/bin/python -m bench.lane_cpu --database-url postgresql+asyncpg://…/cold3_cold \
        [--users 500] [--rounds 5] [--replay] [--profile] [--answers /tmp/answers.txt]
    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no .venv/bin/python -m bench.lane_cpu \
        --database-url … --replay --users 200 --callgrind
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import resource
import statistics
import subprocess
from pathlib import Path

import orjson
import uvicorn
from sqlalchemy import select

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.db.direct import DirectReads
from app.db.engine import make_database
from app.db.models import User
from app.http.lane import STATS as LANE
from app.main import create_app
from bench.cold_cpu import call
from bench.generate import bench_settings
from bench.query import QUERIES


def _key(sql: str, params: tuple[object, ...]) -> tuple[object, ...]:
    return (sql, *(tuple(p) if isinstance(p, list) else p for p in params))


def _instrument(state: str) -> None:
    """callgrind's instrumentation on or off for this process (waits until it is done)."""
    control = ["callgrind_control", "-i", state, str(os.getpid())]
    subprocess.run(control, check=True, capture_output=True)  # noqa: ASYNC221 - outside the measure


async def _key_and_ids(settings: object, users: int) -> tuple[str, list[int]]:
    db = make_database(settings)  # type: ignore[arg-type]
    try:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(
                session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.VIEWER}), name="bench lane"
            )
        async with db.read_sessions() as session:
            stmt = select(User.id).where(User.merged_into_id.is_(None)).order_by(User.id).limit(users)
            ids = list((await session.execute(stmt)).scalars())
    finally:
        await db.dispose()
    return new.raw, ids


async def run(args: argparse.Namespace) -> None:
    settings = bench_settings(args.database_url).model_copy(update={"response_cache_bytes": 0})
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key, ids = await _key_and_ids(settings, args.users)
    app = create_app(settings)
    bodies = [orjson.dumps({"query": QUERIES[args.query], "variables": {"id": str(i)}}) for i in ids]
    try:
        for body in bodies[:20]:  # warm-up: the full path clears the document, pools, plans
            await call(app, body, key)
        gc.collect()
        gc.freeze()  # as the app's lifespan does in a served worker
        gc.set_threshold(20_000, 10, 10)
        recorded: dict[tuple[object, ...], object] = {}
        if args.replay:
            fetchval = DirectReads.fetchval

            async def record(self: DirectReads, sql: str, *params: object) -> object:
                value = recorded[_key(sql, params)] = await fetchval(self, sql, *params)
                return value

            DirectReads.fetchval = record  # type: ignore[method-assign]
        heads: list[object] = []
        answers = [await call(app, body, key, heads) + b" " + repr(heads[-1]).encode() for body in bodies]
        if args.replay:

            async def replay(self: DirectReads, sql: str, *params: object) -> object:
                return recorded[_key(sql, params)]

            DirectReads.fetchval = replay  # type: ignore[method-assign]
            print(f"replaying {len(recorded)} statements' answers from memory")
        check = Path(args.answers) if args.answers else None
        if check is not None and check.exists():
            expected = check.read_bytes().split(b"\n")
            same = sum(a == b for a, b in zip(answers, expected, strict=False))
            print(f"answers identical to {check}: {same}/{len(answers)}")
        elif check is not None:
            check.write_bytes(b"\n".join(answers))
            print(f"answers written to {check}")
        if args.callgrind:  # under `valgrind --tool=callgrind --instr-atstart=no`: these requests only
            _instrument("on")
            for body in bodies:
                await call(app, body, key)
            _instrument("off")
            print(f"callgrind: {len(bodies)} requests instrumented")
            return
        cpu: list[float] = []
        user: list[float] = []
        calls: list[float] = []
        for n in range(args.rounds):
            before = resource.getrusage(resource.RUSAGE_SELF)
            for body in bodies:
                await call(app, body, key)
            after = resource.getrusage(resource.RUSAGE_SELF)
            user.append((after.ru_utime - before.ru_utime) * 1e6 / len(bodies))
            cpu.append(user[-1] + (after.ru_stime - before.ru_stime) * 1e6 / len(bodies))
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                for body in bodies:
                    await call(app, body, key)
                profile.disable()
                stats = pstats.Stats(profile)
                calls.append(sum(s[1] for s in stats.stats.values()) / len(bodies))  # type: ignore[attr-defined]
                if n == args.rounds - 1:
                    out = io.StringIO()
                    pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
                    print(out.getvalue())
                    if args.dump:
                        profile.dump_stats(args.dump)
        print("server CPU µs/request by round:", ", ".join(f"{c:.0f}" for c in cpu))
        print("of which user time:", ", ".join(f"{c:.0f}" for c in user))
        print(
            f"median {statistics.median(cpu):.0f} µs (user {statistics.median(user):.0f}), "
            f"min {min(cpu):.0f} µs (user {min(user):.0f})"
        )
        if calls:
            print(f"function calls per request (cProfile): {statistics.median(calls):.1f}")
        print(f"fast lane: {dict(LANE)}")
    finally:
        await app.state.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--query", choices=sorted(QUERIES), default="unified")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", help="write the last profile here (pstats)")
    parser.add_argument("--callgrind", action="store_true", help="instrument one pass (under callgrind)")
    parser.add_argument("--replay", action="store_true", help="answer the statements from memory")
    parser.add_argument("--answers", help="write the answers here, or compare with them if it exists")
    args = parser.parse_args()
    # uvloop, as a worker of `troika serve` has it
    with asyncio.Runner(loop_factory=uvicorn.Config(create_app).get_loop_factory()) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
