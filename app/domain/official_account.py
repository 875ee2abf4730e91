"""The official account's own figures, articles and comments, as read back from its channel store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DayRow:
    date: str
    new_followers: int
    cancelled_followers: int
    cumulative_followers: int
    article_reads: int
    article_shares: int
    messages_received: int


@dataclass(frozen=True, slots=True)
class ArticleRow:
    id: str
    title: str
    published_at: datetime | None
    tags: list[str]
    reads: int
    shares: int
    likes: int


@dataclass(frozen=True, slots=True)
class CommentRow:
    id: str
    article_id: str
    openid: str
    text: str
    at: datetime
    likes: int
