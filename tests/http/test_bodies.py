"""Reading a GraphQL body: the check for long digit runs (whose integers orjson would read as floats)
decides as its regular expression does, whatever the text."""

from __future__ import annotations

import random

import pytest

from app.http.bodies import _LONG_DIGITS, _long_digits, parse_json


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1" * 18,
        "1" * 19,
        "1" * 10 + "x" + "1" * 10,
        "\u0661" * 19,  # Arabic-Indic digits: \d matches them
        "é" + "1" * 19,
        "é" + "1" * 18,
        '{"query": "{ a }", "variables": {"n": 12345678901234567890}}',
        '{"query": "{ a }", "variables": {"n": 1234567890123456789}}',
    ],
)
def test_long_digits_decides_as_the_expression(text: str) -> None:
    assert _long_digits(text) == (_LONG_DIGITS.search(text) is not None)


def test_long_digits_on_random_texts() -> None:
    rng = random.Random(7)
    alphabet = '0123456789 ,:{}[]"ab\u0663é'
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        assert _long_digits(text) == (_LONG_DIGITS.search(text) is not None), text


def test_a_big_integer_keeps_its_digits() -> None:
    found = parse_json('{"n": 123456789012345678901}', what="the body", max_depth=64)
    assert found == {"n": 123456789012345678901}
