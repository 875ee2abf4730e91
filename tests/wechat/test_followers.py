"""`troika wechat sync-followers`: every follower's openid and unionid, page by page, resumable."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from app.cli import main
from app.cli_support import with_db
from app.db.engine import Database
from app.db.models import Identity, User
from app.ingest.dictionary import load_dictionary
from app.settings import get_settings
from app.wechat.api import WeChatApi
from app.wechat.fake import FakeWeChat, event_push, signed_push
from app.wechat.inbox import OfficialAccountInbox
from app.wechat.messages import open_push
from tests.conftest import TEST_WECHAT_SECRETS


@pytest.fixture
def wechat_env(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, fake_wechat_server: tuple[FakeWeChat, str]
) -> str:
    """The CLI's environment pointed at the fake WeChat too."""
    monkeypatch.setenv("TROIKA_WECHAT_API_BASE_URL", fake_wechat_server[1])
    monkeypatch.setenv("TROIKA_WECHAT_FAKE", "false")
    for name, value in TEST_WECHAT_SECRETS.items():
        monkeypatch.setenv(f"TROIKA_{name.upper()}", value)
    get_settings.cache_clear()
    return cli_env


def _counts() -> tuple[int, int, int]:
    """(users, openids, unionids) in the CLI's database."""

    async def count(db: Database) -> tuple[int, int, int]:
        async with db.read_sessions() as s:
            users = (await s.execute(select(func.count()).select_from(User))).scalar_one()
            kinds = dict((await s.execute(select(Identity.kind, func.count()).group_by(Identity.kind))).all())
        return users, kinds.get("OPENID", 0), kinds.get("UNIONID", 0)

    return with_db(get_settings(), count)


def test_followers_are_linked_in_batches_and_a_stopped_run_resumes(
    wechat_env: str, fake_wechat: FakeWeChat
) -> None:
    fake_wechat.without_unionid.add("f007")
    fake_wechat.follow(*[f"f{n:03d}" for n in range(230)])
    fake_wechat.page_size = 120  # two pages of user/get; batches of 100 for user/info/batchget
    fake_wechat.batch_fail_at = 2  # WeChat fails the second batch: the run stops there
    stopped = CliRunner().invoke(main, ["wechat", "sync-followers"])
    assert stopped.exit_code != 0
    assert "WeChat is busy" in stopped.output
    assert _counts() == (100, 100, 99)  # the first batch is in, with its cursor
    resumed = CliRunner().invoke(main, ["wechat", "sync-followers"])
    assert resumed.exit_code == 0, resumed.output
    assert (
        "followers: 230 of 230 done (resumed after 100); 130 unionids linked, 0 conflicts" in resumed.output
    )
    assert _counts() == (230, 230, 229)
    assert fake_wechat.calls["/cgi-bin/user/info/batchget"] == 4
    # Done: the next run is a full pass again, and changes nothing.
    again = CliRunner().invoke(main, ["wechat", "sync-followers"])
    assert "followers: 230 of 230 done; 229 unionids linked" in again.output
    assert _counts() == (230, 230, 229)


def test_process_inbox_finishes_stored_pushes(wechat_env: str, fake_wechat: FakeWeChat) -> None:
    """What a crash leaves (a stored, unprocessed push), `troika wechat process-inbox` finishes."""
    settings = get_settings()
    [openid] = fake_wechat.follow("nina")
    params, body = signed_push(settings, event_push(openid, "subscribe"), safe=False)

    async def store(db: Database) -> int | None:
        token, appid = settings.official_account_token, settings.official_account_appid
        assert token is not None
        assert appid is not None
        received = open_push(body.encode(), params, token=token, aes_key=None, appid=appid)
        inbox = OfficialAccountInbox(db, settings, load_dictionary(None), WeChatApi(settings))
        return await inbox.receive(received, timestamp=params["timestamp"], nonce=params["nonce"])

    assert with_db(settings, store) is not None
    result = CliRunner().invoke(main, ["wechat", "process-inbox"])
    assert result.exit_code == 0, result.output
    assert "inbox: 1 done" in result.output
    assert _counts() == (1, 1, 1)  # the follower, their openid and unionid
    again = CliRunner().invoke(main, ["wechat", "process-inbox"])
    assert "nothing to do" in again.output
