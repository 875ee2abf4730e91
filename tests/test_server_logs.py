"""What an operator reads from `troika serve` (one process, and workers): an access line per request,
the `troika.*` lines with their traceId, scrubbed, and no traceback or "Logging error"."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.sync.ws import PROTOCOL

UNAUTHENTICATED = '{ user(id: "1") { id } }'
SECRET_QUERY = "access_token=not-for-the-log-123"
WRONG_KEY = "trk_op_wrongwrongwrong"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(server: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, "the server stopped while starting"
        assert time.monotonic() < deadline, "the server never answered"
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_log_has_access_and_troika_lines_and_no_traceback(
    sqlite_template: Path, tmp_path: Path, workers: int
) -> None:
    db = tmp_path / "logs.db"
    shutil.copy(sqlite_template, db)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")},
        "TROIKA_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "TROIKA_VAR_DIR": str(tmp_path / "var"),
    }
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    log_file = tmp_path / "server.log"
    with log_file.open("wb") as log:
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)  # the log is stderr
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_up(server, base)
            with httpx.Client(base_url=base) as http:
                assert http.post("/graphql", json={"query": "{ __typename }"}).status_code == 200
                refused = http.post("/graphql", json={"query": UNAUTHENTICATED}).json()
                malformed = http.post(
                    f"/graphql?{SECRET_QUERY}", content=b"{bad", headers={"content-type": "application/json"}
                ).json()
                assert http.get("/no-such-page").status_code == 404
            with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {WRONG_KEY}"}}
                ws.send(json.dumps(init))
                with pytest.raises(ConnectionClosed, match="4403"):
                    ws.recv(timeout=10)
        finally:
            server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=30)
    logged = log_file.read_text()
    assert status in (0, -signal.SIGTERM), logged  # one uvicorn process re-raises the signal it handled

    for request in ('"POST /graphql HTTP/1.1" 200 OK', '"GET /no-such-page HTTP/1.1" 404 Not Found'):
        assert re.search(rf"^INFO: +127\.0\.0\.1:\d+ - {re.escape(request)}$", logged, re.M), logged
    assert re.search(r'^INFO: +127\.0\.0\.1:\d+ - "WebSocket /graphql" \[accepted\]$', logged, re.M), logged
    for answer in (refused, malformed):  # troika.* lines, findable by the traceId the caller got
        trace_id = answer["errors"][0]["extensions"]["traceId"]
        assert f"traceId {trace_id}" in logged, logged
    assert "troika.http: POST /graphql refused: 400 BAD_REQUEST" in logged, logged
    assert "not-for-the-log-123" not in logged  # scrubbed as before
    assert "access_token=[redacted]" in logged, logged
    assert WRONG_KEY not in logged
    assert "Traceback" not in logged, logged
    assert "Logging error" not in logged, logged
