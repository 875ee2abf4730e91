"""Fixtures: every test gets its own migrated database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import asyncpg
import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.main import create_app
from app.settings import DEMO_APPIDS, Environment, Settings, get_settings
from app.wechat.fake import FakeWeChat
from tests.helpers import Gql

T = TypeVar("T")
PG_URL = os.environ.get("TROIKA_TEST_DATABASE_URL")
PG_SKIP = (
    "PostgreSQL tests need TROIKA_TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/postgres)"
)
REDIS_URL = os.environ.get("TROIKA_TEST_REDIS_URL")
REDIS_SKIP = "Redis tests need TROIKA_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15)"
# CI (.ci/run) sets it: a test that would skip for a missing backend or tool fails instead, so a
# green run means every test ran. Skips "by nature" (SQLite has no deadlocks) stay skips.
STRICT = os.environ.get("TROIKA_TEST_STRICT", "") not in ("", "0")
BY_NATURE = "by nature: "


def missing(what: str) -> NoReturn:
    """What this test needs is not here (PostgreSQL, Redis, a tool, ../shared): skip, or fail when strict."""
    if STRICT:
        pytest.fail(f"{what} (TROIKA_TEST_STRICT is set: every test must run)", pytrace=False)
    pytest.skip(what)


def by_nature(why: str) -> NoReturn:
    """The test does not apply to this backend or platform: a skip even when strict."""
    pytest.skip(BY_NATURE + why)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Strict: any other skip (a skipif marker, a library's importorskip) fails too."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not STRICT or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if BY_NATURE not in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped, but TROIKA_TEST_STRICT is set (every test must run): {reason}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis (TROIKA_TEST_REDIS_URL); missing() without it. The keys a test leaves there
    (rate limits, token caches: each with an expiry) are removed after it, so a run leaves nothing."""
    if not REDIS_URL:
        missing(REDIS_SKIP)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        before = set(client.scan_iter(match="troika:*"))
        yield REDIS_URL
        left = [k for k in client.scan_iter(match="troika:*") if k not in before]
        if left:
            client.delete(*left)
    finally:
        client.close()


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop, away from the test's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def settings_for(database_url: str, var_dir: Path, *, wechat_url: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        env=Environment.DEVELOPMENT,
        database_url=database_url,
        var_dir=var_dir,
        token_secret="test-token-secret-of-at-least-32-bytes",
        ingest_max_records=50,
        ingest_max_body_bytes=256 * 1024,
        pii_key="test-pii-key-of-at-least-32-bytes",
        pii_index_key="test-pii-index-key-of-at-least-32-bytes",
        wechat_fake=False,
        wechat_api_base_url=wechat_url,
        mini_program_secret=TEST_WECHAT_SECRETS["mini_program_secret"],
        official_account_secret=TEST_WECHAT_SECRETS["official_account_secret"],
        app_wechat_secret=TEST_WECHAT_SECRETS["app_wechat_secret"],
        official_account_token=TEST_WECHAT_SECRETS["official_account_token"],
        official_account_aes_key=TEST_WECHAT_SECRETS["official_account_aes_key"],
    )


TEST_WECHAT_SECRETS = {
    "mini_program_secret": "test-mp-secret",
    "official_account_secret": "test-oa-secret",
    "app_wechat_secret": "test-app-secret",
    "official_account_token": "test-token",
    "official_account_aes_key": "VGVzdEVuY29kaW5nQWVzS2V5T2ZUaGlydHlUd29CeXQ",
}
# The WXBizDataCrypt sample's mini program (its vector is in wechatpy's tests/test_crypto.py).
SAMPLE_APPID = "wx4f4bc4dec97d474b"


@pytest.fixture(scope="session")
def fake_wechat_server() -> Iterator[tuple[FakeWeChat, str]]:
    """The fake WeChat API on a loopback port, for the whole session (state reset per test)."""
    apps = {
        DEMO_APPIDS["mini_program_appid"]: TEST_WECHAT_SECRETS["mini_program_secret"],
        DEMO_APPIDS["official_account_appid"]: TEST_WECHAT_SECRETS["official_account_secret"],
        DEMO_APPIDS["app_wechat_appid"]: TEST_WECHAT_SECRETS["app_wechat_secret"],
        SAMPLE_APPID: TEST_WECHAT_SECRETS["mini_program_secret"],
    }
    fake = FakeWeChat(apps=apps, official_account_appid=DEMO_APPIDS["official_account_appid"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(fake.asgi(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the fake WeChat server did not start"
        time.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture
def fake_wechat(fake_wechat_server: tuple[FakeWeChat, str]) -> FakeWeChat:
    fake = fake_wechat_server[0]
    fake.reset()
    return fake


def pg_database_url(name: str) -> str:
    assert PG_URL
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def pg_admin(sql: str) -> None:
    assert PG_URL
    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "troika.db"
    url = f"sqlite+aiosqlite:///{path}"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate, settings_for(url, path.parent)).result()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """One migrated PostgreSQL database per session; tests clone it with CREATE DATABASE … TEMPLATE."""
    if not PG_URL:
        missing(PG_SKIP)
    name = f"troika_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    run_in_thread(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(migrate, settings_for(pg_database_url(name), Path("var"))).result()
        yield name
    finally:
        run_in_thread(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test alone, dropped afterwards."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "troika.db"
        shutil.copy(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"troika_t_{uuid.uuid4().hex[:12]}"
    run_in_thread(pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield pg_database_url(name)
    finally:
        run_in_thread(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    fake_wechat_server: tuple[FakeWeChat, str],
) -> Settings:
    """The test's settings; a test may change some through `indirect` parametrization (a dict)."""
    more: dict[str, Any] = getattr(request, "param", {})
    return settings_for(database_url, tmp_path / "var", wechat_url=fake_wechat_server[1]).model_copy(
        update=more
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as http:
        yield http


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Gql:
    return Gql(client)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """The `troika` command pointed, through its environment, at a fresh migrated SQLite file."""
    db = tmp_path / "cli.db"
    db.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite+aiosqlite:///{db}"
    monkeypatch.setenv("TROIKA_DATABASE_URL", url)
    monkeypatch.setenv("TROIKA_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
