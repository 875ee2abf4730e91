"""`troika serve --workers 2` shares one response cache: what one worker kept, the other serves,
after the version check that keeps every answer current whichever worker wrote."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.conftest import by_nature
from tests.factories.auth import operator_key, service_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.observability.server import troika_serve

VIEW = "query ($id: ID!) { user(id: $id) { id consents { purpose channel granted } } }"
SET_CONSENT = "mutation ($i: ConsentInput!) { setConsent(input: $i) { id } }"
LINUX = Path("/proc/net/tcp").exists()


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*/children") for c in task.read_text().split()]


def _holder(server_pid: int, port: int, client_port: int) -> int:
    """The worker holding the server side of the connection from `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
        if int(local, 16) == port and int(remote, 16) == client_port:
            inode = f"socket:[{fields[9]}]"
            for pid in _children(server_pid):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    try:
                        if os.readlink(fd) == inode:
                            return pid
                    except OSError:
                        continue
    raise AssertionError("no worker holds the connection")


class Worker:
    """A kept-alive connection to one worker, and which worker that is."""

    def __init__(self, address: str, server_pid: int) -> None:
        host, port = address.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("GET", "/healthz")  # answered: a worker has accepted the connection
        assert self.conn.getresponse().read()
        assert self.conn.sock is not None
        self.pid = _holder(server_pid, int(port), self.conn.sock.getsockname()[1])

    def post(self, query: str, variables: dict[str, Any], token: str) -> tuple[dict[str, Any], bool]:
        """The answer's data, and whether it was a cache hit."""
        body = json.dumps({"query": query, "variables": variables})
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self.conn.request("POST", "/graphql", body=body, headers=headers)
        response = self.conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        assert "errors" not in answer, answer
        return answer["data"], response.getheader("x-troika-cache") == "hit"


def two_workers(address: str, server_pid: int) -> tuple[Worker, Worker]:
    """One connection to each worker (the kernel spreads new connections by their address)."""
    first = Worker(address, server_pid)
    for _ in range(200):
        other = Worker(address, server_pid)
        if other.pid != first.pid:
            return first, other
        other.conn.close()
    raise AssertionError("every connection went to one worker")


def _consent(user_id: str, granted: bool) -> dict[str, Any]:
    consent = {"purpose": "PUSH", "channel": "APP", "granted": granted, "sourceChannel": "APP"}
    return {"i": {**consent, "userId": user_id}}


@pytest.mark.parametrize("shared", [True, False])
async def test_a_worker_serves_what_the_other_kept_and_never_a_stale_answer(
    app: FastAPI, gql: Gql, settings: Settings, shared: bool
) -> None:
    if not LINUX:
        by_nature("tells the workers apart by their sockets in /proc (Linux)")
    admin = await operator_key(app, "admin")
    service = await service_key(app, "APP")
    user_id = await new_user(gql, admin, phone="+8613800170001")
    await link(gql, admin, kind="APP_USER_ID", value="workers-1", user_id=user_id)
    await asyncio.to_thread(_two_workers_one_cache, settings, shared, admin, service, user_id)


def _two_workers_one_cache(settings: Settings, shared: bool, admin: str, service: str, user_id: str) -> None:
    env = {"TROIKA_RESPONSE_CACHE_SHARED": str(shared).lower()}
    with troika_serve(settings, workers=2, env=env) as (address, server):
        a, b = two_workers(address, server.pid)
        store = {_environ(pid).get("TROIKA_RESPONSE_CACHE_DIR") for pid in (a.pid, b.pid)}
        view = {"id": user_id}
        first, hit = a.post(VIEW, view, admin)
        assert not hit
        assert first["user"]["consents"] == []
        # Built and kept by A: a hit in B only when they share the store.
        again, hit = b.post(VIEW, view, admin)
        assert again == first
        assert hit is shared
        if not shared:
            assert store == {None}
            return
        (path,) = store
        assert path is not None
        assert Path(path, "data.mdb").exists()
        assert a.post(VIEW, view, admin) == (first, True)
        for writer, reader in ((b, a), (a, b), (b, b)):
            for granted in (True, False):
                writer.post(SET_CONSENT, _consent(user_id, granted), service)
                after, hit = reader.post(VIEW, view, admin)
                assert not hit, "the write moved the user's version: the kept answer is not served"
                consents = after["user"]["consents"]
                assert consents == [{"purpose": "PUSH", "channel": "APP", "granted": granted}]
                # The answer the reader rebuilt serves the other worker too.
                other = a if reader is b else b
                assert other.post(VIEW, view, admin) == (after, True)
        for worker in (a, b):
            worker.conn.close()
    assert not Path(path).exists(), "the store goes with the server"


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
