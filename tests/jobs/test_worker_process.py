"""`troika worker` as a process of its own: killed outright mid-job, its job is finished once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.jobs.runner import Jobs
from app.jobs.tasks import PROCESS_PUSH, requeue_stalled
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from tests.conftest import TEST_WECHAT_SECRETS, by_nature
from tests.factories.wechat import event_xml
from tests.factories.wechat_push import push
from tests.jobs.support import age_workers, events, inbox, jobs_of


def worker_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    env.update(
        TROIKA_ENV="development",
        TROIKA_DATABASE_URL=settings.database_url,
        TROIKA_VAR_DIR=str(tmp_path / "worker-var"),
        TROIKA_TOKEN_SECRET=settings.secret("token_secret"),
        TROIKA_PII_KEY=settings.secret("pii_key"),
        TROIKA_PII_INDEX_KEY=settings.secret("pii_index_key"),
        TROIKA_WECHAT_API_BASE_URL=settings.wechat_api_base_url,
        TROIKA_WECHAT_FAKE="false",
        **{f"TROIKA_{k.upper()}": v for k, v in TEST_WECHAT_SECRETS.items()},
    )
    return env


async def _until(check: object, what: str, proc: asyncio.subprocess.Process) -> None:
    for _ in range(300):  # a bound, not a timing: up to 30 s on a busy machine
        if await check():  # type: ignore[operator]
            return
        assert proc.returncode is None, f"the worker exited ({proc.returncode}) before {what}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"the worker never got to {what}")


async def test_a_worker_killed_mid_job_leaves_it_to_be_finished_once(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    if settings.is_sqlite:
        by_nature("a dedicated worker needs PostgreSQL (with SQLite the queue is the server's own)")
    jobs: Jobs = app.state.jobs
    [openid] = fake_wechat.follow("wanda")
    fake_wechat.user_info_gate = threading.Event()  # WeChat's user/info hangs: the job stops mid-way
    await push(client, settings, event_xml(openid, "subscribe"))
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", "from app.cli import main; main()", "worker", "--name", "doomed"],
        env=worker_env(settings, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def mid_job() -> bool:
            doing = [j for j in await jobs_of(jobs, PROCESS_PUSH) if j.status == "doing"]
            return bool(doing) and fake_wechat.calls["/cgi-bin/user/info"] > 0

        await _until(mid_job, "the push's user/info call", proc)
        assert [s for s, _ in await inbox(app)] == ["processing"]
        assert await events(app) == 1  # the behaviour is in; the unionid is not
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
        fake_wechat.user_info_gate.set()
    [job] = await jobs_of(jobs, PROCESS_PUSH)
    assert job.status == "doing"  # held by a worker that is gone
    await age_workers(jobs, 120)  # a minute without its heartbeat, as jobs.retry_stalled sees it
    assert await requeue_stalled(jobs.queue) == 1
    await jobs.drain()
    assert await inbox(app) == [("done", "subscribe: duplicate; unionid linked")]
    assert await events(app) == 1  # finished once in its effect
    assert [j.status for j in await jobs_of(jobs, PROCESS_PUSH)] == ["succeeded"]
