"""Demo users from the brief's stories, linked through the real graph so the merges are real."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Database
from app.db.models import User
from app.db.types import utcnow
from app.domain import Channel, IdentityKey, IdentityKind
from app.domain.entitlements import ConsentChange, Purpose
from app.entitlements.catalogue import catalogue_for
from app.ingest.dictionary import load_dictionary
from app.ingest.service import Ingestor
from app.services.audiences import Audiences
from app.services.consents import ConsentLedger
from app.services.identity import IdentityGraph
from app.services.identity_rules import LinkRequest
from app.services.memberships import Memberships
from app.services.roles import StaffRoles
from app.settings import Settings, get_settings
from app.stores import identity as identity_store

STORIES = (
    "restaurant chain: reads 美食推荐 in the official account, orders in the mini program, "
    "earns points in the APP",
    "e-commerce shop: fills the cart in the mini program, pays in the APP",
    "hotel chain: PLATINUM member in the APP, books rooms in the mini program",
)


def _openid(appid: str, n: int) -> str:
    return "o" + hashlib.sha256(f"{appid}:{n}".encode()).hexdigest()[:27]


def _unionid(n: int) -> str:
    return "u" + hashlib.sha256(f"union:{n}".encode()).hexdigest()[:27]


def _phone(n: int) -> IdentityKey:
    return IdentityKey(IdentityKind.PHONE, "", f"+86138000000{n:02d}")


async def _link(
    graph: IdentityGraph, keys: list[IdentityKey], source: str, user_id: int | None = None
) -> int:
    outcome = await graph.link(
        LinkRequest(keys=keys, user_id=user_id, actor="demo", rule="demo", source=source)
    )
    assert outcome.user is not None
    return outcome.user.id


async def load_demo(db: Database, *, if_empty: bool, settings: Settings | None = None) -> int:
    """Load 36 people and a staff member; returns how many users were created (0 if kept)."""
    settings = settings or get_settings()
    mp, oa, app = settings.mini_program_appid, settings.official_account_appid, settings.app_wechat_appid
    assert mp
    assert oa
    assert app
    async with db.write_sessions() as session, session.begin():
        if if_empty and (await session.execute(select(func.count()).select_from(User))).scalar_one():
            return 0
        graph = IdentityGraph(session)
        for n in range(1, 37):
            story = STORIES[(n - 1) % 3]
            mp_openid = IdentityKey(IdentityKind.OPENID, mp, _openid(mp, n))
            oa_openid = IdentityKey(IdentityKind.OPENID, oa, _openid(oa, n))
            app_openid = IdentityKey(IdentityKind.OPENID, app, _openid(app, n))
            union = IdentityKey(IdentityKind.UNIONID, "", _unionid(n))
            app_user = IdentityKey(IdentityKind.APP_USER_ID, "", f"A{100000 + n}")
            if n <= 12:
                # Everywhere: two strangers until the phone and the unionid join them.
                first = await _link(graph, [mp_openid, union], f"{story}; mini program code2session")
                other = await _link(graph, [app_user], f"{story}; APP sign-up")
                await _link(graph, [_phone(n)], "APP phone verified by SMS", other)
                await _link(graph, [_phone(n)], "mini program phone code", first)
                await _link(graph, [oa_openid, union], "official account follower with unionid")
                if n % 4 == 0:
                    await _link(graph, [app_openid, union], "APP WeChat login")
            elif n <= 24:
                # Two channels; some signed in to the APP with QQ or Weibo.
                user = await _link(graph, [oa_openid, union], f"{story}; official account follower")
                await _link(graph, [app_user, _phone(n)], "APP sign-up by SMS", user)
                if n % 2:
                    provider = "qq" if n % 3 else "weibo"
                    key = IdentityKey(IdentityKind.EXTERNAL, provider, f"{provider}-{n:05d}")
                    await _link(graph, [key], f"APP login with {provider}", user)
            elif n <= 33:
                await _link(graph, [mp_openid], f"{story}; mini program visitor")
            else:
                # An openid of an appid no channel is configured for: kept, with no channel.
                other_app = IdentityKey(IdentityKind.OPENID, "wx00000partnerapp", _openid("partner", n))
                await _link(graph, [other_app], "partner mini program")
        await _staff(graph, mp, settings)
        await _permissions(session, settings)
        created = await session.execute(
            select(func.count()).select_from(User).where(User.merged_into_id.is_(None))
        )
    await _channel_records(db, settings)
    await _audiences(db, settings)
    return int(created.scalar_one())


DEMO_AUDIENCES: dict[str, tuple[str, dict[str, Any]]] = {
    "mp-buyers": (
        "bought in the mini program: the official account's coupon goes to them",
        {"orders": {"channel": "MINI_PROGRAM", "statuses": ["PAID", "SHIPPED", "COMPLETED"]}},
    ),
    "booked-not-bought": (
        "booked a trial lesson but bought no course: the APP's offer goes to them",
        {"all": [{"reservations": {"service": "少儿编程体验课"}}, {"not": {"orders": {"sku": "COURSE-1"}}}]},
    ),
}


async def _audiences(db: Database, settings: Settings) -> None:
    """Two saved audiences from the brief's stories."""
    service = Audiences(db, load_dictionary(settings.data_dictionary_path), settings)
    async with db.write_sessions() as session, session.begin():
        for name, (description, condition) in DEMO_AUDIENCES.items():
            await service.save(session, name=name, condition=condition, description=description, actor="demo")


