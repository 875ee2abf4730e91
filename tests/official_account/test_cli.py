"""`troika wechat pull`: a backfill from the command line, and, without dates, what is due."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import main
from app.settings import get_settings
from app.wechat.fake import FakeWeChat
from tests.conftest import TEST_WECHAT_SECRETS
from tests.official_account.support import days_back


@pytest.fixture
def wechat_env(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, fake_wechat_server: tuple[FakeWeChat, str]
) -> str:
    """The CLI's environment pointed at the fake WeChat too."""
    monkeypatch.setenv("TROIKA_WECHAT_API_BASE_URL", fake_wechat_server[1])
    monkeypatch.setenv("TROIKA_WECHAT_FAKE", "false")
    monkeypatch.setenv("TROIKA_OFFICIAL_ACCOUNT_PULL_DAYS", "3")
    for name, value in TEST_WECHAT_SECRETS.items():
        monkeypatch.setenv(f"TROIKA_{name.upper()}", value)
    get_settings.cache_clear()
    return cli_env


def test_a_backfill_then_what_is_due(wechat_env: str, fake_wechat: FakeWeChat) -> None:
    days = days_back(10)
    done = CliRunner().invoke(main, ["wechat", "pull", "--from", days[0], "--to", days[4]])
    assert done.exit_code == 0, done.output
    assert f"official account: 5 days pulled ({days[0]}..{days[4]}), 3 articles, 5 comments" in done.output
    due = CliRunner().invoke(main, ["wechat", "pull"])  # resumes after the last day stored
    assert due.exit_code == 0, due.output
    assert f"5 days pulled ({days[5]}..{days[9]})" in due.output
    assert "up to date" in CliRunner().invoke(main, ["wechat", "pull"]).output
    refused = CliRunner().invoke(main, ["wechat", "pull", "--from", "2014-01-01", "--to", days[0]])
    assert refused.exit_code != 0
    assert "WeChat's data starts on 2014-12-01" in refused.output
