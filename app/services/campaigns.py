"""Campaigns: a push to a saved audience's recipients through WeChat, sent by a background job.

Every recipient gets a delivery row before WeChat is called, so a job run again after a crash or
a restart goes on where it stopped: a mass send repeats its batch's call with the same
`clientmsgid` (WeChat sends it once), and a one-per-recipient call that may have gone out is
never repeated (it counts as failed, INTERRUPTED).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import appid_channels
from app.db.engine import Database
from app.db.models import Campaign, CampaignDelivery
from app.db.types import utcnow
from app.domain import Channel, IdentityKind
from app.domain.entitlements import Purpose
from app.errors import InvalidInput
from app.ingest.dictionary import DataDictionary
from app.services import audit
from app.services.audiences import NO_CONSENT, Audiences
from app.settings import Settings
from app.stores import identity as identity_store
from app.wechat.api import WeChatApi

log = logging.getLogger("troika.campaigns")

KINDS = {
    "OA_MASS_MESSAGE": Channel.OFFICIAL_ACCOUNT,
    "OA_TEMPLATE_MESSAGE": Channel.OFFICIAL_ACCOUNT,
    "MP_SUBSCRIBE_MESSAGE": Channel.MINI_PROGRAM,
}
QUEUED, SENDING, DONE, FAILED = "QUEUED", "SENDING", "DONE", "FAILED"
PENDING, IN_FLIGHT, SENT, NOT_SENT, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
# WeChat's refusals of one recipient: recorded as why they were skipped, not as failures.
REFUSALS = {43004: "NOT_SUBSCRIBED", 43101: "SUBSCRIPTION_REFUSED", 43019: "BLOCKED"}
CLIENT_MSG_ID_EXISTS = 45065
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    audience: str
    kind: str
    purpose: str
    status: str
    targeted: int
    sent: int
    failed: int
    skipped: dict[str, int]
    created_at: datetime
    finished_at: datetime | None


async def unfinished(session: AsyncSession) -> list[int]:
    """Campaigns queued or sending (a job resumes each)."""
    found = await session.execute(select(Campaign.id).where(Campaign.status.in_([QUEUED, SENDING])))
    return list(found.scalars())


class Pacer:
    """At most `rate` calls per second (WeChat's per-app limits), for one job."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(now, self.next) + self.gap


class Campaigns:
    """Creates campaigns (idempotently), sends them (the job) and reports on them."""

    def __init__(self, db: Database, dictionary: DataDictionary, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.audiences = Audiences(db, dictionary, settings)

    async def create(self, session: AsyncSession, *, data: dict[str, Any], actor: str) -> tuple[int, bool]:
        """The campaign of this idempotency key (made now when new) and whether it is new."""
        key = str(data["idempotency_key"]).strip()
        if not 1 <= len(key) <= 200:
            raise InvalidInput("idempotencyKey: 1 to 200 characters", field="idempotencyKey")
        found = (
            await session.execute(select(Campaign.id).where(Campaign.idempotency_key == key))
        ).scalar_one_or_none()
        if found is not None:
            return found, False
        kind = str(data["kind"])
        if await self.audiences.get(session, data["audience"]) is None:
            raise InvalidInput(f"no saved audience named {data['audience']!r}", field="audience")
        if kind != "OA_MASS_MESSAGE" and not data.get("template_id"):
            raise InvalidInput(f"templateId: required for {kind}", field="templateId")
        content = data["content"]
        if kind == "OA_MASS_MESSAGE" and not (
            isinstance(content, dict) and isinstance(content.get("text"), str)
        ):
            raise InvalidInput('content: a mass message is {"text": "..."}', field="content")
        if kind != "OA_MASS_MESSAGE" and not (
            isinstance(content, dict) and isinstance(content.get("data"), dict)
        ):
            raise InvalidInput(
                'content: a template message is {"data": {...}, "url"/"page": ...}', field="content"
            )
        row = Campaign(
            idempotency_key=key,
            audience=data["audience"],
            kind=kind,
            purpose=str(data["purpose"]),
            template_id=data.get("template_id"),
            content=content,
            status=QUEUED,
            targeted=0,
            excluded={},
            created_by=actor,
            created_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="campaign.send",
            user_id=None,
            details={"campaign": row.id, "audience": row.audience, "kind": kind, "purpose": row.purpose},
        )
        return row.id, True

    async def get(self, session: AsyncSession, campaign_id: int) -> CampaignRecord | None:
        c = await session.get(Campaign, campaign_id)
        if c is None:
            return None
        rows = await session.execute(
            select(CampaignDelivery.status, CampaignDelivery.reason, func.count())
            .where(CampaignDelivery.campaign_id == campaign_id)
            .group_by(CampaignDelivery.status, CampaignDelivery.reason)
        )
        counts: Counter[str] = Counter()
        skipped: Counter[str] = Counter(c.excluded)
        for status, reason, n in rows:
            counts[status] += n
            if status == SKIPPED:
                skipped[reason or "SKIPPED"] += n
        return CampaignRecord(
            c.id,
            c.audience,
            c.kind,
            c.purpose,
            c.status,
            c.targeted,
            counts[SENT],
            counts[NOT_SENT],
            dict(skipped),
            c.created_at,
            c.finished_at,
        )

    # -- the job ----------------------------------------------------------------------------
    async def run(self, campaign_id: int, api: WeChatApi) -> str:
        """Send what is left of a campaign; WECHAT_UNAVAILABLE propagates (the job retries)."""
        async with self.db.read_sessions() as session:
            c = await session.get(Campaign, campaign_id)
        if c is None:
            return "gone"
        if c.status in (DONE, FAILED):
            return c.status
        if c.status == QUEUED:
            await self._target(c)
        channel = KINDS[c.kind]
        pacer = Pacer(self.settings.campaign_calls_per_second)
        if c.kind == "OA_MASS_MESSAGE":
            await self._mass(c, api, pacer)
        else:
            await self._one_by_one(c, channel, api, pacer)
        async with self.db.write_sessions() as session, session.begin():
            await session.execute(
                update(Campaign).where(Campaign.id == c.id).values(status=DONE, finished_at=utcnow())
            )
        log.info("campaign %d done", c.id)
        return DONE

    async def _target(self, c: Campaign) -> None:
        """Write one delivery row per recipient (and the members left out), then start sending."""
        channel, purpose = KINDS[c.kind], Purpose(c.purpose)
        async with self.db.read_sessions() as session:
            audience = await self.audiences.get(session, c.audience)
        if audience is None:
            async with self.db.write_sessions() as session, session.begin():
                await session.execute(
                    update(Campaign)
                    .where(Campaign.id == c.id)
                    .values(status=FAILED, finished_at=utcnow(), excluded={"AUDIENCE_DELETED": 0})
                )
            return
        appid = {ch: a for a, ch in appid_channels(self.settings).items()}.get(channel)
        rows: list[dict[str, Any]] = []
        after: int | None = None
        excluded: dict[str, int] = {}
        while True:
            chunk = await self.audiences.recipients(
                audience.condition, channel=channel, purpose=purpose, first=_PAGE, after_id=after
            )
            excluded = chunk.excluded
            ids = chunk.user_ids[:_PAGE]
            async with self.db.read_sessions() as session:
                held = await identity_store.identities_by_user_ids(session, ids)
            for uid in ids:
                openid = next(
                    (
                        i.value
                        for i in held.get(uid, [])
                        if i.kind is IdentityKind.OPENID and i.namespace == appid
                    ),
                    None,
                )
                rows.append({"campaign_id": c.id, "user_id": uid, "openid": openid, "status": PENDING})
            if len(chunk.user_ids) <= _PAGE:
                break
            after = ids[-1]
        async with self.db.write_sessions() as session, session.begin():
            status = (await session.execute(select(Campaign.status).where(Campaign.id == c.id))).scalar_one()
            if status != QUEUED:  # another run targeted it first
                return
            for start in range(0, len(rows), _PAGE):
                await session.execute(insert(CampaignDelivery), rows[start : start + _PAGE])
            await session.execute(
                update(Campaign)
                .where(Campaign.id == c.id)
                .values(status=SENDING, targeted=len(rows) + sum(excluded.values()), excluded=excluded)
            )
        c.status = SENDING

    async def _rows(self, c: Campaign, status: str, limit: int) -> list[CampaignDelivery]:
        async with self.db.read_sessions() as session:
            found = await session.execute(
                select(CampaignDelivery)
                .where(CampaignDelivery.campaign_id == c.id, CampaignDelivery.status == status)
                .order_by(CampaignDelivery.id)
                .limit(limit)
            )
            return list(found.scalars())

    async def _mark(self, ids: list[int], **values: Any) -> None:
        if not ids:
            return
        async with self.db.write_sessions() as session, session.begin():
            await session.execute(
                update(CampaignDelivery).where(CampaignDelivery.id.in_(ids)).values(**values)
            )

    async def _recheck(self, c: Campaign, rows: list[CampaignDelivery]) -> list[CampaignDelivery]:
        """The rows whose user still consents; the others are skipped (NO_CONSENT) now."""
        ok = await self.audiences.consenting(
            [r.user_id for r in rows], channel=KINDS[c.kind], purpose=Purpose(c.purpose)
        )
        await self._mark([r.id for r in rows if r.user_id not in ok], status=SKIPPED, reason=NO_CONSENT)
        return [r for r in rows if r.user_id in ok]

    async def _mass(self, c: Campaign, api: WeChatApi, pacer: Pacer) -> None:
        size = max(1, min(self.settings.campaign_mass_batch, 10_000))
        text = str(c.content["text"])
        while True:
            batch = await self._rows(c, IN_FLIGHT, size)  # a call a crash interrupted: the same again
            if not batch:
                fresh = await self._recheck(c, await self._rows(c, PENDING, size))
                if not fresh:
                    if not await self._rows(c, PENDING, 1):
                        return
                    continue
                async with self.db.read_sessions() as session:
                    last = (
                        await session.execute(
                            select(func.max(CampaignDelivery.batch)).where(
                                CampaignDelivery.campaign_id == c.id
                            )
                        )
                    ).scalar_one()
                number = (last or 0) + 1
                await self._mark([r.id for r in fresh], status=IN_FLIGHT, batch=number, attempted_at=utcnow())
                batch = list(fresh)
                for r in batch:
                    r.batch = number
            await pacer.wait()
            refused = await api.mass_send(
                [r.openid for r in batch if r.openid], text, client_msg_id=f"troika-{c.id}-{batch[0].batch}"
            )
            ids = [r.id for r in batch]
            if refused in (None, CLIENT_MSG_ID_EXISTS):  # the latter: this batch went out before
                await self._mark(ids, status=SENT)
            else:
                await self._mark(ids, status=NOT_SENT, reason=f"WECHAT_{refused}")

    async def _one_by_one(self, c: Campaign, channel: Channel, api: WeChatApi, pacer: Pacer) -> None:
        # A call that may have gone out before a crash is never made again.
        await self._mark(
            [r.id for r in await self._rows(c, IN_FLIGHT, 100_000)], status=NOT_SENT, reason="INTERRUPTED"
        )
        template = str(c.template_id)
        data = dict(c.content.get("data") or {})
        while rows := await self._rows(c, PENDING, 100):
            for r in rows:
                if not await self._recheck(c, [r]):  # consent withdrawn since the campaign started
                    continue
                await self._mark([r.id], status=IN_FLIGHT, attempted_at=utcnow())
                await pacer.wait()
                try:
                    if c.kind == "OA_TEMPLATE_MESSAGE":
                        refused = await api.template_send(str(r.openid), template, data, c.content.get("url"))
                    else:
                        refused = await api.subscribe_send(
                            str(r.openid), template, data, c.content.get("page")
                        )
                except Exception:
                    await self._mark([r.id], status=PENDING)  # WeChat busy: this one was not sent
                    raise
                if refused is None:
                    await self._mark([r.id], status=SENT)
                elif refused in REFUSALS:
                    await self._mark([r.id], status=SKIPPED, reason=REFUSALS[refused])
                else:
                    await self._mark([r.id], status=NOT_SENT, reason=f"WECHAT_{refused}")
