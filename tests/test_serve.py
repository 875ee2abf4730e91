"""`troika serve --workers 2`: a listening socket per worker (SO_REUSEPORT), clean stop on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import by_nature

LINUX = Path("/proc/net/tcp").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> set[str]:
    """Socket inodes listening on `port` (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(fields[9])
    return found


def _sockets(pid: int) -> set[str]:
    """Socket inodes a process holds open."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:[") : -1])
    return held


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*/children") for c in task.read_text().split()]


def test_each_worker_listens_on_its_own_socket(sqlite_template: Path, tmp_path: Path) -> None:
    if not LINUX:
        by_nature("reads sockets and processes from /proc (Linux)")
    db = tmp_path / "serve.db"
    shutil.copy(sqlite_template, db)
    port = _free_port()
    env = {
        **os.environ,
        "TROIKA_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "TROIKA_VAR_DIR": str(tmp_path / "var"),
    }
    serve = ["serve", "--workers", "2", "--port", str(port), "--no-access-log"]
    cmd = [sys.executable, "-c", "from app.cli import main; main()", *serve]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while len(_listening(port)) < 2:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the workers never listened"
            time.sleep(0.1)
        listening = _listening(port)
        # Children are the two workers and multiprocessing's resource tracker.
        held = [_sockets(pid) & listening for pid in _children(server.pid)]
        mine = [sockets for sockets in held if sockets]
        assert len(mine) == 2
        assert all(len(sockets) == 1 for sockets in mine)  # one listening socket each ...
        assert mine[0] != mine[1]  # ... and not the same one
        assert not _sockets(server.pid) & listening  # the parent only supervises
        for _ in range(20):  # a fresh connection each time
            # A loaded host imports slowly: the first answers may take a while.
            assert httpx.get(f"{base}/healthz", timeout=60).json() == {"status": "ok"}
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=30)
    assert status == 0
    assert not _listening(port)