STAFF_PHONE = IdentityKey(IdentityKind.PHONE, "", "+8613900000099")
POLICY = "2026-11"


async def _staff(graph: IdentityGraph, mp: str, settings: Settings) -> None:
    """A store order manager who signs in to the mini program and to the APP: two accounts, one phone."""
    in_mp = await _link(graph, [IdentityKey(IdentityKind.OPENID, mp, _openid(mp, 99))], "staff: mini program")
    in_app = await _link(graph, [IdentityKey(IdentityKind.APP_USER_ID, "", "S-0001")], "staff: APP sign-up")
    await _link(graph, [STAFF_PHONE], "staff phone verified by SMS", in_app)
    await _link(graph, [STAFF_PHONE], "staff phone, mini program phone code", in_mp)


def _consent(
    purpose: Purpose, granted: bool, source: Channel, channel: Channel | None = None
) -> list[ConsentChange]:
    return [ConsentChange(purpose, channel, granted, source, POLICY)]


async def _permissions(session: AsyncSession, settings: Settings) -> None:
    """Consents, memberships and points for the people in every channel; roles for the staff member."""
    owners = await identity_store.identities_by_keys(
        session, [_phone(n) for n in range(1, 25)] + [STAFF_PHONE]
    )
    ledger = ConsentLedger(session)
    memberships = Memberships(session, catalogue_for(settings))
    mp, oa, app = Channel.MINI_PROGRAM, Channel.OFFICIAL_ACCOUNT, Channel.APP
    for n in range(1, 25):
        user_id = owners[_phone(n)].user_id
        changes = _consent(Purpose.PUSH, True, mp, mp) + _consent(Purpose.PERSONALIZATION, n % 2 == 1, mp)
        await ledger.set(user_id, changes, actor="demo")
        await ledger.set(user_id, _consent(Purpose.MARKETING, True, app), actor="demo")  # every channel
        if n % 4 == 1:  # then withdrawn in the official account: withdrawn everywhere
            await ledger.set(user_id, _consent(Purpose.MARKETING, False, oa, oa), actor="demo")
        if n % 3 == 0:
            await ledger.set(user_id, _consent(Purpose.PUSH, False, app, app), actor="demo")
        await ledger.set(user_id, _consent(Purpose.LOCATION, n % 5 != 0, app), actor="demo")
        story = (n - 1) % 3
        if story == 2:  # the hotel chain: PLATINUM in the APP
            await memberships.grant(
                user_id, tier="PLATINUM", source_channel=app, expires_at=None, actor="demo"
            )
        elif n <= 12:
            tier, channel = ("GOLD", mp) if story == 0 else ("SILVER", app)
            ends = utcnow() + timedelta(days=365)
            await memberships.grant(user_id, tier=tier, source_channel=channel, expires_at=ends, actor="demo")
        reason = "demo: points of past orders"
        await memberships.adjust_points(
            user_id, delta=100 * n, reason=reason, source_channel=app, actor="demo"
        )
    staff = owners[STAFF_PHONE].user_id
    roles = StaffRoles(session, catalogue_for(settings))
    await roles.grant(staff, role="store_order_manager", scope="store:12", actor="demo")
    await roles.grant(staff, role="customer_service", scope=None, actor="demo")


TAGS = ("美食推荐", "母婴知识", "酒店优惠")
SERVICES = ("包间预订", "儿童摄影", "行政套房")
MP_STATUSES = ("待支付", "已支付", "已发货", "已完成", "已取消")


def _at(day: int, hour: int) -> str:
    return f"2026-11-{day:02d}T{hour:02d}:15:00+08:00"


