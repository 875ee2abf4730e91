"""Unit tests for the data dictionary: the shipped shapes parse, and every problem names its field."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain import Channel
from app.ingest.dictionary import DEFAULT_PATH, load_dictionary
from app.ingest.records import RecordRejected, StdCart, StdEvent, StdOrder, StdOrderItem

DICTIONARY = load_dictionary()
MP_ORDER: dict[str, Any] = {
    "orderId": "MP1001",
    "status": "待支付",
    "amount": "100元",
    "items": [{"sku": "A1", "name": "拿铁", "qty": 2, "price": "50元"}],
}
APP_ORDER: dict[str, Any] = {
    "order_no": "A-9",
    "status": 1,
    "total_fen": 10000,
    "items": [{"sku": "A1", "quantity": 2, "price_fen": 5000}],
}


def envelope(type_: str, data: Any, /, **overrides: Any) -> dict[str, Any]:
    """A valid envelope around `data`, with top-level keys overridden (None removes one)."""
    record: dict[str, Any] = {
        "id": "src-1",
        "type": type_,
        "identity": {"kind": "PHONE", "value": "13800138000"},
        "occurredAt": "2026-11-25T10:00:00+08:00",
        "data": data,
    }
    record.update(overrides)
    return {key: value for key, value in record.items() if value is not None}


def rejected(channel: Channel, record: object) -> RecordRejected:
    """Parse a record that must be rejected and return the rejection."""
    with pytest.raises(RecordRejected) as caught:
        DICTIONARY.parse(channel, record)
    return caught.value


def order(channel: Channel, data: dict[str, Any]) -> StdOrder:
    """Parse an order's native data that must be accepted."""
    payload = DICTIONARY.parse(channel, envelope("order", data)).payload
    assert isinstance(payload, StdOrder)
    return payload


def test_shipped_file_loads() -> None:
    assert DICTIONARY.version == DICTIONARY.document["version"] == "2026-12-04.2"
    names = ["PENDING_PAYMENT", "PAID", "SHIPPED", "COMPLETED", "CANCELLED"]
    assert DICTIONARY.status_names == dict(enumerate(names))


def test_mini_program_order() -> None:
    raw = envelope("order", MP_ORDER)
    record = DICTIONARY.parse(Channel.MINI_PROGRAM, raw)
    assert record.channel is Channel.MINI_PROGRAM
    assert (record.source_id, record.type, record.raw) == ("src-1", "order", raw)
    assert record.identity_kind == "PHONE"
    assert (record.identity_value, record.identity_namespace) == ("13800138000", None)
    assert record.payload == StdOrder(
        order_id="MP1001",
        status_code=0,
        total_cents=10000,
        currency="CNY",
        items=(StdOrderItem(sku="A1", name="拿铁", quantity=2, unit_price_cents=5000),),
        placed_at=None,
    )


def test_app_order() -> None:
    assert order(Channel.APP, APP_ORDER) == StdOrder(
        order_id="A-9",
        status_code=1,
        total_cents=10000,
        currency="CNY",
        items=(StdOrderItem(sku="A1", name=None, quantity=2, unit_price_cents=5000),),
    )


def test_official_account_order_and_optional_fields() -> None:
    data = {**MP_ORDER, "status": "已完成", "currency": "usd", "createdAt": "2026-11-24T09:30:00"}
    parsed = order(Channel.OFFICIAL_ACCOUNT, data)
    assert (parsed.status_code, parsed.currency) == (3, "USD")
    assert parsed.placed_at == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("native", "code"), [("待支付", 0), ("已支付", 1), ("已发货", 2), ("已完成", 3), ("已取消", 4)]
)
def test_mini_program_status_map(native: str, code: int) -> None:
    assert order(Channel.MINI_PROGRAM, {**MP_ORDER, "status": native}).status_code == code


@pytest.mark.parametrize(("native", "code"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), ("1", 1), ("4", 4)])
def test_app_status_codes(native: object, code: int) -> None:
    assert order(Channel.APP, {**APP_ORDER, "status": native}).status_code == code


