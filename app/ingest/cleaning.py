"""The data dictionary's cleaning rules for single values: text, counts, amounts; each names its field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.ingest.records import RecordRejected

ID_MAX_LENGTH = 128
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
CURRENCY = re.compile(r"[A-Za-z]{3}")
# PostgreSQL text cannot hold NUL: refused per record, so it cannot fail a whole batch's write.
NUL = "\x00"
NUL_REASON = "contains a NUL character (\\u0000)"


@dataclass(frozen=True, slots=True)
class Unit:
    """A money unit's cleaning rules, as declared under `units`."""

    name: str
    cents_per_unit: int
    max_decimals: int
    text: bool
    marks: tuple[str, ...]
    separator: str | None


def show(value: object) -> str:
    """Quote a native value for a reason without flooding it."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def need(obj: dict[str, Any], native: str, prefix: str) -> tuple[object, str]:
    """A present (non-null) native value and its path, so every reason names the field."""
    where = f"{prefix}.{native}" if prefix else native
    if obj.get(native) is None:
        raise RecordRejected(where, "missing")
    return obj[native], where


def text(value: object, where: str, max_length: int | None = ID_MAX_LENGTH) -> str:
    """A non-empty native string (integers are accepted as their digits); never normalized."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RecordRejected(where, f"expected a non-empty string, got {show(value)}")
    if max_length is not None and len(value) > max_length:
        raise RecordRejected(where, f"longer than {max_length} characters")
    if NUL in value:
        raise RecordRejected(where, NUL_REASON)
    return value


def count(value: object, where: str, minimum: int) -> int:
    """An integer quantity of at least `minimum` (booleans and floats are not quantities)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RecordRejected(where, f"expected an integer >= {minimum}, got {show(value)}")
    return value


def cents(value: object, where: str, unit: Unit) -> int:
    """Clean an amount to integer cents with Decimal (floats via their text), never rounding."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = Decimal(str(value))
    elif isinstance(value, str) and unit.text:
        number = clean_text(value, unit, where)
    else:
        raise RecordRejected(where, f"expected an amount in {unit.name}, got {show(value)}")
    exponent = number.as_tuple().exponent
    if not isinstance(exponent, int):
        raise RecordRejected(where, f"not a finite amount: {show(value)}")
    if number < 0:
        raise RecordRejected(where, f"negative amount {show(value)}")
    if -exponent > unit.max_decimals:
        reason = f"more than {unit.max_decimals} decimal places in {unit.name} amount {show(value)}"
        raise RecordRejected(where, reason)
    return int(number * unit.cents_per_unit)


def clean_text(value: str, unit: Unit, where: str) -> Decimal:
    """Apply a unit's text rules: drop currency marks, check thousands groups, read the digits."""
    text = value
    for mark in unit.marks:
        text = text.replace(mark, "")
    text = text.strip()
    if not text:
        raise RecordRejected(where, f"empty amount {show(value)}")
    if text.startswith("-"):
        raise RecordRejected(where, f"negative amount {show(value)}")
    sep = unit.separator
    if sep and sep in text:
        if not re.fullmatch(rf"\d{{1,3}}(?:{re.escape(sep)}\d{{3}})+(?:\.\d+)?", text):
            raise RecordRejected(where, f"misplaced thousands separator in {show(value)}")
        text = text.replace(sep, "")
    if not _NUMBER.fullmatch(text):
        raise RecordRejected(where, f"not an amount in {unit.name}: {show(value)}")
    return Decimal(text)
