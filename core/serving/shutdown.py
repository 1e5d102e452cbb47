"""Running ``polyadapt serve`` with a graceful shutdown.

On SIGTERM (or Ctrl-C) the server stops accepting connections, answers any new request
that still reaches it 503 (:class:`~polyadapt.serving.limits.Lifecycle`), lets the requests
in flight finish for up to ``grace_s`` seconds (uvicorn's ``timeout_graceful_shutdown``),
lets the micro-batchers drain what is left of that time, and returns. A SIGTERM is a normal
stop: the command then exits 0.
"""

from __future__ import annotations

import math
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

#: The exit status uvicorn uses when the server could not start (the port is taken, say).
STARTUP_FAILURE = 3


def _ignore(signum: int, frame: Any) -> None:
    """Stand-in SIGTERM handler while the server runs (see :func:`run_server`)."""


def run_server(app: FastAPI, *, host: str, port: int, grace_s: float, log_level: str = "info") -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT, then shut down gracefully.

    Raises ``SystemExit(3)`` when the server cannot start, as ``uvicorn.run`` does.
    """
    import uvicorn

    lifecycle = getattr(app.state, "lifecycle", None)

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if lifecycle is not None:
                lifecycle.start_draining()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=math.ceil(grace_s)
    )
    server = DrainingServer(config)
    main_thread = threading.current_thread() is threading.main_thread()
    # uvicorn re-raises the signal it stopped on once it is done, under the handler that was
    # installed before it ran: with the default one a SIGTERM would kill the process (status
    # 143) after a clean shutdown. A no-op handler lets the command return and exit 0.
    previous = signal.signal(signal.SIGTERM, _ignore) if main_thread else None
    try:
        server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
