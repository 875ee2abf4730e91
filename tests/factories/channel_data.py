"""Envelopes in each channel's native shape, and the HTTP door to send them through."""

from __future__ import annotations

from typing import Any

import httpx

T0 = "2026-11-20T10:00:00+08:00"


def envelope(
    record_id: str, kind: str, identity: dict[str, Any], data: dict[str, Any], *, at: str = T0
) -> dict[str, Any]:
    return {"id": record_id, "type": kind, "identity": identity, "occurredAt": at, "data": data}


def openid(appid: str, value: str) -> dict[str, Any]:
    return {"kind": "OPENID", "namespace": appid, "value": value}


def app_user(value: str) -> dict[str, Any]:
    return {"kind": "APP_USER_ID", "value": value}


def mp_order(
    record_id: str,
    identity: dict[str, Any],
    *,
    order_id: str,
    status: str = "待支付",
    amount: str = "100元",
    at: str = T0,
) -> dict[str, Any]:
    data = {
        "orderId": order_id,
        "status": status,
        "amount": amount,
        "items": [{"sku": "A1", "name": "拿铁", "qty": 2, "price": "50元"}],
    }
    return envelope(record_id, "order", identity, data, at=at)


def app_order(
    record_id: str,
    identity: dict[str, Any],
    *,
    order_no: str,
    status: int = 1,
    total_fen: int = 10000,
    at: str = T0,
) -> dict[str, Any]:
    data = {
        "order_no": order_no,
        "status": status,
        "total_fen": total_fen,
        "items": [{"sku": "A1", "quantity": 2, "price_fen": total_fen // 2}],
    }
    return envelope(record_id, "order", identity, data, at=at)


def cart(
    record_id: str, identity: dict[str, Any], *, sku: str, quantity: int, at: str = T0
) -> dict[str, Any]:
    return envelope(record_id, "cart", identity, {"sku": sku, "quantity": quantity}, at=at)


def event(
    record_id: str,
    identity: dict[str, Any],
    *,
    name: str,
    properties: dict[str, Any] | None = None,
    at: str = T0,
) -> dict[str, Any]:
    data: dict[str, Any] = {"event": name}
    if properties is not None:
        data["properties"] = properties
    return envelope(record_id, "event", identity, data, at=at)


async def ingest(
    client: httpx.AsyncClient, key: str, channel: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """POST a JSON array; asserts 200 and returns the report."""
    response = await client.post(
        f"/ingest/{channel}", json=records, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def mp_reservation(
    record_id: str,
    identity: dict[str, Any],
    *,
    reservation_id: str,
    service: str = "儿童摄影",
    status: str = "已预约",
    starts_at: str | None = "2026-12-01T15:00:00+08:00",
    at: str = T0,
) -> dict[str, Any]:
    data: dict[str, Any] = {"reservationId": reservation_id, "service": service, "status": status}
    if starts_at is not None:
        data["startsAt"] = starts_at
    return envelope(record_id, "reservation", identity, data, at=at)


def app_reservation(
    record_id: str,
    identity: dict[str, Any],
    *,
    reservation_no: str,
    service_name: str = "少儿编程体验课",
    status: int = 0,
    starts_at: str | None = None,
    at: str = T0,
) -> dict[str, Any]:
    data: dict[str, Any] = {"reservation_no": reservation_no, "service_name": service_name, "status": status}
    if starts_at is not None:
        data["starts_at"] = starts_at
    return envelope(record_id, "reservation", identity, data, at=at)
