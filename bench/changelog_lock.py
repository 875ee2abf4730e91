"""The change log's append lock under concurrent writers: two instances ingesting, one writing consents.

Every transaction that records a change locks the outbox's head row (changes_head) at its commit
(app/stores/changes.py) so the outbox's cursors are gap-free and in commit order. This measures
what that costs: ingestion records/s and batch p99 on one instance alone, on two instances at
once, and on two instances while a third client writes consents through GraphQL; meanwhile it
samples pg_stat_activity every 20 ms for backends waiting on a lock (the head's, a user's row, an
identity's advisory lock).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from dataclasses import dataclass, field

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.cli import migrate
from app.db.engine import make_database
from app.settings import Settings
from bench import harness
from bench.generate import bench_settings
from bench.ingest import Tally, make_step, prepare

LINK = """mutation L($identity: IdentityInput!) { linkIdentity(identity: $identity) { user { id } } }"""
CONSENT = """mutation C($input: ConsentInput!) { setConsent(input: $input) { id } }"""


@dataclass
class LockSamples:
    """pg_stat_activity samples: how often, and how many, backends waited on a lock."""

    samples: int = 0
    with_waiters: int = 0
    waiters: int = 0
    active: int = 0
    # (what waits, what holds the lock and in which state): how often seen, to tell who blocks whom
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, dsn: str, database: str) -> None:
        conn = await asyncpg.connect(dsn)
        query = """
            SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),
                   count(*) FILTER (WHERE state = 'active')
            FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
        """
        who = """
            SELECT left(regexp_replace(w.query, '\\s+', ' ', 'g'), 60),
                   b.state || ': ' || left(regexp_replace(b.query, '\\s+', ' ', 'g'), 60)
            FROM pg_stat_activity w, unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
            JOIN pg_stat_activity b ON b.pid = blocker.pid
            WHERE w.datname = $1 AND w.wait_event_type = 'Lock'
        """
        try:
            while not self.stop.is_set():
                waiting, active = await conn.fetchrow(query, database)
                if waiting:
                    for waiter, holder in await conn.fetch(who, database):
                        self.pairs[(waiter, holder)] = self.pairs.get((waiter, holder), 0) + 1
                self.samples += 1
                self.with_waiters += waiting > 0
                self.waiters += waiting
                self.active += active
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def line(self) -> str:
        n = max(self.samples, 1)
        return (
            f"lock waiters in {100 * self.with_waiters / n:.1f}% of {self.samples} samples, "
            f"mean {self.waiters / n:.2f} waiting of {self.active / n:.2f} active backends"
        )


async def operator_key_and_users(
    settings: Settings, base: str, users: int, tag: str
) -> tuple[str, list[str]]:
    db = make_database(settings)
    try:
        async with db.write_sessions() as session, session.begin():
            key = (
                await create_key(session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.OPERATOR}))
            ).raw
    finally:
        await db.dispose()
    ids = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for n in range(users):
            identity = {"kind": "APP_USER_ID", "value": f"consent-{tag}-{n}"}
            body = (
                await client.post("/graphql", json={"query": LINK, "variables": {"identity": identity}})
            ).json()
            ids.append(body["data"]["linkIdentity"]["user"]["id"])
    return key, ids


def consent_step(user_ids: list[str]) -> harness.Step:
    async def step(client: httpx.AsyncClient, sender: int, i: int) -> str:
        variables = {
            "input": {
                "userId": user_ids[(sender * 7919 + i) % len(user_ids)],
                "purpose": "MARKETING",
                "granted": i % 2 == 0,  # a channel's service grants and withdraws in its own channel
                "channel": "APP",
                "sourceChannel": "APP",
            }
        }
        body = (await client.post("/graphql", json={"query": CONSENT, "variables": variables})).json()
        return str(body["errors"])[:200] if body.get("errors") else ""

    return step


@dataclass
class Phase:
    name: str
    ingest: list[harness.Run]
    records: int
    consents: harness.Run | None
    locks: LockSamples


def summary(runs: list[harness.Run]) -> tuple[float, float]:
    """Batches per second and the p99 batch latency (ms) across the instances' runs."""
    latencies = sorted(x for r in runs for x in r.latencies)
    seconds = max(r.seconds for r in runs)
    return len(latencies) / seconds, 1000 * harness.percentile(latencies, 0.99)