@pytest.mark.parametrize(
    ("channel", "data"),
    [
        (Channel.MINI_PROGRAM, {**MP_ORDER, "status": "已退款"}),
        (Channel.MINI_PROGRAM, {**MP_ORDER, "status": 1}),
        (Channel.APP, {**APP_ORDER, "status": 5}),
        (Channel.APP, {**APP_ORDER, "status": True}),
        (Channel.APP, {**APP_ORDER, "status": "PAID"}),
    ],
)
def test_unknown_status_rejected(channel: Channel, data: dict[str, Any]) -> None:
    error = rejected(channel, envelope("order", data))
    assert error.field == "data.status"
    assert "unknown status" in error.reason


def test_unknown_status_reason_lists_known_values() -> None:
    error = rejected(Channel.MINI_PROGRAM, envelope("order", {**MP_ORDER, "status": "已退款"}))
    assert error.reason.startswith("unknown status '已退款' for MINI_PROGRAM orders (known: 待支付, 已支付")


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("100元", 10000),
        ("¥100.00", 10000),
        ("￥100.00", 10000),
        ("100.50", 10050),
        ("100.5", 10050),
        (" 1,234.50 元 ", 123450),
        (100, 10000),
        (100.5, 10050),
        (Decimal("100.5"), 10050),
        (0.1, 10),
        ("0", 0),
    ],
)
def test_yuan_amounts(amount: object, cents: int) -> None:
    assert order(Channel.MINI_PROGRAM, {**MP_ORDER, "amount": amount}).total_cents == cents


@pytest.mark.parametrize(
    "amount", ["abc", "100.505", -1, True, "", "  元 ", "-5", "1,23.00", "1e3", 0.1 + 0.2, [100], {}]
)
def test_bad_yuan_amounts_rejected(amount: object) -> None:
    error = rejected(Channel.MINI_PROGRAM, envelope("order", {**MP_ORDER, "amount": amount}))
    assert error.field == "data.amount"


@pytest.mark.parametrize(("amount", "cents"), [(10000, 10000), ("10000", 10000), (0, 0)])
def test_fen_amounts(amount: object, cents: int) -> None:
    assert order(Channel.APP, {**APP_ORDER, "total_fen": amount}).total_cents == cents


@pytest.mark.parametrize("amount", [100.5, 100.0, "100.5", "¥100", "1,000", -1, False])
def test_bad_fen_amounts_rejected(amount: object) -> None:
    assert (
        rejected(Channel.APP, envelope("order", {**APP_ORDER, "total_fen": amount})).field == "data.total_fen"
    )


def test_missing_amount_rejected() -> None:
    data = {key: value for key, value in MP_ORDER.items() if key != "amount"}
    error = rejected(Channel.MINI_PROGRAM, envelope("order", data))
    assert (error.field, error.reason) == ("data.amount", "missing")


@pytest.mark.parametrize("qty", [0, -1, 1.5, "2", True, None])
def test_bad_item_quantity_rejected(qty: object) -> None:
    data = {**MP_ORDER, "items": [{"sku": "A1", "qty": qty, "price": "50元"}]}
    assert rejected(Channel.MINI_PROGRAM, envelope("order", data)).field == "data.items[0].qty"


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ("A1", "data.items"),
        (None, "data.items"),
        ([{"sku": "A1", "qty": 1, "price": "1元"}, "A2"], "data.items[1]"),
        ([{"sku": "", "qty": 1, "price": "1元"}], "data.items[0].sku"),
        ([{"sku": "A1", "qty": 1, "price": "1.001"}], "data.items[0].price"),
        ([{"sku": "A1", "qty": 1, "price": "1", "name": 7}], "data.items[0].name"),
    ],
)
def test_bad_items_rejected(items: object, field: str) -> None:
    assert rejected(Channel.MINI_PROGRAM, envelope("order", {**MP_ORDER, "items": items})).field == field


