"""Drive a load with wrk (C, LuaJIT): a load generator cheap enough not to steal the server's CPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The Lua side: every request asks for a random one of IDS; every answer is checked for a user and
# no errors; cache hits are counted from the x-troika-cache header. `done` prints one JSON line.
SCRIPT = r"""
local ids = {%(ids)s}
local query = %(query)s
local auth = %(auth)s
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed * 7919)
  bad, hits, first = 0, 0, ""
end

function request()
  local id = ids[math.random(#ids)]
  local body = '{"query":' .. query .. ',"variables":{"id":"' .. id .. '"}}'
  return wrk.format("POST", "/graphql",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end

function response(status, headers, body)
  if headers["x-troika-cache"] == "hit" then hits = hits + 1 end
  if status ~= 200 or body:find('"errors"', 1, true) or body:find('"user":null', 1, true) then
    bad = bad + 1
    if first == "" then first = status .. " " .. body:sub(1, 200) end
  end
end

function done(summary, latency, requests)
  local bad_total, hits_total, first_seen = 0, 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    hits_total = hits_total + t:get("hits")
    if first_seen == "" then first_seen = t:get("first") end
  end
  io.write(string.format(
    '{"requests":%%d,"seconds":%%.3f,"bad":%%d,"hits":%%d,"socket_errors":%%d,' ..
    '"p50":%%.3f,"p90":%%.3f,"p95":%%.3f,"p99":%%.3f,"max":%%.3f,"first":%%q}\n',
    summary.requests, summary.duration / 1e6, bad_total, hits_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, first_seen))
end
"""


@dataclass
class WrkRun:
    requests: int
    seconds: float
    bad: int
    hits: int
    socket_errors: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    first: str
    own_cpu: float  # CPU seconds wrk used


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    base: str, *, query: str, key: str, ids: list[int], connections: int, seconds: float, script_dir: Path
) -> WrkRun:
    """One wrk run (2 threads) against `base`; raises if wrk fails."""
    script = script_dir / "bench-query.lua"
    script.write_text(
        SCRIPT
        % {
            "ids": ",".join(str(i) for i in ids),
            "query": _lua_string(json.dumps(query)),
            "auth": _lua_string(f"Bearer {key}"),
        }
    )
    before = os.times()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = os.times()
    line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
    data = json.loads(re.sub(r"\\\n", r"\\n", line))
    own = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return WrkRun(**data, own_cpu=own)


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"
