"""How many threads a CPU forward pass may use while serving.

torch starts one intra-op thread per core. A server also needs a core for its HTTP loop,
request parsing, tokenization and governance scans; with every core busy in a forward pass
those wait, and the forward pass's own threads wait for each other whenever one is
descheduled. So ``polyadapt serve`` leaves one core free by default.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, so a container's limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def serving_threads(requested: int | None, current: int) -> int:
    """Threads for forward passes: ``requested``, else one fewer than the usable cores
    (at least one), never more than torch's ``current`` default."""
    if requested is not None:
        return requested
    return max(1, min(current, usable_cores() - 1))


def apply_serving_threads(requested: int | None) -> int:
    """Set torch's intra-op threads for serving (see :func:`serving_threads`); the number set."""
    import torch

    threads = serving_threads(requested, torch.get_num_threads())
    torch.set_num_threads(threads)
    return threads