def test_empty_items_accepted() -> None:
    assert order(Channel.APP, {**APP_ORDER, "items": []}).items == ()


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        ("2026-11-25T10:00:00+08:00", datetime(2026, 11, 25, 2, 0, tzinfo=UTC)),
        ("2026-11-25T02:00:00Z", datetime(2026, 11, 25, 2, 0, tzinfo=UTC)),
        ("2026-11-25T10:00:00", datetime(2026, 11, 25, 2, 0, tzinfo=UTC)),
        ("2026-11-25T05:00:00.250-05:00", datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_occurred_at_converted_to_utc(occurred_at: str, expected: datetime) -> None:
    record = DICTIONARY.parse(Channel.APP, envelope("order", APP_ORDER, occurredAt=occurred_at))
    assert record.occurred_at == expected
    assert record.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": None}, "id"),
        ({"id": ""}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"type": None}, "type"),
        ({"type": "refund"}, "type"),
        ({"identity": None}, "identity"),
        ({"identity": {"kind": "EMAIL", "value": "a@b.c"}}, "identity.kind"),
        ({"identity": {"kind": "PHONE", "value": ""}}, "identity.value"),
        ({"identity": {"kind": "OPENID", "value": "o1", "namespace": 3}}, "identity.namespace"),
        ({"occurredAt": None}, "occurredAt"),
        ({"occurredAt": "yesterday"}, "occurredAt"),
        ({"data": None}, "data"),
        ({"data": ["not", "an", "object"]}, "data"),
    ],
)
def test_bad_envelope_rejected(overrides: dict[str, Any], field: str) -> None:
    assert rejected(Channel.APP, envelope("order", APP_ORDER, **overrides)).field == field


@pytest.mark.parametrize("record", [None, [], "order", 42])
def test_non_object_record_rejected(record: object) -> None:
    assert rejected(Channel.APP, record).field == "record"


def test_integer_id_and_namespace_accepted() -> None:
    identity = {"kind": "OPENID", "value": "o-123", "namespace": "wx-mini"}
    record = DICTIONARY.parse(Channel.MINI_PROGRAM, envelope("order", MP_ORDER, id=42, identity=identity))
    assert (record.source_id, record.identity_kind, record.identity_namespace) == ("42", "OPENID", "wx-mini")


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize("quantity", [0, 2])
def test_cart(channel: Channel, quantity: int) -> None:
    record = DICTIONARY.parse(channel, envelope("cart", {"sku": "A1", "quantity": quantity}))
    assert record.payload == StdCart(sku="A1", quantity=quantity)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"sku": "A1", "quantity": -1}, "data.quantity"),
        ({"sku": "A1"}, "data.quantity"),
        ({"sku": "", "quantity": 1}, "data.sku"),
    ],
)
def test_bad_cart_rejected(data: dict[str, Any], field: str) -> None:
    assert rejected(Channel.APP, envelope("cart", data)).field == field


@pytest.mark.parametrize("channel", list(Channel))
def test_event_with_properties(channel: Channel) -> None:
    data = {"event": "article_read", "properties": {"tags": ["母婴知识"]}}
    record = DICTIONARY.parse(channel, envelope("event", data))
    assert record.payload == StdEvent(type="article_read", properties={"tags": ["母婴知识"]})


@pytest.mark.parametrize("name", ["page_view", "mystery_event"])
def test_event_without_properties(name: str) -> None:
    record = DICTIONARY.parse(Channel.APP, envelope("event", {"event": name}))
    assert record.payload == StdEvent(type=name, properties={})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"event": ""}, "data.event"),
        ({}, "data.event"),
        ({"event": "click", "properties": [1]}, "data.properties"),
    ],
)
def test_bad_event_rejected(data: dict[str, Any], field: str) -> None:
    assert rejected(Channel.OFFICIAL_ACCOUNT, envelope("event", data)).field == field


@pytest.mark.parametrize(
    ("event_type", "properties", "expected"),
    [
        ("article_read", {"tags": ["母婴知识", "育儿"]}, [("母婴知识", 1.0), ("育儿", 1.0)]),
        ("article_read", {"tags": "母婴知识"}, [("母婴知识", 1.0)]),
        ("reservation", {"service": "产后修复"}, [("产后修复", 3.0)]),
        ("favorite", {"tags": ["咖啡", "咖啡", 7, ""]}, [("咖啡", 2.0)]),
        ("purchase", {"category": "咖啡"}, [("咖啡", 3.0)]),
        ("page_view", {"tags": ["咖啡"]}, [("咖啡", 0.5)]),
        ("article_read", {}, []),
        # `tags` feed the interests for every event type (the "*" rule), a type's own rule first.
        ("share", {"tags": ["咖啡"]}, [("咖啡", 0.5)]),
        ("reservation", {"service": "儿童摄影", "tags": ["母婴"]}, [("儿童摄影", 3.0), ("母婴", 0.5)]),
        ("share", {"category": "咖啡"}, []),
    ],
)
def test_interest_tags(
    event_type: str, properties: dict[str, Any], expected: list[tuple[str, float]]
) -> None:
    assert DICTIONARY.interest_tags(event_type, properties) == expected


