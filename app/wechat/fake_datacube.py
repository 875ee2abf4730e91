"""The fake WeChat's official-account data: datacube figures, articles and their comments.

Figures are derived from the date (and article), so any date gives the same plausible numbers on
every run. WeChat's limits hold: data up to yesterday (Beijing time), at most 7 days a call for
user and message figures, 1 day for article figures; `comment/list` counts articles in a message
from 0 and refuses `count` of 50 or more. Followers alice, bob and carol comment (alice on every
article).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from starlette.routing import Route

    from app.wechat.fake import FakeWeChat

BEIJING = ZoneInfo("Asia/Shanghai")
# msg_data_id -> (publish date, titles of its articles in order)
MESSAGES: dict[int, tuple[str, list[str]]] = {
    2247483650: ("2026-11-20", ["Winter menu", "Opening hours over the holidays"]),
    2247483651: ("2026-11-27", ["Member day: double points"]),
}
# (msg_data_id, index from 0) -> who comments, oldest first
COMMENTERS: dict[tuple[int, int], list[str]] = {
    (2247483650, 0): ["alice", "bob"],
    (2247483650, 1): ["alice"],
    (2247483651, 0): ["carol", "alice"],
}
SPANS = {"getusersummary": 7, "getusercumulate": 7, "getupstreammsg": 7, "getarticlesummary": 1}
SPANS["getarticletotaldetail"] = 1
Handler = Callable[[dict[str, str], Any], dict[str, Any]]


def figure(*parts: object, low: int, high: int) -> int:
    """A number in [low, high) that the same parts always give."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return low + int.from_bytes(digest[:4], "big") % (high - low)


def cumulative(day: date) -> int:
    """Followers at the end of `day`: grows by each day's net gain from a base."""
    return 1000 + (day - date(2024, 1, 1)).days * 3


def articles() -> list[tuple[int, int, str, str]]:
    """(msg_data_id, index from 0, title, publish date) of every article."""
    return [(mid, i, t, pub) for mid, (pub, titles) in MESSAGES.items() for i, t in enumerate(titles)]


