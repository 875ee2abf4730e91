"""What cannot be read is one REJECTED record, kept as a dead letter with its reason; its
neighbours are ingested all the same (JSON array and NDJSON). A body with no records at all is a 400,
kept whole."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.channel_models import DeadLetter
from app.domain import Channel
from app.ingest.service import DEAD_LETTER, Ingestor, RecordStatus
from app.sealing import keyring_for
from tests.factories.auth import service_key
from tests.factories.channel_data import app_order, app_user

JSON, NDJSON = "application/json", "application/x-ndjson"


def good(n: int) -> bytes:
    return json.dumps(app_order(f"n{n}", app_user("U-n"), order_no=f"N-{n}")).encode()


def nested(levels: int) -> bytes:
    """A record nesting `levels` deep in its data (orjson reads 1,024 levels and writes 254)."""
    return b'{"id":"deep","type":"order","data":' + b"[" * levels + b"]" * levels + b"}"


async def post(
    client: httpx.AsyncClient, key: str, body: bytes, media: str = "application/json"
) -> httpx.Response:
    return await client.post(
        "/ingest/APP", content=body, headers={"Authorization": f"Bearer {key}", "Content-Type": media}
    )


async def letters(app: FastAPI) -> list[tuple[str | None, str, str]]:
    """(source id, reason, unsealed payload) of each dead letter."""
    keyring = keyring_for(app.state.settings)
    async with app.state.db.read_sessions() as session:
        rows = (await session.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
    return [(r.source_id, r.reason, keyring.unseal(r.payload, purpose=DEAD_LETTER)) for r in rows]


@pytest.mark.parametrize("levels", [300, 1000, 1100, 20_000])
async def test_a_record_too_deep_is_rejected_alone_in_an_array(
    app: FastAPI, client: httpx.AsyncClient, levels: int
) -> None:
    key = await service_key(app, "APP")
    response = await post(client, key, b"[" + b", ".join([good(1), nested(levels), good(2)]) + b"]")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert results[1]["reason"].endswith("nests deeper than 254 levels")
    [(_, reason, payload)] = await letters(app)
    assert reason == results[1]["reason"]
    assert payload.replace(" ", "") == nested(levels).decode()  # kept as it came


@pytest.mark.parametrize("levels", [300, 1000, 1100, 20_000])
async def test_a_line_too_deep_is_rejected_alone_in_ndjson(
    app: FastAPI, client: httpx.AsyncClient, levels: int
) -> None:
    key = await service_key(app, "APP")
    response = await post(client, key, b"\n".join([good(1), nested(levels), good(2)]), NDJSON)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert results[1]["reason"].endswith("nests deeper than 254 levels")
    [(_, _, payload)] = await letters(app)
    assert payload.replace(" ", "") == nested(levels).decode()  # kept, however deep


@pytest.mark.parametrize(("levels", "source_id"), [(1000, "deep"), (1100, "")])
async def test_one_record_too_deep_as_the_whole_body(
    app: FastAPI, client: httpx.AsyncClient, levels: int, source_id: str
) -> None:
    """Read but too deep to write (its id known), or too deep to read at all."""
    key = await service_key(app, "APP")
    response = await post(client, key, nested(levels))
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (result["id"], result["status"]) == (source_id, "REJECTED")
    assert result["reason"].endswith("nests deeper than 254 levels")


async def test_a_body_of_brackets_is_a_400_kept(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await service_key(app, "APP")
    response = await post(client, key, b"[" * 20_000)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("the body nests deeper than 254 levels")
    assert len(await letters(app)) == 1


async def test_invalid_utf8_in_a_json_body_is_refused_and_kept(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    body = b"[" + good(1) + b", " + good(2).replace(b"N-2", b"N-\xff") + b"]"
    response = await post(client, key, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST"
    assert error["message"].startswith("the body is not UTF-8 (byte 0xff at offset")
    assert error["message"].endswith("it was kept as a dead letter")
    [(_, reason, payload)] = await letters(app)
    assert reason.startswith("record: the body is not UTF-8")
    assert '"N-\\xff"' in payload  # the bad byte shown, not replaced by U+FFFD


async def test_invalid_utf8_in_an_ndjson_line_rejects_that_line(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    body = b"\r\n".join([good(1), good(2).replace(b"N-2", b"N-\xe4\xb8"), good(3)])
    response = await post(client, key, body, NDJSON)
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert results[1]["reason"].startswith("record: line 2 is not UTF-8 (byte 0xe4 at offset")


async def test_ndjson_lines_end_only_at_newlines(app: FastAPI, client: httpx.AsyncClient) -> None:
    """U+2028 and U+0085 may stand in JSON text as they are: they end no line."""
    key = await service_key(app, "APP")
    record = app_order("ls", app_user("U-ls"), order_no="L\u2028S\u0085")
    body = json.dumps(record, ensure_ascii=False).encode() + b"\n" + good(1)
    response = await post(client, key, body, NDJSON)
    assert response.json()["accepted"] == 2, response.text


async def test_the_ingestor_rejects_what_the_codecs_cannot_write(app: FastAPI) -> None:
    """Records that arrive parsed (not through these parsers) are checked where they are written."""
    data: list[object] = []
    inner = data
    for _ in range(300):  # orjson writes 254 levels
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    deep = {**json.loads(good(7)), "id": "deep"}
    deep["data"] = {**deep["data"], "extra": data}
    ingestor = Ingestor(app.state.db, app.state.dictionary, app.state.settings)
    report = await ingestor.ingest(Channel.APP, [json.loads(good(6)), deep], actor="test")
    assert [(r.status, r.reason) for r in report.results] == [
        (RecordStatus.ACCEPTED, None),
        (RecordStatus.REJECTED, "record: nests deeper than 254 levels"),
    ]
    assert [source for source, _, _ in await letters(app)] == ["deep"]
