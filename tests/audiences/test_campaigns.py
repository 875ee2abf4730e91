"""Campaigns sent to the fake WeChat: end to end, idempotent, resumed after a crash, consent and
WeChat's refusals respected."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db.models import AuditEntry
from app.jobs.runner import Jobs
from app.jobs.tasks import SEND_CAMPAIGN, requeue_stalled, run_campaign
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from tests.audiences.test_conditions import SAVE
from tests.conftest import by_nature
from tests.factories.auth import operator_key, user_token
from tests.factories.entitlements import set_consent
from tests.factories.identity import link
from tests.helpers import Gql
from tests.jobs.support import age_workers, jobs_of, make_due
from tests.jobs.test_worker_process import _until, worker_env

SEND = """
mutation ($input: CampaignInput!) {
  sendCampaign(input: $input) { id status audience kind purpose }
}
"""
CAMPAIGN = """
query ($id: ID!) {
  campaign(id: $id) { id status targeted sent failed skipped { reason count } createdAt finishedAt }
}
"""
OA, MP = "OFFICIAL_ACCOUNT", "MINI_PROGRAM"


async def _people(
    app: FastAPI, gql: Gql, op: str, channel: str, *, consenting: int, others: int = 0
) -> list[str]:
    """Users with an openid of `channel`'s app; the first `consenting` granted MARKETING there."""
    s = app.state.settings
    appid = s.official_account_appid if channel == OA else s.mini_program_appid
    ids = []
    for n in range(consenting + others):
        found = await link(gql, op, kind="OPENID", namespace=appid, value=f"o-{channel[:2]}-{n}")
        uid = found["user"]["id"]
        if n < consenting:
            await set_consent(gql, user_token(app, uid), "MARKETING", granted=True, source=channel)
        ids.append(uid)
    kind_channel = {"kind": "OPENID", "channel": channel}
    await gql(SAVE, {"name": "reachable", "c": {"identity": kind_channel}}, token=op)
    return ids


def _input(kind: str, key: str) -> dict[str, Any]:
    if kind == "OA_MASS_MESSAGE":
        return {
            "audience": "reachable",
            "kind": kind,
            "content": {"text": "双十二 coupon"},
            "idempotencyKey": key,
        }
    return {
        "audience": "reachable",
        "kind": kind,
        "templateId": "TPL-1",
        "content": {"data": {"thing1": {"value": "coupon"}}, "page": "pages/coupon"},
        "idempotencyKey": key,
    }


async def _report(gql: Gql, op: str, campaign_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await gql(CAMPAIGN, {"id": campaign_id}, token=op))["campaign"]
    return found


def _recipients(fake: FakeWeChat) -> list[str]:
    out: list[str] = []
    for m in fake.messages:
        out.extend(m["touser"] if isinstance(m["touser"], list) else [m["touser"]])
    return out


async def test_mass_message_end_to_end(app: FastAPI, gql: Gql, fake_wechat: FakeWeChat) -> None:
    op = await operator_key(app, "operator")
    await _people(app, gql, op, OA, consenting=2, others=1)
    started = (await gql(SEND, {"input": _input("OA_MASS_MESSAGE", "k1")}, token=op))["sendCampaign"]
    assert started["status"] == "QUEUED"
    await app.state.jobs.drain()
    report = await _report(gql, op, started["id"])
    assert report["status"] == "DONE"
    assert (report["targeted"], report["sent"], report["failed"]) == (3, 2, 0)
    assert report["skipped"] == [{"reason": "NO_CONSENT", "count": 1}]
    assert report["finishedAt"] is not None
    [message] = fake_wechat.messages
    assert message["kind"] == "mass"
    assert sorted(message["touser"]) == ["o-OF-0", "o-OF-1"]
    assert message["text"] == {"content": "双十二 coupon"}
    assert message["clientmsgid"] == f"troika-{started['id']}-1"
    async with httpx.AsyncClient() as http:  # what `make run` shows at /fake-wechat/sent
        shown = (await http.get(f"{app.state.settings.wechat_api_base_url}/sent")).json()
    assert shown["messages"] == fake_wechat.messages
    async with app.state.db.read_sessions() as session:
        audited = await session.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "campaign.send")
        )
        assert audited.scalar_one() == 1