class FakeDataCube:
    """The endpoints, over a FakeWeChat's tokens, people and failure switches."""

    def __init__(self, fake: FakeWeChat) -> None:
        self.fake = fake

    def routes(self, route: Callable[[str, Handler, str], Route]) -> list[Route]:
        found = [route(f"/datacube/{name}", self._datacube(name), "POST") for name in SPANS]
        return [*found, route("/cgi-bin/comment/list", self._comments, "POST")]

    def _range(self, name: str, body: Any) -> list[date] | dict[str, Any]:
        try:
            begin = date.fromisoformat(str(body["begin_date"]))
            end = date.fromisoformat(str(body["end_date"]))
        except (KeyError, TypeError, ValueError):
            return self.fake._error(61500, "date format error")
        yesterday = datetime.now(BEIJING).date() - timedelta(days=1)
        if end < begin or end > yesterday or (end - begin).days + 1 > SPANS[name]:
            return self.fake._error(61501, "date range error")
        return [begin + timedelta(days=n) for n in range((end - begin).days + 1)]

    def _datacube(self, name: str) -> Handler:
        def handler(params: dict[str, str], body: Any) -> dict[str, Any]:
            if self.fake._authorized(params) is None:
                return self.fake._error(40001, "invalid credential, access_token is invalid or not latest")
            days = self._range(name, body or {})
            if isinstance(days, dict):
                return days
            with self.fake.lock:
                key = f"{name}:{days[0].isoformat()}"
                if self.fake.datacube_failures[key] > 0:
                    self.fake.datacube_failures[key] -= 1
                    return self.fake._error(-1, "system error")
            return {"list": [row for day in days for row in getattr(self, "_" + name)(day)]}

        return handler

    @staticmethod
    def _getusersummary(day: date) -> list[dict[str, Any]]:
        d = day.isoformat()
        return [
            {
                "ref_date": d,
                "user_source": source,
                "new_user": figure(d, source, "new", low=0, high=20),
                "cancel_user": figure(d, source, "cancel", low=0, high=6),
            }
            for source in (0, 30)
        ]

    @staticmethod
    def _getusercumulate(day: date) -> list[dict[str, Any]]:
        return [{"ref_date": day.isoformat(), "user_source": 0, "cumulate_user": cumulative(day)}]

    @staticmethod
    def _getupstreammsg(day: date) -> list[dict[str, Any]]:
        d = day.isoformat()
        return [
            {
                "ref_date": d,
                "msg_type": kind,
                "msg_user": figure(d, kind, "user", low=1, high=10),
                "msg_count": figure(d, kind, "count", low=10, high=30),
            }
            for kind in (1, 2)
        ]

    @staticmethod
    def _getarticlesummary(day: date) -> list[dict[str, Any]]:
        d = day.isoformat()
        rows = []
        for mid, index, title, _published in articles():
            msgid = f"{mid}_{index + 1}"
            reads = figure(d, msgid, "reads", low=20, high=200)
            rows.append(
                {
                    "ref_date": d,
                    "msgid": msgid,
                    "title": title,
                    "int_page_read_user": reads - 5,
                    "int_page_read_count": reads,
                    "ori_page_read_user": 0,
                    "ori_page_read_count": 0,
                    "share_user": figure(d, msgid, "shares", low=0, high=15),
                    "share_count": figure(d, msgid, "shares", low=0, high=15),
                    "add_to_fav_user": 1,
                    "add_to_fav_count": 1,
                }
            )
        return rows

    @staticmethod
    def _getarticletotaldetail(day: date) -> list[dict[str, Any]]:
        """getarticletotal's successor, which wechatpy 1.8 lacks: totals so far with likes."""
        d = day.isoformat()
        return [
            {
                "ref_date": published,
                "msgid": f"{mid}_{index + 1}",
                "title": title,
                "detail_list": [
                    {
                        "stat_date": d,
                        "read_user": figure(d, mid, index, "reads", low=20, high=200),
                        "share_user": figure(d, mid, index, "shares", low=0, high=15),
                        "like_user": figure(d, mid, index, "likes", low=0, high=25),
                    }
                ],
            }
            for mid, index, title, published in articles()
        ]

    def _comment_people(self, mid: int, index: int) -> list[str]:
        people = list(COMMENTERS.get((mid, index), []))
        if (mid, index) == (2247483650, 0):
            people += [f"c{n:03d}" for n in range(self.fake.extra_comments)]
        return people

    def _comments(self, params: dict[str, str], body: Any) -> dict[str, Any]:
        if self.fake._authorized(params) is None:
            return self.fake._error(40001, "invalid credential, access_token is invalid or not latest")
        body = body or {}
        mid, index = int(body.get("msg_data_id", 0)), int(body.get("index", -1))
        begin, count = int(body.get("begin", 0)), int(body.get("count", 0))
        if mid not in MESSAGES or not 0 <= index < len(MESSAGES[mid][1]):
            return self.fake._error(88000, "without comment privilege")
        if not 0 < count < 50 or begin < 0:
            return self.fake._error(40097, "invalid args: count must be less than 50")
        appid = self.fake.official_account_appid
        assert appid
        people = self._comment_people(mid, index)
        published = datetime.fromisoformat(MESSAGES[mid][0]).replace(hour=20, tzinfo=BEIJING)
        rows = [
            {
                "user_comment_id": n + 1,
                "openid": self.fake.openid(appid, person),
                "create_time": int((published + timedelta(minutes=7 * (n + 1))).timestamp()),
                "content": f"{person.capitalize()} on {MESSAGES[mid][1][index]}"
                + (" (call me: 13800138000)" if person == "carol" else ""),
                "comment_type": 0,
            }
            for n, person in enumerate(people)
        ]
        return {"errcode": 0, "errmsg": "ok", "total": len(rows), "comment": rows[begin : begin + count]}
