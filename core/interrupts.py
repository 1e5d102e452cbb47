"""Whether this process was asked to stop (SIGTERM, Ctrl-C).

A run stopped by a signal must be recorded as *interrupted*, whatever exception ends it: under
several processes the one that takes the signal may next fail on a collective call whose peer
stopped first, and that error is a consequence of the stop, not a failure of the run.
"""

from __future__ import annotations

_requested = False


def request_stop() -> None:
    """Note that a stop was asked for (called by the signal handler before it raises)."""
    global _requested
    _requested = True


def stop_requested() -> bool:
    """True once :func:`request_stop` was called in this process."""
    return _requested
