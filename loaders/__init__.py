"""Per-request loaders; build a fresh `Loaders` for every request (and subscription event)."""

from __future__ import annotations

from functools import cached_property, partial
from typing import TYPE_CHECKING

from app.cursors import Position
from app.db.engine import Database
from app.db.shared import SharedReads
from app.domain import Channel
from app.ingest.dictionary import DataDictionary
from app.settings import Settings
from loaders.audit import PiiReadByUserIdLoader
from loaders.channel_data import (
    BehaviorByUserIdLoader,
    CartByUserIdLoader,
    InterestsByUserIdLoader,
    OrdersByUserIdLoader,
    ReservationsByUserIdLoader,
)
from loaders.entitlements import (
    ConsentEntriesByUserIdLoader,
    ConsentsByUserIdLoader,
    MembershipsByUserIdLoader,
    PointsByUserIdLoader,
    RoleGrantsByUserIdLoader,
)
from loaders.identity import (
    IdentitiesByUserIdLoader,
    IdentityEdgesByUserIdLoader,
    MergesByUserIdLoader,
    UserByIdLoader,
)
from loaders.official_account import UserByOpenidLoader
from loaders.portrait import (
    FiguresByUserIdLoader,
    JourneyByUserIdLoader,
    PreferencesByUserIdLoader,
    TraitsByUserIdLoader,
)
from loaders.sessions import Opener

if TYPE_CHECKING:
    from loaders.audiences import AudiencesByUserIdLoader


class Loaders:
    """Created lazily so a request pays only for the relations it reads; one instance per argument set."""

    def __init__(
        self, db: Database, dictionary: DataDictionary, settings: Settings, reads: SharedReads | None = None
    ) -> None:
        self.db = db
        self.dictionary = dictionary
        self.settings = settings
        self.reads = reads or SharedReads(shared=False)
        self.sessions: Opener = partial(self.reads.session, db)
        self._orders: dict[tuple[object, ...], OrdersByUserIdLoader] = {}
        self._behavior: dict[tuple[object, ...], BehaviorByUserIdLoader] = {}
        self._reservations: dict[tuple[object, ...], ReservationsByUserIdLoader] = {}
        self._pii_reads: dict[tuple[str, str], PiiReadByUserIdLoader] = {}
        self._by_openid: dict[str, UserByOpenidLoader] = {}

    def user_by_openid(self, appid: str) -> UserByOpenidLoader:
        found = self._by_openid.get(appid)
        if found is None:
            found = self._by_openid[appid] = UserByOpenidLoader(self.sessions, appid)
        return found

    @cached_property
    def user_by_id(self) -> UserByIdLoader:
        return UserByIdLoader(self.sessions)

    @cached_property
    def identities_by_user_id(self) -> IdentitiesByUserIdLoader:
        return IdentitiesByUserIdLoader(self.sessions)

    @cached_property
    def identity_edges_by_user_id(self) -> IdentityEdgesByUserIdLoader:
        return IdentityEdgesByUserIdLoader(self.sessions)

    @cached_property
    def merges_by_user_id(self) -> MergesByUserIdLoader:
        return MergesByUserIdLoader(self.sessions)

    @cached_property
    def consents_by_user_id(self) -> ConsentsByUserIdLoader:
        return ConsentsByUserIdLoader(self.sessions)

    @cached_property
    def consent_entries_by_user_id(self) -> ConsentEntriesByUserIdLoader:
        return ConsentEntriesByUserIdLoader(self.sessions)

    @cached_property
    def memberships_by_user_id(self) -> MembershipsByUserIdLoader:
        return MembershipsByUserIdLoader(self.sessions)

    @cached_property
    def points_by_user_id(self) -> PointsByUserIdLoader:
        return PointsByUserIdLoader(self.sessions)

    @cached_property
    def role_grants_by_user_id(self) -> RoleGrantsByUserIdLoader:
        return RoleGrantsByUserIdLoader(self.sessions)

    @cached_property
    def cart_by_user_id(self) -> CartByUserIdLoader:
        return CartByUserIdLoader(self.db, self.identities_by_user_id, self.reads)

    @cached_property
    def interests_by_user_id(self) -> InterestsByUserIdLoader:
        return InterestsByUserIdLoader(self.db, self.identities_by_user_id, self.dictionary, self.reads)

    @cached_property
    def preferences_by_user_id(self) -> PreferencesByUserIdLoader:
        return PreferencesByUserIdLoader(self.db, self.identities_by_user_id, self.dictionary, self.reads)

    @cached_property
    def figures_by_user_id(self) -> FiguresByUserIdLoader:
        return FiguresByUserIdLoader(self.db, self.identities_by_user_id, self.dictionary, self.reads)

    @cached_property
    def traits_by_user_id(self) -> TraitsByUserIdLoader:
        return TraitsByUserIdLoader(self.figures_by_user_id)

    @cached_property
    def journey_by_user_id(self) -> JourneyByUserIdLoader:
        return JourneyByUserIdLoader(self.figures_by_user_id, self.identities_by_user_id, self.settings)

    @cached_property
    def audiences_by_user_id(self) -> AudiencesByUserIdLoader:
        # Imported here: audience evaluation (a service) itself weighs interests with loaders.
        from loaders.audiences import AudiencesByUserIdLoader

        return AudiencesByUserIdLoader(self.db, self.dictionary, self.settings)

    def pii_read_by_user_id(self, actor: str, trace_id: str) -> PiiReadByUserIdLoader:
        """The audit of this request's PII reveals (by whom, in which request)."""
        key = (actor, trace_id)
        if key not in self._pii_reads:
            self._pii_reads[key] = PiiReadByUserIdLoader(
                self.db, actor=actor, trace_id=trace_id, reads=self.reads
            )
        return self._pii_reads[key]

    def orders_by_user_id(
        self, *, channel: Channel | None, status_code: int | None, first: int, before: Position | None
    ) -> OrdersByUserIdLoader:
        key = (channel, status_code, first, before)
        if key not in self._orders:
            self._orders[key] = OrdersByUserIdLoader(
                self.db,
                self.identities_by_user_id,
                channel=channel,
                status_code=status_code,
                first=first,
                before=before,
                reads=self.reads,
            )
        return self._orders[key]

    def behavior_by_user_id(
        self, *, channel: Channel | None, types: tuple[str, ...] | None, first: int, before: Position | None
    ) -> BehaviorByUserIdLoader:
        key = (channel, types, first, before)
        if key not in self._behavior:
            self._behavior[key] = BehaviorByUserIdLoader(
                self.db,
                self.identities_by_user_id,
                channel=channel,
                types=types,
                first=first,
                before=before,
                reads=self.reads,
            )
        return self._behavior[key]

    def reservations_by_user_id(
        self, *, status_code: int | None, first: int, before: Position | None
    ) -> ReservationsByUserIdLoader:
        key = (status_code, first, before)
        if key not in self._reservations:
            self._reservations[key] = ReservationsByUserIdLoader(
                self.db,
                self.identities_by_user_id,
                status_code=status_code,
                first=first,
                before=before,
                reads=self.reads,
            )
        return self._reservations[key]
