"""A PostgreSQL primary and its streaming replica (pg_basebackup -R), on ports of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("initdb", "pg_ctl", "pg_basebackup")


def missing_tools() -> str | None:
    absent = [t for t in TOOLS if shutil.which(t) is None]
    return f"needs PostgreSQL's server tools on PATH ({', '.join(absent)})" if absent else None


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _as_postgres(*cmd: str) -> None:
    """PostgreSQL refuses to run as root: run its tools as `postgres` then."""
    full = ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)
    subprocess.run(full, check=True, capture_output=True, timeout=120)


@dataclass
class Cluster:
    root: Path
    primary_port: int
    replica_port: int

    def url(self, port: int, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"

    def stop_replica(self) -> None:
        _as_postgres("pg_ctl", "-D", str(self.root / "replica"), "-m", "immediate", "-w", "stop")


@contextmanager
def streaming_replica(root: Path) -> Iterator[Cluster]:
    """Start a primary, copy it with pg_basebackup into a hot standby, and stop both at the end."""
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    primary, replica = root / "primary", root / "replica"
    cluster = Cluster(root, _port(), _port())
    _as_postgres("initdb", "-D", str(primary), "-A", "trust", "-U", "postgres")
    with (primary / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses='127.0.0.1'\nunix_socket_directories='{root}'\n")
        conf.write("wal_level=replica\nmax_wal_senders=4\nfsync=off\n")
    with (primary / "pg_hba.conf").open("a") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")
    started: list[Path] = []
    try:
        _as_postgres(
            "pg_ctl",
            "-D",
            str(primary),
            "-o",
            f"-p {cluster.primary_port}",
            "-l",
            str(root / "primary.log"),
            "-w",
            "start",
        )
        started.append(primary)
        _as_postgres(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(cluster.primary_port), "-U", "postgres",
            "-D", str(replica), "-R", "-X", "stream",
        )  # fmt: skip
        _as_postgres(
            "pg_ctl",
            "-D",
            str(replica),
            "-o",
            f"-p {cluster.replica_port}",
            "-l",
            str(root / "replica.log"),
            "-w",
            "start",
        )
        started.append(replica)
        yield cluster
    finally:
        for data in reversed(started):
            subprocess.run(
                ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(data), "-m", "immediate", "stop"]
                if os.geteuid() == 0
                else ["pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