def test_document_is_json_serializable() -> None:
    assert json.loads(json.dumps(DICTIONARY.document))["channels"]["APP"]["order"]["shape"] == "order"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "top level"),
        ("version: '1'\n", "default_timezone"),
        ("just a string", "top level"),
        ("", "top level"),
    ],
)
def test_malformed_file_raises_value_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dictionary.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_dictionary(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("unit: yuan } #", "unit: pounds } #", "unknown unit 'pounds'"),
        ("已取消: 4", "已取消: 9", "not a code in status_names"),
        ("shape: cart", "shape: basket", "shape"),
        ("default_timezone: Asia/Shanghai", "default_timezone: Mars/Olympus", "unknown time zone"),
        ('version: "2026-12-04.2"', "version: 2026-12-04", "plain JSON"),
        ("未到店: 4", "未到店: 9", "not a code in reservation_status_names"),
        ("reservation_id: reservation_no", "booking: reservation_no", "unknown standard fields"),
        ("        order_id: order_no\n", "", "missing standard fields"),
        ("  APP:\n", "  WEB:\n", "unknown channel 'WEB'"),
    ],
)
def test_structural_mistakes_rejected(tmp_path: Path, old: str, new: str, message: str) -> None:
    source = DEFAULT_PATH.read_text(encoding="utf-8")
    assert old in source
    path = tmp_path / "dictionary.yaml"
    path.write_text(source.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_dictionary(path)


ODD_VALUES: tuple[Any, ...] = (
    None,
    "",
    "  ",
    0,
    -1,
    3,
    1.5,
    2.505,
    True,
    "x" * 200,
    [],
    {},
    "abc",
    "12",
    "2026-13-01",
    "2026-11-25T10:00:00",
    "¥1,000.00",
    "1,00",
    "100元",
    10**20,
    float("nan"),
    "已支付",
    " 1 ",
    "S\x00",
    "usd",
)
SAMPLES: tuple[tuple[Channel, dict[str, Any]], ...] = (
    (Channel.MINI_PROGRAM, envelope("order", {**MP_ORDER, "currency": "cny", "createdAt": "2026-11-20"})),
    (Channel.OFFICIAL_ACCOUNT, envelope("order", MP_ORDER)),
    (Channel.APP, envelope("order", APP_ORDER, identity={"kind": "APP_USER_ID", "value": "U-1"})),
    (Channel.APP, envelope("cart", {"sku": "S1", "quantity": 0})),
    (Channel.MINI_PROGRAM, envelope("event", {"event": "click", "properties": {"tags": ["tea"]}})),
    (Channel.APP, envelope("event", {"event": "page_view"}, identity={"kind": "OPENID", "namespace": "wx"})),
)


def _mutate(rng: random.Random, node: Any) -> Any:
    """A copy of `node` with one leaf replaced by an odd value, or one key dropped."""
    if isinstance(node, dict) and node and rng.random() < 0.8:
        key = rng.choice(list(node))
        copy = dict(node)
        if rng.random() < 0.15:
            del copy[key]
        else:
            copy[key] = _mutate(rng, node[key])
        return copy
    if isinstance(node, list) and node and rng.random() < 0.8:
        i = rng.randrange(len(node))
        return [*node[:i], _mutate(rng, node[i]), *node[i + 1 :]]
    return rng.choice(ODD_VALUES)


def _outcome(parse: Any, channel: Channel, record: Any) -> Any:
    try:
        return parse(channel, record)
    except RecordRejected as exc:
        return str(exc)


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_path_answers_exactly_as_the_careful_parse(seed: int) -> None:
    """parse takes well-formed records a lean way; on any record it must agree with parse_checked."""
    rng = random.Random(seed)
    accepted = 0
    for n in range(2500):
        channel, record = rng.choice(SAMPLES)
        for _ in range(n % 4):  # a quarter of the records stay as they are
            record = _mutate(rng, record)
        fast, careful = (
            _outcome(DICTIONARY.parse, channel, record),
            _outcome(DICTIONARY.parse_checked, channel, record),
        )
        assert fast == careful, record
        accepted += not isinstance(careful, str)
    assert accepted > 500  # the valid ones were exercised too, not only rejections
