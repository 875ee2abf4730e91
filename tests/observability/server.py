"""`troika serve` as a real process on a loopback port, for the tests that need one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.settings import Settings
from tests.conftest import settings_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def database(sqlite_template: Path, tmp_path: Path) -> tuple[str, Settings]:
    """A migrated SQLite file of the test's own, and the settings the server will run with."""
    path = tmp_path / "served.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    return url, settings_for(url, tmp_path / "var")


@contextmanager
def troika_serve(
    settings: Settings, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`troika serve` on `settings`' database; yields host:port once /healthz answers."""
    port = free_port()
    environ = {
        **os.environ,
        "TROIKA_DATABASE_URL": settings.database_url,
        "TROIKA_VAR_DIR": str(settings.var_dir),
        "TROIKA_TOKEN_SECRET": settings.secret("token_secret"),
        "TROIKA_PII_KEY": settings.secret("pii_key"),
        "TROIKA_PII_INDEX_KEY": settings.secret("pii_index_key"),
        "TROIKA_WECHAT_FAKE": "false",
        **(env or {}),
    }
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers), "--no-access-log"]
    server = subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded host imports slowly
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                if httpx.get(f"http://{address}/healthz", timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.2)
        yield address, server
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)
