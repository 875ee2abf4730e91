"""mask_phone is memoised: the same answers as the parse it saves, for odd input too."""

from __future__ import annotations

import pytest

from app.phones import mask_phone

CASES = [
    ("+8613812345678", "138****5678"),
    ("+8617912345678", "179****5678"),  # 179… is also a carrier-code prefix in CN's metadata
    ("+861012345678", "101****5678"),
    ("+8612345", "12*45"),
    ("+86 138 1234 5678", "138****5678"),
    ("+14155552671", "+1 415****2671"),
    ("+442079460018", "+44 207****0018"),
    ("+390612345678", "+39 612****5678"),  # the Italian leading zero is not in the national number
    ("+85291234567", "+852 912****4567"),
    ("+999123456789", "999****6789"),  # no such country code: masked as digits
    ("8613812345678", "861****5678"),  # no "+": not parsed
    ("+12", "12*12"),
    ("+", "*"),
    ("", "*"),
    ("abc", "ab*bc"),
]


@pytest.mark.parametrize(("raw", "masked"), CASES)
def test_masks_as_before(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked
    assert mask_phone(raw) == masked  # from the memo
    assert mask_phone.__wrapped__(raw) == masked  # and the parse itself agrees


def test_memo_is_bounded() -> None:
    info = mask_phone.cache_info()
    assert info.maxsize is not None
    assert info.maxsize > 0
