"""PROMETHEUS_MULTIPROC_DIR for `troika serve --workers N`: one fresh directory per run."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def metrics_dir() -> Iterator[Callable[[int | None], None]]:
    """Set (or clean) the directory the workers write their metrics to; yields mark-dead-by-pid.

    An operator's own PROMETHEUS_MULTIPROC_DIR is emptied at start (stale files from a previous
    run would count again); otherwise a temporary directory lives as long as the server."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = given or tempfile.mkdtemp(prefix="troika-metrics-")
    if given:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # inherited by the spawned workers

    def mark_dead(pid: int | None) -> None:
        if pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]

    try:
        yield mark_dead
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
