"""Follower backfill: every official-account follower's openid and unionid, resumable.

Pages through `iter_followers` and `user.get_batch` (100 per call); each batch's links and the
cursor (the last openid done) commit together, so an interrupted run continues where it stopped.
A run that reaches the end clears the cursor: the next one is a full, idempotent pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from app.db.engine import Database
from app.db.types import utcnow
from app.domain import Channel, IdentityKind
from app.errors import IdentityConflict
from app.services.identity import IdentityGraph
from app.services.identity_rules import LinkRequest, make_key
from app.stores import wechat as store
from app.wechat.api import WeChatApi

STATE = "official-account-followers"
BATCH = 100  # user/info/batchget takes at most 100 openids
ACTOR = "wechat:OFFICIAL_ACCOUNT:backfill"


@dataclass
class SyncReport:
    total: int
    done: int = 0
    with_unionid: int = 0
    conflicts: int = 0
    resumed_after: int = 0


async def sync_followers(
    db: Database,
    wechat: WeChatApi,
    *,
    restart: bool = False,
    progress: Callable[[SyncReport], None] = lambda _r: None,
) -> SyncReport:
    client = wechat.client(Channel.OFFICIAL_ACCOUNT)
    appid = wechat.client_appid(Channel.OFFICIAL_ACCOUNT)
    async with db.read_sessions() as session:
        cursor, done = (None, 0) if restart else await store.sync_state(session, STATE)
    first: dict[str, Any] = await wechat.call("user/get", lambda: client.user.get_followers(cursor))
    report = SyncReport(total=int(first.get("total", 0)), done=done, resumed_after=done)
    progress(report)
    followers: Iterator[str] = client.user.iter_followers(cursor)
    while True:
        batch: list[str] = await wechat.call("user/get", lambda: list(islice(followers, BATCH)))
        if not batch:
            break
        infos: list[dict[str, Any]] = await wechat.call(
            "user/info/batchget", partial(client.user.get_batch, batch)
        )
        async with db.write_sessions() as session, session.begin():
            graph = IdentityGraph(session)
            for info in infos:
                keys = [make_key(IdentityKind.OPENID, str(info["openid"]), appid, phone_region="CN")]
                if info.get("unionid"):
                    keys.append(make_key(IdentityKind.UNIONID, str(info["unionid"]), None, phone_region="CN"))
                source = "unionid from user/info/batchget" if len(keys) == 2 else "openid from user/get"
                try:
                    await graph.link(LinkRequest(keys, None, ACTOR, "wechat", source, verified=True))
                except IdentityConflict:
                    report.conflicts += 1
                    continue
                report.with_unionid += len(keys) - 1
            report.done += len(batch)
            await store.save_sync_state(session, STATE, cursor=batch[-1], done=report.done, at=utcnow())
        progress(report)
    async with db.write_sessions() as session, session.begin():
        await store.save_sync_state(session, STATE, cursor=None, done=0, at=utcnow())
    return report
