"""`troika worker`, `troika jobs` and `troika wechat inbox`, as an operator types them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from app.cli import main
from app.cli_jobs import with_jobs
from app.cli_support import with_db
from app.db.engine import Database
from app.db.models import WechatInbox
from app.db.types import utcnow
from app.jobs.runner import Jobs
from app.settings import get_settings


@pytest.fixture
def jobs_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The `troika` command on this test's database; a push fails at its first attempt."""
    monkeypatch.setenv("TROIKA_DATABASE_URL", database_url)
    monkeypatch.setenv("TROIKA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TROIKA_WECHAT_INBOX_ATTEMPTS", "1")
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def _store_broken_push() -> int:
    """A push whose payload is not XML: processing it fails (our side, not WeChat's)."""

    async def work(db: Database) -> int:
        async with db.write_sessions() as session, session.begin():
            values = {"appid": "wx", "dedupe_key": "k", "timestamp": "1", "nonce": "n", "payload": "not xml"}
            stmt = insert(WechatInbox).values(**values, received_at=utcnow(), status="pending", attempts=0)
            return int((await session.execute(stmt.returning(WechatInbox.id))).scalar_one())

    return with_db(get_settings(), work)


def _statuses() -> list[str]:
    async def work(db: Database) -> list[str]:
        async with db.read_sessions() as session:
            return list((await session.execute(select(WechatInbox.status))).scalars())

    return with_db(get_settings(), work)


def test_a_failed_push_is_listed_and_retried_from_the_command_line(jobs_env: str) -> None:
    push_id = _store_broken_push()

    async def run_once(jobs: Jobs) -> None:
        await jobs.defer_push(push_id)
        await jobs.drain()

    if get_settings().is_sqlite:
        runner = CliRunner()
        for command in (["worker"], ["jobs"], ["jobs", "retry", "1"]):
            refused = runner.invoke(main, command)
            assert refused.exit_code == 1
            assert "need PostgreSQL" in refused.output
        with_jobs(get_settings(), run_once)  # what the server's own worker would do
    else:
        with_jobs(get_settings(), run_once)
        listed = CliRunner().invoke(main, ["jobs", "--status", "failed"])
        assert listed.exit_code == 0, listed.output
        [line] = listed.output.splitlines()
        job_id = line.split()[0]
        assert "failed" in line
        assert "wechat.process_push" in line
        assert f'{{"push_id": {push_id}}}' in line

    assert _statuses() == ["failed"]
    shown = CliRunner().invoke(main, ["wechat", "inbox"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.split()[:2] == [str(push_id), "failed"]
    assert "error: " in shown.output

    if get_settings().is_sqlite:
        again = CliRunner().invoke(main, ["wechat", "inbox", "--retry"])
        assert f"inbox: 1 pushes queued again: [{push_id}]" in again.output
    else:
        again = CliRunner().invoke(main, ["jobs", "retry", job_id])
        assert again.exit_code == 0, again.output
        assert f"job {job_id}: queued again" in again.output
        assert CliRunner().invoke(main, ["jobs", "retry", job_id]).exit_code == 1  # not failed now
    assert _statuses() == ["pending"]
