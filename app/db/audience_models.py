"""Hub tables of live audience membership: who is in each saved audience, entries and exits, and
how far the membership follower has read the outbox (app/services/audience_live.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models import Base
from app.db.types import BigId, UTCDateTime


class AudienceMember(Base):
    """One person in one saved audience, kept so size and User.audiences need no evaluation."""

    __tablename__ = "audience_members"
    __table_args__ = (Index("ix_audience_members_user_id", "user_id"),)

    audience_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    since: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AudienceEvent(Base):
    """A member entered or left an audience; audienceChanged reads these after the outbox says so."""

    __tablename__ = "audience_events"
    __table_args__ = (Index("ix_audience_events_audience_id", "audience_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    audience_id: Mapped[int] = mapped_column(BigId, nullable=False)
    user_id: Mapped[int] = mapped_column(BigId, nullable=False)
    entered: Mapped[bool] = mapped_column(Boolean, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class AudienceFollower(Base):
    """One row: the outbox cursor up to which membership has been re-evaluated."""

    __tablename__ = "audience_follower"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cursor: Mapped[int] = mapped_column(BigId, nullable=False)