async def phase(
    name: str,
    bases: list[str],
    ingest_key: str,
    steps: list[harness.Step],
    tallies: list[Tally],
    args: argparse.Namespace,
    dsn: str,
    database: str,
    consent: tuple[str, str, harness.Step] | None,
) -> Phase:
    locks = LockSamples()
    sampler = asyncio.create_task(locks.run(dsn, database))
    before = sum(t.accepted for t in tallies)
    headers = {"Authorization": f"Bearer {ingest_key}"}
    loads = [
        harness.load(b, headers, s, args.senders, args.seconds) for b, s in zip(bases, steps, strict=False)
    ]
    if consent is not None:
        base, key, step = consent
        loads.append(
            harness.load(base, {"Authorization": f"Bearer {key}"}, step, args.consent_writers, args.seconds)
        )
    runs = await asyncio.gather(*loads)
    locks.stop.set()
    await sampler
    records = sum(t.accepted for t in tallies) - before
    return Phase(name, list(runs[: len(bases)]), records, runs[-1] if consent is not None else None, locks)


async def run_all(args: argparse.Namespace, settings: Settings, bases: list[str]) -> list[Phase]:
    tag = secrets.token_hex(4)
    key, pool = await prepare(settings, args.pool, tag)
    url = make_url(settings.database_url)
    dsn = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    tallies = [Tally(), Tally()]
    _op_key, user_ids = await operator_key_and_users(settings, bases[0], 200, tag)
    consent = (bases[1], key, consent_step(user_ids))
    phases = []
    for k, (name, n_bases, with_consent) in enumerate(
        (
            ("consents alone", 0, True),
            ("one instance ingesting", 1, False),
            ("two instances ingesting", 2, False),
            ("two ingesting + consents", 2, True),
        )
    ):
        # Fresh source ids each phase (a batch sent again would be all duplicates).
        steps = [make_step(f"{tag}p{k}i{n}", pool, args.batch, tallies[n]) for n in range(2)]
        phases.append(
            await phase(
                name,
                bases[:n_bases],
                key,
                steps[:n_bases],
                tallies,
                args,
                dsn,
                url.database or "",
                consent if with_consent else None,
            )  # fmt: skip
        )
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="PostgreSQL (the lock is PostgreSQL's)")
    parser.add_argument("--senders", type=int, default=2, help="ingesting clients per instance")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--consent-writers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8770)
    args = parser.parse_args()
    if not (1 <= args.senders <= 16 and 1 <= args.batch <= 5000 and 0 < args.seconds <= 300):
        parser.error("--senders 1..16, --batch 1..5000, --seconds 0..300")
    settings = bench_settings(args.database_url)
    if settings.is_sqlite:
        parser.error("the change log's lock is PostgreSQL's: give a postgresql+asyncpg:// URL")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    ports = [args.port, args.port + 1]
    procs = [
        harness.start_server(settings, p, 1, settings.var_dir / f"server-{p}.log", reuseport=True)
        for p in ports
    ]
    bases = [f"http://{harness.HOST}:{p}" for p in ports]
    started = time.perf_counter()
    try:
        for proc, base in zip(procs, bases, strict=True):
            asyncio.run(harness.wait_healthy(proc, base))
        phases = asyncio.run(run_all(args, settings, bases))
    finally:
        for proc in procs:
            harness.stop_server(proc)
    print(f"{args.senders} senders per instance, batches of {args.batch}, {args.seconds:.0f} s per phase")
    print("| phase | records/s | batch p99 ms | consents/s | consent p99 ms | lock waits |")
    print("|---|---|---|---|---|---|")
    for p in phases:
        seconds = max((r.seconds for r in p.ingest), default=1.0)
        p99 = summary(p.ingest)[1] if p.ingest else 0.0
        errors = sum(r.errors for r in p.ingest)
        consent = "-", "-"
        if p.consents is not None:
            lat = sorted(p.consents.latencies)
            consent = (
                f"{len(lat) / p.consents.seconds:.0f}",
                f"{1000 * harness.percentile(lat, 0.99):.0f}"
                + (f" ({p.consents.errors} errors)" if p.consents.errors else ""),
            )
        rate = f"{p.records / seconds:,.0f}{f' ({errors} failed)' if errors else ''}" if p.ingest else "-"
        print(f"| {p.name} | {rate} | {p99:.0f} | {consent[0]} | {consent[1]} | {p.locks.line()} |")
    for p in phases:
        top = sorted(p.locks.pairs.items(), key=lambda kv: -kv[1])[:4]
        for (waiter, holder), n in top:
            print(f"{p.name}: {n} samples: waiting {waiter!r} behind {holder!r}")
        for r in [*p.ingest, *([p.consents] if p.consents else [])]:
            if r.errors:
                print(f"{p.name}: first error: {r.first_error}")
    print(f"(whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
