"""PostgreSQL's instructions per execution of one statement (callgrind on a single-user backend).

Deterministic, so unaffected by the machine's load: the statement is PREPAREd in a single-user
backend (`postgres --single`, over a data directory no server is running on) and EXECUTEd for
`--few` and for `--few + --many` users under `valgrind --tool=callgrind`; the difference of the
two totals over `--many` is the cost of one execution, start-up and warm caches excluded.

    .venv/bin/python -m bench.pg_instructions --datadir /tmp/x/data --database db \
        --statement stmt.sql --args args.json [--mode force_generic_plan]

`stmt.sql`: the statement with `$n` parameters (as the driver sends it); `args.json`: a list of
argument lists (ints, strings, lists of strings), one per execution, cycled. A single-user backend
prints its results as text: `--around` wraps the statement so that what a client would be sent is
made but not printed, e.g. JSON text `"SELECT octet_length(j) FROM ({statement}) s(j)"`, binary
arrays `"SELECT octet_length(array_send(a)) + octet_length(array_send(b)) FROM ({statement}) s"`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def literal(value: Any) -> str:
    """A SQL literal for an EXECUTE argument."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        inner = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
        return "'{" + inner.replace("'", "''") + "}'"
    return "'" + str(value).replace("'", "''") + "'"


def script(statement: str, args: list[list[Any]], runs: int, mode: str, types: str = "") -> str:
    typed = f"({types})" if types else ""
    lines = [f"SET plan_cache_mode = {mode};", f"PREPARE s{typed} AS {statement};"]
    for n in range(runs):
        lines.append(f"EXECUTE s({', '.join(literal(a) for a in args[n % len(args)])});")
    return "\n\n".join(lines) + "\n\n"


def instructions(postgres: str, datadir: str, database: str, text: str, user: str) -> int:
    """Total Ir of one single-user backend running `text`."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        out = Path(tmp) / "cg.out"
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            postgres, "--single", "-j", "-D", datadir, database,
        ]  # fmt: skip
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", user, "--", *cmd]
        done = subprocess.run(cmd, input=text, capture_output=True, text=True, check=False)
        if done.returncode != 0 or "ERROR" in done.stdout + done.stderr:
            raise SystemExit(f"backend failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if found is None:
            raise SystemExit("no total in callgrind's output")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--statement", required=True, help="file with the statement ($n parameters)")
    parser.add_argument("--args", required=True, help="JSON file: a list of argument lists")
    parser.add_argument("--few", type=int, default=10)
    parser.add_argument("--many", type=int, default=200)
    parser.add_argument("--mode", default="force_generic_plan", help="plan_cache_mode")
    parser.add_argument("--types", default="", help="the parameters' types, as PREPARE takes them")
    parser.add_argument("--around", default="{statement}", help="a statement around it (see above)")
    parser.add_argument("--postgres", default="postgres")
    parser.add_argument("--user", default="postgres", help="who runs the backend when this runs as root")
    a = parser.parse_args()
    statement = a.around.format(statement=Path(a.statement).read_text().strip().rstrip(";"))
    args = json.loads(Path(a.args).read_text())
    few = instructions(
        a.postgres, a.datadir, a.database, script(statement, args, a.few, a.mode, a.types), a.user
    )
    many = instructions(
        a.postgres, a.datadir, a.database, script(statement, args, a.few + a.many, a.mode, a.types), a.user
    )
    per = (many - few) / a.many / 1000
    print(f"{per:,.0f}k instructions per execution ({few:,} for {a.few}, {many:,} for {a.few + a.many})")


if __name__ == "__main__":
    main()
