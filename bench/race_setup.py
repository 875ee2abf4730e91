"""Set up the race of `bench.race`: both datasets and the peer (PostGraphile), from ../shared/peers.

The peer's files are read where they are (`--peers`, default `../shared/peers` beside the
repository) and run as they are; none of its code is copied into this repository. Idempotent: a
database that already holds its users is kept, an installed PostGraphile is not reinstalled.

    .venv/bin/python -m bench.race_setup [--peers ../shared/peers] [--users 100000]
    .venv/bin/python -m bench.race_setup --drop      # drop both databases afterwards
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
TROIKA_DB = "race_troika"
PEER_DB = "race_peer"


def pg_url(database: str, *, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://postgres@127.0.0.1:5432/{database}"


def psql(*args: str, database: str = "postgres", cwd: Path | None = None) -> str:
    """psql's output (unaligned, tuples only); stops the setup on any SQL error."""
    cmd = ["psql", *PG, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        raise SystemExit(f"psql {' '.join(args)[:80]} failed: {done.stderr.strip()[:500]}")
    return done.stdout.strip()


def has_users(database: str) -> bool:
    if not psql("-c", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
        return False
    found = psql("-c", "SELECT to_regclass('public.users') IS NOT NULL", database=database)
    return found == "t" and psql("-c", "SELECT count(*) > 0 FROM users", database=database) == "t"


def recreate(database: str) -> None:
    psql("-c", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql("-c", f'CREATE DATABASE "{database}"')


def setup_peer_data(peers: Path) -> None:
    """The peer's own copy of the data: its schema and generator, as its README runs them."""
    if has_users(PEER_DB):
        print(f"{PEER_DB}: already loaded")
        return
    started = time.monotonic()
    recreate(PEER_DB)
    psql("-f", str(peers / "pg_schema.sql"), database=PEER_DB, cwd=peers)
    psql("-f", str(peers / "gen_data.sql"), database=PEER_DB, cwd=peers)
    print(f"{PEER_DB}: loaded in {time.monotonic() - started:.0f}s")


def setup_troika_data(users: int) -> None:
    """Troika's dataset of the same size (`bench.generate`, seed 1)."""
    if has_users(TROIKA_DB):
        print(f"{TROIKA_DB}: already loaded")
        return
    recreate(TROIKA_DB)
    cmd = [sys.executable, "-m", "bench.generate", "--database-url", pg_url(TROIKA_DB), "--users", str(users)]
    subprocess.run(cmd, cwd=ROOT, check=True)


def install_peer(peers: Path) -> None:
    """PostGraphile 5.1.5 (and node 22 when the system's is older), by the peer's own script."""
    subprocess.run(["bash", str(peers / "postgraphile.sh"), "install"], check=True)


def drop() -> None:
    for database in (TROIKA_DB, PEER_DB):
        psql("-c", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        print(f"dropped {database}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=Path, default=Path(os.environ.get("TROIKA_PEERS", PEERS)))
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--drop", action="store_true", help="drop both race databases and stop")
    args = parser.parse_args()
    if args.drop:
        drop()
        return
    if not (args.peers / "postgraphile.sh").exists():
        raise SystemExit(f"no peer files in {args.peers} (pass --peers)")
    install_peer(args.peers)
    setup_peer_data(args.peers)
    setup_troika_data(args.users)


if __name__ == "__main__":
    main()
