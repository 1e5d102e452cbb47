"""Keep a training process's resident memory near what training actually holds.

Tensors on the CPU are allocated with glibc's ``malloc``. glibc serves large blocks with
``mmap`` (returned to the system when freed) but raises that size threshold, up to 32 MB,
each time such a block is freed. A training step frees and reallocates activations of a few
megabytes by the thousand, so after the first steps they all come from the heap arenas,
whose freed space is kept and fragments. On SmolLM2-135M (4 x 256 tokens, fp32, CPU) that
made the process's peak resident memory 3.39 GB; with the threshold fixed at 128 KB it was
2.39 GB at the same speed (26.4 against 26.7 tokens/s; benchmarks/text_lora.py, the same as
running with ``MALLOC_MMAP_THRESHOLD_=131072``).

:func:`bound_host_allocator` fixes the threshold once per process (what the environment
variable does, set from inside) and hands the loader's freed memory back. It does nothing
off glibc, and nothing when the user set glibc's malloc variables themselves or preloads
another allocator (jemalloc, tcmalloc), whose own settings then rule.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

#: ``mallopt`` parameter numbers from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
#: Blocks of at least this many bytes get their own mapping, returned to the system when freed
#: (glibc's own starting value; fixing it stops glibc from raising it).
MMAP_THRESHOLD_BYTES = 128 * 1024
#: Environment variables through which a user already chose how malloc behaves.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")

_applied: bool | None = None


def _user_chose_allocator() -> bool:
    """Whether the environment already sets glibc's malloc or preloads another allocator."""
    if any(name in os.environ for name in USER_SETTINGS):
        return True
    preload = os.environ.get("LD_PRELOAD", "")
    return any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc"))


@functools.cache  # find_library runs ldconfig in a subprocess: once per process is enough
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (``mallopt`` and ``malloc_trim`` present)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # musl and others
    return libc


def bound_host_allocator() -> bool:
    """Fix glibc's mmap threshold for this process and return freed heap memory to the system.

    Returns whether the threshold is now fixed by this call or an earlier one (False off glibc
    or when the user chose the allocator's settings). Safe to call more than once.
    """
    global _applied
    if _applied is not None:
        libc = _glibc() if _applied else None
        if libc is not None:
            libc.malloc_trim(0)
        return _applied
    libc = None if _user_chose_allocator() else _glibc()
    if libc is None:
        _applied = False
        return False
    _applied = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    libc.malloc_trim(0)
    return _applied