async def _channel_records(db: Database, settings: Settings) -> None:
    """Orders, carts and behaviour in each channel's native shape, through the real ingestion path."""
    mp, oa = settings.mini_program_appid, settings.official_account_appid
    assert mp
    assert oa
    ingestor = Ingestor(db, load_dictionary(settings.data_dictionary_path), settings)
    batches: dict[Channel, list[object]] = {c: [] for c in Channel}
    for n in range(1, 25):
        story = (n - 1) % 3
        mp_who = {"kind": "OPENID", "namespace": mp, "value": _openid(mp, n)}
        oa_who = {"kind": "OPENID", "namespace": oa, "value": _openid(oa, n)}
        app_who = {"kind": "APP_USER_ID", "value": f"A{100000 + n}"}
        if n <= 12:
            # An unpaid mini program order that the APP shows too, and a paid APP order.
            batches[Channel.MINI_PROGRAM].append(
                _envelope(
                    f"mp-o-{n}",
                    "order",
                    mp_who,
                    _at(n, 12),
                    {
                        "orderId": f"MP{1000 + n}",
                        "status": MP_STATUSES[n % 5],
                        "amount": f"{38 + n}.50元",
                        "items": [
                            {
                                "sku": f"SKU-{story}-1",
                                "name": ("拿铁", "婴儿湿巾", "早餐券")[story],
                                "qty": 1,
                                "price": f"{38 + n}.50元",
                            }
                        ],
                    },
                )
            )
            batches[Channel.MINI_PROGRAM].append(
                _envelope(f"mp-c-{n}", "cart", mp_who, _at(n, 13), {"sku": f"SKU-{story}-2", "quantity": 2})
            )
            batches[Channel.MINI_PROGRAM].append(
                _envelope(
                    f"mp-e-{n}",
                    "event",
                    mp_who,
                    _at(n, 11),
                    {"event": "reservation", "properties": {"service": SERVICES[story]}},
                )
            )
        batches[Channel.APP].append(
            _envelope(
                f"app-o-{n}",
                "order",
                app_who,
                _at(n, 20),
                {
                    "order_no": f"A-{5000 + n}",
                    "status": 1 + n % 3,
                    "total_fen": 9900 + 100 * n,
                    "items": [{"sku": f"SKU-{story}-3", "quantity": 1, "price_fen": 9900 + 100 * n}],
                },
            )
        )
        if n % 3 == 0:  # the education platform: a trial lesson booked in the APP, no course bought
            batches[Channel.APP].append(
                _envelope(
                    f"app-r-{n}",
                    "reservation",
                    app_who,
                    _at(n, 19),
                    {"reservation_no": f"R-{7000 + n}", "service_name": "少儿编程体验课", "status": n % 2},
                )
            )
        batches[Channel.APP].append(
            _envelope(f"app-c-{n}", "cart", app_who, _at(n, 21), {"sku": f"SKU-{story}-2", "quantity": 3})
        )
        batches[Channel.OFFICIAL_ACCOUNT].extend(
            _envelope(
                f"oa-e-{n}-{k}",
                "event",
                oa_who,
                _at(n, 9 + k),
                {"event": "article_read", "properties": {"tags": [TAGS[story]]}},
            )
            for k in range(3)
        )
        for channel, record in _journey(n, story, mp_who, oa_who, app_who):
            batches[channel].append(record)
    step = settings.ingest_max_records
    for channel, records in batches.items():
        for start in range(0, len(records), step):
            await ingestor.ingest(channel, records[start : start + step], actor="demo")


def _journey(
    n: int, story: int, mp_who: dict[str, str], oa_who: dict[str, str], app_who: dict[str, str]
) -> list[tuple[Channel, dict[str, object]]]:
    """The loop the funnel measures: everyone here follows the official account; the first twelve
    view the product in the mini program and favourite it in the APP; every other one of those
    signs in to the APP afterwards (the rest stop on the way)."""
    records = [
        (Channel.OFFICIAL_ACCOUNT, _envelope(f"oa-f-{n}", "event", oa_who, _at(n, 8), {"event": "subscribe"}))
    ]
    if n <= 12:
        sku, name = f"SKU-{story}-1", ("拿铁", "婴儿湿巾", "早餐券")[story]
        view: dict[str, object] = {"event": "product_view", "properties": {"goodsId": sku, "name": name}}
        favorite: dict[str, object] = {"event": "favorite", "properties": {"product_id": sku}}
        records.append((Channel.MINI_PROGRAM, _envelope(f"mp-v-{n}", "event", mp_who, _at(n, 10), view)))
        records.append((Channel.APP, _envelope(f"app-f-{n}", "event", app_who, _at(n, 22), favorite)))
        if n % 2 == 0:
            login = _envelope(f"app-l-{n}", "event", app_who, _at(n, 23), {"event": "login"})
            records.append((Channel.APP, login))
    return records


def _envelope(
    record_id: str, kind: str, identity: dict[str, str], at: str, data: dict[str, object]
) -> dict[str, object]:
    return {"id": record_id, "type": kind, "identity": identity, "occurredAt": at, "data": data}
