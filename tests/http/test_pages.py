"""Troika's browser pages over plain HTTP: served to any browser, everything they load from this
origin, the vendored libraries exactly as recorded in app/static/vendored.json."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.http.pages import STATIC_DIR
from tests.factories.auth import operator_key
from tests.helpers import Gql

PAGES = ("graphiql.html", "console.html")
VENDORED: dict[str, Any] = json.loads((STATIC_DIR / "vendored.json").read_text(encoding="utf-8"))
SCHEMA = "{ __schema { queryType { name } } }"


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


class _Refs(HTMLParser):
    """Every script and stylesheet a page loads, with its integrity attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url:
            self.refs.append((url, found.get("integrity")))


def _refs(name: str) -> list[tuple[str, str | None]]:
    parser = _Refs()
    parser.feed((STATIC_DIR / name).read_text(encoding="utf-8"))
    return parser.refs


def test_vendored_files_are_the_recorded_ones() -> None:
    recorded = {entry["file"] for entry in VENDORED["files"]}
    on_disk = {
        str(p.relative_to(STATIC_DIR))
        for p in (STATIC_DIR / "vendor").rglob("*")
        if p.is_file() and p.name != "LICENSE"
    }
    assert on_disk == recorded
    for entry in VENDORED["files"]:
        path = STATIC_DIR / entry["file"]
        assert _sri(path.read_bytes()) == entry["integrity"], entry["file"]
        assert (path.parent / "LICENSE").is_file(), f"{entry['package']} comes with its licence"
        assert VENDORED["tarballs"][entry["package"]]["version"] == entry["version"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_load_only_this_origin_and_vendored_files_with_their_integrity(name: str) -> None:
    integrity = {"/static/" + entry["file"]: entry["integrity"] for entry in VENDORED["files"]}
    refs = _refs(name)
    assert refs
    for url, sri in refs:
        if url == "data:,":
            continue
        assert url.startswith("/static/"), url
        assert (STATIC_DIR / url.removeprefix("/static/")).is_file(), url
        if url.startswith("/static/vendor/"):
            assert sri == integrity[url], url
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert "<script>" not in text, "no inline script: the pages' CSP allows scripts from files only"


@pytest.mark.parametrize("accept", ["text/html", "text/html,application/xhtml+xml,*/*;q=0.8"])
async def test_graphiql_is_a_static_page_any_browser_may_load(client: httpx.AsyncClient, accept: str) -> None:
    response = await client.get("/graphql", headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Troika · GraphiQL</title>" in response.text
    assert "Authorization" in response.text  # the header hint
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_the_page_gives_nothing_away_introspection_stays_for_operators(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    anonymous = await client.get("/graphql", headers={"accept": "text/html"})
    viewer = await operator_key(app, "viewer")
    as_viewer = await client.get(
        "/graphql", headers={"accept": "text/html", "authorization": f"Bearer {viewer}"}
    )
    assert anonymous.content == as_viewer.content
    await gql.error(SCHEMA, token=None, code="GRAPHQL_VALIDATION_FAILED")
    assert await gql(SCHEMA, token=viewer) == {"__schema": {"queryType": {"name": "Query"}}}


async def test_the_console_is_a_static_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 200
    assert "<title>Troika · Operator console</title>" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_vendored_files_are_served(client: httpx.AsyncClient) -> None:
    for entry in VENDORED["files"]:
        response = await client.get("/static/" + entry["file"])
        assert response.status_code == 200
        assert _sri(response.content) == entry["integrity"], entry["file"]
