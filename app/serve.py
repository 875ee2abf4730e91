"""`troika serve --workers N`: N uvicorn processes, each accepting on its own SO_REUSEPORT socket.

uvicorn's own `--workers` shares one listening socket, and whichever worker wakes first takes the
next connection: a few keep-alive clients (ingestion senders) all landed on one worker while the
other idled. With a socket per worker the kernel spreads connections by their address hash. The
parent only supervises: it restarts a worker that dies after starting well, stops everything when
one dies at startup (a port taken, a bad setting), and passes SIGINT/SIGTERM on as SIGTERM.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from app.observability.drain import DrainingServer
from app.observability.multiproc import metrics_dir
from app.response_store import shared_dir

APP = "app.main:create_app"
STARTUP_SECONDS = 10.0  # a worker that dies sooner failed to start; restarting it would only loop
log = logging.getLogger("troika.serve")


def reuseport_available() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def reuseport_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket that other processes of this user may bind to the same address too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def log_config() -> dict[str, Any]:
    """One log on standard error: uvicorn's lines and access lines, Troika's `troika.*` lines at
    INFO (errors with their traceId, refusals, SMS codes in development) and other libraries'
    warnings; the same for one process and for each worker. Records are scrubbed as they are made."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["named"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
    }
    config["handlers"]["named"] = {
        "formatter": "named",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # one stream: the log, in order
    config["loggers"]["troika"] = {"handlers": ["named"], "level": "INFO", "propagate": False}
    config["root"] = {"handlers": ["named"], "level": "WARNING"}
    return config


def _worker(host: str, port: int, access_log: bool) -> None:
    """One worker process: its own socket, one uvicorn server (which handles SIGINT/SIGTERM)."""
    sock = reuseport_socket(host, port)
    DrainingServer(server_config(host, port, access_log=access_log)).run(sockets=[sock])


def server_config(host: str, port: int, *, access_log: bool) -> uvicorn.Config:
    """uvicorn's settings for a worker or the one process (bench.serve_profile uses them too)."""
    return uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        access_log=access_log,
        ws_ping_interval=ws_ping_seconds(),
        log_config=log_config(),
    )


def ws_ping_seconds() -> float | None:
    """WebSocket keep-alive for subscriptions: uvicorn pings every TROIKA_WS_PING_SECONDS (0: never)."""
    from app.settings import get_settings

    seconds = get_settings().ws_ping_seconds
    return seconds if seconds > 0 else None


def serve_workers(host: str, port: int, workers: int, *, access_log: bool) -> int:
    """Run and supervise `workers` worker processes until a signal; returns the exit status."""
    from app.settings import get_settings

    logging.config.dictConfig(log_config())
    settings = get_settings()
    shared = settings.response_cache_bytes if settings.response_cache_shared else 0
    # The workers' metrics files, summed by /metrics, and their one response cache.
    with metrics_dir() as mark_dead, shared_dir(shared):
        return _supervise(host, port, workers, access_log=access_log, mark_dead=mark_dead)


def _supervise(
    host: str, port: int, workers: int, *, access_log: bool, mark_dead: Callable[[int | None], None]
) -> int:
    context = multiprocessing.get_context("spawn")
    running: dict[int, tuple[BaseProcess, float]] = {}
    stopping: list[int] = []

    def start(slot: int) -> None:
        process = context.Process(target=_worker, args=(host, port, access_log), name=f"troika-worker-{slot}")
        process.start()
        running[slot] = (process, time.monotonic())

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    for slot in range(workers):
        start(slot)
    log.info("troika: %d workers on http://%s:%d, one SO_REUSEPORT socket each", workers, host, port)
    status = 0
    while not stopping:
        time.sleep(0.2)
        for slot, (process, started) in list(running.items()):
            if process.is_alive() or stopping:
                continue
            if time.monotonic() - started < STARTUP_SECONDS:
                log.error("worker %d exited with %s while starting; stopping", slot, process.exitcode)
                stopping.append(0)
                status = 1
                break
            log.warning("worker %d exited with %s; starting another", slot, process.exitcode)
            mark_dead(process.pid)
            start(slot)
    for process, _ in running.values():
        if process.is_alive():
            # SIGTERM even for Ctrl-C: the workers saw that SIGINT themselves, and a second
            # SIGINT would make uvicorn drop open connections instead of finishing them.
            process.terminate()
    deadline = time.monotonic() + 30
    for process, _ in running.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return status


def serve_one(host: str, port: int, *, access_log: bool) -> None:
    """One process: uvicorn with the drain on SIGTERM (app/observability/drain.py)."""
    DrainingServer(server_config(host, port, access_log=access_log)).run()
