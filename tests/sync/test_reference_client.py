"""The reference graphql-transport-ws client (npm `graphql-ws` on `ws`, run by Node) against a real
server: it connects, queries, replays changes from a cursor and sees a refusal, all in text frames."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import missing
from tests.factories.auth import operator_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql

JS = Path(__file__).resolve().parent.parent / "js"
CLIENT = JS / "reference-client.mjs"
NODE_MAJOR = 20  # graphql-ws 6 needs Node.js 20 or newer


def _node_version(node: str) -> int:
    found = re.match(r"v(\d+)", subprocess.run([node, "--version"], capture_output=True, text=True).stdout)
    return int(found.group(1)) if found else 0


def _why_not() -> str | None:
    """Why the reference client cannot run here, or None."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "the reference client needs Node.js and npm (not found on PATH)"
    if (major := _node_version(node)) < NODE_MAJOR:
        return f"graphql-ws 6 needs Node.js {NODE_MAJOR} or newer; this is Node.js {major}"
    return None


@pytest.fixture(scope="module")
def node_client() -> str:
    """`node`, with tests/js's pinned packages installed (`npm ci`, as `make test` does)."""
    if (reason := _why_not()) is not None:
        missing(reason)
    installed = JS / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (JS / "package-lock.json").stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True)
    node = shutil.which("node")
    assert node is not None
    return node


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


async def run_client(node: str, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node, str(CLIENT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_graphql_ws_queries_and_replays_changes(
    app: FastAPI, address: str, http: Gql, node_client: str
) -> None:
    admin = await operator_key(app, "admin")
    cursor = str(await app.state.feed.last_cursor())
    user_id = await new_user(http, admin, phone="+8613800160001")
    await link(http, admin, kind="APP_USER_ID", value="参考-1", user_id=user_id)

    result = await run_client(node_client, f"ws://{address}/graphql", admin, cursor, "2")

    assert result["query"] == {"data": {"__typename": "Query"}}
    changes = [event["data"]["changes"] for event in result["changes"]]
    assert [(c["userId"], c["topic"]) for c in changes] == [(user_id, "IDENTITY")] * 2
    assert result["error"][0]["message"]  # the refused operation's GraphQL error reached the client
    assert result["frames"]["binary"] == 0
    assert result["frames"]["text"] >= 5  # ack, the query's next, two changes, the error
