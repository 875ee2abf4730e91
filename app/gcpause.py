"""Garbage-collector pauses, timed with `gc.callbacks`: a pause stalls every request of the worker.

With TROIKA_GC_PAUSE_LOG_MS > 0, each collection that takes at least that long is logged (its
generation, duration, objects collected), so a latency tail can be matched against the collector.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger("troika.gc")


class PauseLog:
    """Times every collection; logs those at or over `threshold_ms`, and keeps totals per generation."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self.started = 0.0
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        generation = int(info["generation"])
        self.count[generation] += 1
        self.seconds[generation] += took
        self.longest[generation] = max(self.longest[generation], took)
        if took >= self.threshold:
            log.warning(
                "gc pause %.0f ms: generation %d, %d objects collected, %d frozen",
                took * 1000,
                generation,
                info["collected"],
                gc.get_freeze_count(),
            )


def install(threshold_ms: float) -> PauseLog | None:
    """Start timing collections in this process (nothing when the threshold is 0)."""
    if threshold_ms <= 0:
        return None
    pauses = PauseLog(threshold_ms)
    gc.callbacks.append(pauses)
    return pauses
