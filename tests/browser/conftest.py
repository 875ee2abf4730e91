"""A real Troika (uvicorn, demo data) and headless Chromium (Debian's `chromium`, driven by
Playwright) that may reach nothing but the loopback address."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    WebSocketRoute,
    sync_playwright,
)

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.db.engine import make_database
from app.demo import load_demo
from app.main import create_app
from app.settings import Settings
from tests.conftest import missing, run_in_thread, settings_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TROIKA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
LOOPBACK = {"127.0.0.1"}


@dataclass
class Troika:
    url: str
    admin_key: str  # admin and pii_reader, like `troika dev-token`
    viewer_key: str

    def graphql(self, query: str) -> dict[str, Any]:
        """Run `query` as the admin, over HTTP beside the browser; its data, asserting no errors."""
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = httpx.post(f"{self.url}/graphql", json={"query": query}, headers=headers)
        answer: dict[str, Any] = response.json()
        assert "errors" not in answer, answer
        data: dict[str, Any] = answer["data"]
        return data


@dataclass
class Offline:
    """What the page tried to fetch from anywhere but the loopback address (each was refused)."""

    blocked: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    @staticmethod
    def outside(url: str) -> bool:
        return urlsplit(url).hostname not in LOOPBACK

    def refuse_socket(self, socket: WebSocketRoute) -> None:
        self.blocked.append(socket.url)
        socket.close(code=1008, reason="the browser tests have no internet")


def screenshots_dir() -> Path:
    """TROIKA_SCREENSHOTS_DIR, or var/screenshots of the repository."""
    path = Path(os.environ.get("TROIKA_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _prepare(settings: Settings) -> tuple[str, str]:
    db = make_database(settings)
    try:
        await load_demo(db, if_empty=False, settings=settings)
        async with db.write_sessions() as session, session.begin():
            admin = await create_key(
                session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.ADMIN, Role.PII_READER})
            )
            viewer = await create_key(session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.VIEWER}))
        return admin.raw, viewer.raw
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def troika(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Troika]:
    """Troika with the demo data on a loopback port, served by uvicorn in a thread."""
    if CHROMIUM is None:
        missing("the browser tests need Chromium (Debian: apt-get install chromium fonts-wqy-microhei)")
    var = tmp_path_factory.mktemp("browser")
    db = var / "troika.db"
    db.write_bytes(sqlite_template.read_bytes())
    settings = settings_for(f"sqlite+aiosqlite:///{db}", var / "var")
    admin, viewer = run_in_thread(_prepare(settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "Troika did not start"
        time.sleep(0.02)
    try:
        yield Troika(f"http://127.0.0.1:{sock.getsockname()[1]}", admin, viewer)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def browser(troika: Troika) -> Iterator[Browser]:
    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        yield _launch(playwright, CHROMIUM)


def _launch(playwright: Playwright, executable: str) -> Browser:
    # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    return playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])


@pytest.fixture
def offline() -> Offline:
    return Offline()


@pytest.fixture
def context(browser: Browser, offline: Offline) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    ctx.route("**/*", offline.route)
    ctx.route_web_socket(offline.outside, offline.refuse_socket)  # loopback sockets go through untouched
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext, offline: Offline) -> Iterator[Page]:
    """A tab whose uncaught script errors and Content-Security-Policy refusals fail the test, and
    that needed nothing from outside."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab
    assert not errors, errors
    assert offline.blocked == [], f"the page wanted the internet: {offline.blocked}"
