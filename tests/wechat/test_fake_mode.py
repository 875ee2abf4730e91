"""Development's fake WeChat (`make run`): the app serves it at /fake-wechat and signs people in with it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from app.cli import main
from app.main import create_app
from app.settings import Environment, Settings, get_settings
from tests.factories.wechat import BIND_PHONE, WECHAT_LOGIN

LOGIN = WECHAT_LOGIN


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    """The whole app on a loopback port, in fake-WeChat mode, calling the fake it serves itself."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    demo = Settings(
        env=Environment.DEVELOPMENT,
        database_url=settings.database_url,
        var_dir=settings.var_dir,
        token_secret=settings.token_secret,
        pii_key=settings.pii_key,
        wechat_api_base_url=f"{base}/fake-wechat",
    )
    assert demo.wechat_fake  # no WeChat secret configured: development turns the fake on
    server = uvicorn.Server(uvicorn.Config(create_app(demo), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def test_a_login_and_a_phone_binding_end_to_end(served: str) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        login = await http.post(
            "/graphql", json={"query": LOGIN, "variables": {"channel": "MINI_PROGRAM", "code": "alice"}}
        )
        session = login.json()["data"]["wechatLogin"]
        assert {i["kind"] for i in session["user"]["identities"]} == {"OPENID", "UNIONID"}
        bound = await http.post(
            "/graphql",
            json={"query": BIND_PHONE, "variables": {"wx": "13800000009"}},
            headers={"Authorization": f"Bearer {session['token']}"},
        )
        user = bound.json()["data"]["bindPhone"]
        assert user["id"] == session["user"]["id"]
        assert user["phone"] == "138****0009"
        app_login = await http.post(
            "/graphql", json={"query": LOGIN, "variables": {"channel": "APP", "code": "alice:app"}}
        )
        assert app_login.json()["data"]["wechatLogin"]["user"]["id"] == session["user"]["id"]


async def test_a_simulated_push_reaches_the_webhook(
    served: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`troika wechat push` signs like WeChat; alice follows, and her click becomes behaviour."""
    monkeypatch.setenv("TROIKA_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        args = ["wechat", "push", "--person", "alice", "--event", "CLICK", "--key", "BIND_PHONE", "--safe"]
        result = CliRunner().invoke(main, [*args, "--url", served])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert result.output.startswith("200 <xml>")  # the encrypted reply with the bind-phone link
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        login = await http.post(
            "/graphql", json={"query": LOGIN, "variables": {"channel": "MINI_PROGRAM", "code": "alice"}}
        )
        token = login.json()["data"]["wechatLogin"]["token"]
        deadline = time.monotonic() + 10
        while True:
            me = await http.post(
                "/graphql",
                json={"query": "{ me { behavior { nodes { channel type } } } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            nodes = me.json()["data"]["me"]["behavior"]["nodes"]
            if nodes or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert nodes == [{"channel": "OFFICIAL_ACCOUNT", "type": "menu_click"}]


def test_production_refuses_the_fake_and_a_bad_aes_key_stops_the_start() -> None:
    with pytest.raises(ValueError, match="development only"):
        Settings(env=Environment.PRODUCTION, token_secret="t" * 32, pii_key="p" * 32, wechat_fake=True)
    with pytest.raises(ValueError, match="43-character EncodingAESKey"):
        Settings(
            env=Environment.PRODUCTION,
            token_secret="t" * 32,
            pii_key="p" * 32,
            official_account_aes_key="!" * 43,
        )


UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _troika(*args: str) -> tuple[int, str]:
    """Run a `troika` command with the environment as it is now; its exit code and output."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_the_commands_find_the_server_in_settings_or_url(
    served: str, cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another port than 8000: TROIKA_SERVER_URL, or `--url`, names it (the fake WeChat too)."""
    monkeypatch.setenv("TROIKA_SERVER_URL", served)
    status, output = _troika("wechat", "push", "--person", "bob")
    assert (status, output.splitlines()[0]) == (0, "200 success"), output
    monkeypatch.delenv("TROIKA_SERVER_URL")
    status, output = _troika("wechat", "sync-followers", "--url", served)
    assert status == 0, output
    assert "followers: 3 of 3 done" in output  # alice, bob and carol follow the fake's account


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("wechat", "push", "--person", "alice", "--url", UNREACHABLE), "the Troika server at"),
        (("wechat", "sync-followers", "--url", UNREACHABLE), "the fake WeChat at"),
        (("wechat", "sync-followers"), "the fake WeChat at"),  # TROIKA_SERVER_URL below
    ],
)
def test_an_unreachable_server_is_one_line(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], says: str
) -> None:
    monkeypatch.setenv("TROIKA_SERVER_URL", UNREACHABLE)
    status, output = _troika(*args)
    assert status == 1
    assert output.startswith(f"Error: {says} {UNREACHABLE}"), output
    assert "--url or TROIKA_SERVER_URL" in output
    assert len(output.strip().splitlines()) == 1, output
    assert "Traceback" not in output
