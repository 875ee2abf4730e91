"""`troika import` ingests an NDJSON file through the same path; `troika deadletters` lists refusals."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from tests.factories.channel_data import app_order, app_user, cart


def test_import_and_list_dead_letters(cli_env: str, tmp_path: Path) -> None:
    records = [
        app_order("i1", app_user("U-i"), order_no="A-i"),
        cart("i2", app_user("U-i"), sku="S", quantity=-1),
        app_order("i1", app_user("U-i"), order_no="A-i"),
    ]
    path = tmp_path / "app.ndjson"
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    deep = b"[" * 1100 + b"]" * 1100  # too deep to read
    order = json.dumps(app_order("i5", app_user("U-i"), order_no="A-5")).encode()
    bad_utf8 = order.replace(b"A-5", b"A-\xff")
    path.write_bytes(b"\n".join([*lines, b"oops", deep, bad_utf8]) + b"\n")
    runner = CliRunner()
    result = runner.invoke(main, ["import", "--channel", "APP", "--batch-size", "2", str(path)])
    assert result.exit_code == 1, result.output  # records were rejected: a script notices
    summary = result.stdout
    assert "accepted" in summary
    assert "rejected i2: data.quantity" in summary
    assert "line 4 is not JSON" in summary
    assert "nests deeper than 254 levels" in summary
    assert "line 6 is not UTF-8 (byte 0xff" in summary
    # The replay of i1 in a later batch is a duplicate: 1 accepted, 1 duplicate, 4 rejected.
    assert "│        1 │         1 │        4 │" in summary
    listed = runner.invoke(main, ["deadletters", "--channel", "APP", "--json"])
    assert listed.exit_code == 0, listed.output
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted((d["id"] or "", d["reason"].split(":")[0]) for d in letters) == [
        ("", "record"),
        ("", "record"),
        ("", "record"),
        ("i2", "data.quantity"),
    ]
    assert any('"A-\\xff"' in d["payload"] for d in letters)  # the bad byte, kept visibly
    table = runner.invoke(main, ["deadletters"])
    assert "data.quantity" in table.stdout


def test_a_clean_file_exits_0(cli_env: str, tmp_path: Path) -> None:
    path = tmp_path / "clean.ndjson"
    path.write_text(json.dumps(app_order("c1", app_user("U-c"), order_no="A-c")) + "\n")
    result = CliRunner().invoke(main, ["import", "--channel", "APP", str(path)])
    assert result.exit_code == 0, result.output
