"""The earlier identity-only read-path benchmark, now `bench.query --query identity`.

Kept so the commands in RESULTS.md's earlier section still run; its options are bench.query's.
"""

from __future__ import annotations

import sys

from bench.query import main

if __name__ == "__main__":
    if "--query" not in sys.argv:
        sys.argv[1:1] = ["--query", "identity"]
    main()