async def test_same_idempotency_key_is_the_same_campaign(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    op = await operator_key(app, "operator")
    await _people(app, gql, op, MP, consenting=2)
    first = (await gql(SEND, {"input": _input("MP_SUBSCRIBE_MESSAGE", "same")}, token=op))["sendCampaign"]
    await app.state.jobs.drain()
    again = (await gql(SEND, {"input": _input("MP_SUBSCRIBE_MESSAGE", "same")}, token=op))["sendCampaign"]
    await app.state.jobs.drain()
    assert again["id"] == first["id"]
    assert sorted(_recipients(fake_wechat)) == ["o-MI-0", "o-MI-1"]
    assert all(m["kind"] == "subscribe" and m["template_id"] == "TPL-1" for m in fake_wechat.messages)
    assert (await _report(gql, op, first["id"]))["sent"] == 2


async def _stop_mid_call(app: FastAPI, fake: FakeWeChat, campaign_id: str, calls: int) -> None:
    """Run the campaign in this process and kill it while WeChat holds its call number `calls`."""
    fake.message_gate, fake.message_gate_after = threading.Event(), calls - 1
    task = asyncio.create_task(run_campaign(app.state.db, app.state.settings, int(campaign_id)))
    path = {1: "/cgi-bin/message/mass/send"}.get(calls, "/cgi-bin/message/template/send")
    for _ in range(1000):
        if fake.calls[path] >= calls:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    fake.message_gate.set()  # WeChat answers the call nobody waits for any more: it went out
    for _ in range(1000):
        if len(fake.messages) >= calls:
            break
        await asyncio.sleep(0.01)
    fake.message_gate = None


async def test_template_campaign_resumed_after_a_crash_sends_nobody_twice(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    op = await operator_key(app, "operator")
    await _people(app, gql, op, OA, consenting=4)
    started = (await gql(SEND, {"input": _input("OA_TEMPLATE_MESSAGE", "crash")}, token=op))["sendCampaign"]
    await _stop_mid_call(app, fake_wechat, started["id"], calls=2)
    assert (await _report(gql, op, started["id"]))["status"] == "SENDING"
    jobs: Jobs = app.state.jobs
    await jobs.drain()  # the job sendCampaign queued resumes it
    report = await _report(gql, op, started["id"])
    sent = _recipients(fake_wechat)
    assert len(sent) == len(set(sent)) == 4
    # The call in flight at the crash may have gone out: it is not made again, and says so.
    assert (report["status"], report["sent"], report["failed"]) == ("DONE", 3, 1)


async def test_mass_campaign_resumed_after_a_crash_repeats_its_clientmsgid(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    op = await operator_key(app, "operator")
    await _people(app, gql, op, OA, consenting=3)
    started = (await gql(SEND, {"input": _input("OA_MASS_MESSAGE", "crash-mass")}, token=op))["sendCampaign"]
    await _stop_mid_call(app, fake_wechat, started["id"], calls=1)
    await app.state.jobs.drain()
    report = await _report(gql, op, started["id"])
    assert (report["status"], report["sent"], report["failed"]) == ("DONE", 3, 0)
    assert len(fake_wechat.messages) == 1  # the repeated call was WeChat's 45065: sent already
    assert fake_wechat.calls["/cgi-bin/message/mass/send"] == 2


async def test_consent_withdrawn_after_the_start_is_skipped(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    op = await operator_key(app, "operator")
    ids = await _people(app, gql, op, OA, consenting=3)
    started = (await gql(SEND, {"input": _input("OA_TEMPLATE_MESSAGE", "withdrawn")}, token=op))[
        "sendCampaign"
    ]
    fake_wechat.message_gate = threading.Event()  # the first call waits: the campaign has started
    task = asyncio.create_task(run_campaign(app.state.db, app.state.settings, int(started["id"])))
    for _ in range(1000):
        if fake_wechat.calls["/cgi-bin/message/template/send"]:
            break
        await asyncio.sleep(0.01)
    await set_consent(gql, user_token(app, ids[2]), "MARKETING", granted=False, source=OA)
    fake_wechat.message_gate.set()
    assert await task == "DONE"
    report = await _report(gql, op, started["id"])
    assert (report["targeted"], report["sent"]) == (3, 2)
    assert report["skipped"] == [{"reason": "NO_CONSENT", "count": 1}]
    assert "o-OF-2" not in _recipients(fake_wechat)


async def test_wechat_refusals_are_reasons_not_failures(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    op = await operator_key(app, "operator")
    await _people(app, gql, op, MP, consenting=3)
    fake_wechat.refusals.update({"o-MI-0": 43101, "o-MI-1": 43004})
    fake_wechat.send_failures = 1  # and WeChat busy once: retried, not lost
    started = (await gql(SEND, {"input": _input("MP_SUBSCRIBE_MESSAGE", "refused")}, token=op))[
        "sendCampaign"
    ]
    await app.state.jobs.drain()
    assert (await _report(gql, op, started["id"]))["status"] == "SENDING"  # waits out the backoff
    await make_due(app.state.jobs)
    await app.state.jobs.drain()
    report = await _report(gql, op, started["id"])
    assert (report["status"], report["sent"], report["failed"]) == ("DONE", 1, 0)
    assert report["skipped"] == [
        {"reason": "NOT_SUBSCRIBED", "count": 1},
        {"reason": "SUBSCRIPTION_REFUSED", "count": 1},
    ]
    assert _recipients(fake_wechat) == ["o-MI-2"]


@pytest.mark.parametrize("role", ["viewer"])
async def test_only_operators_send(app: FastAPI, gql: Gql, fake_wechat: FakeWeChat, role: str) -> None:
    op = await operator_key(app, "operator")
    await _people(app, gql, op, OA, consenting=1)
    viewer = await operator_key(app, role)
    await gql.error(SEND, {"input": _input("OA_MASS_MESSAGE", "v")}, token=viewer, code="FORBIDDEN")
    await gql.error(
        SEND,
        {"input": {**_input("OA_TEMPLATE_MESSAGE", "t"), "templateId": None}},
        token=op,
        code="BAD_USER_INPUT",
    )


async def test_a_worker_killed_mid_campaign_leaves_it_to_be_resumed_sending_nobody_twice(
    app: FastAPI, gql: Gql, settings: Settings, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    if settings.is_sqlite:
        by_nature("a dedicated worker needs PostgreSQL (with SQLite the queue is the server's own)")
    jobs: Jobs = app.state.jobs
    op = await operator_key(app, "operator")
    await _people(app, gql, op, OA, consenting=4)
    fake_wechat.message_gate, fake_wechat.message_gate_after = threading.Event(), 1
    started = (await gql(SEND, {"input": _input("OA_TEMPLATE_MESSAGE", "killed")}, token=op))["sendCampaign"]
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", "from app.cli import main; main()", "worker", "--name", "doomed"],
        env=worker_env(settings, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def mid_campaign() -> bool:
            return fake_wechat.calls["/cgi-bin/message/template/send"] >= 2

        await _until(mid_campaign, "the campaign's second call", proc)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
        fake_wechat.message_gate.set()  # the call in flight reaches WeChat after all
    assert (await _report(gql, op, started["id"]))["status"] == "SENDING"
    await age_workers(jobs, 120)  # a minute without its heartbeat, as jobs.retry_stalled sees it
    assert await requeue_stalled(jobs.queue) == 1
    await jobs.drain()
    report = await _report(gql, op, started["id"])
    sent = _recipients(fake_wechat)
    assert len(sent) == len(set(sent)) == 4
    assert (report["status"], report["sent"], report["failed"]) == ("DONE", 3, 1)
    assert [j.status for j in await jobs_of(jobs, SEND_CAMPAIGN)] == ["succeeded"]
