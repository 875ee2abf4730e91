"""One committed change of the outbox: which user, which topic, at which cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ChangeRow:
    cursor: int
    user_id: int
    topic: str
    at: datetime
