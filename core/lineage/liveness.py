"""Whether the process that ran a run is still alive: host, pid and (on Linux) its start time.

A run records the identity of its process when it starts (``environment["process"]``).
A run killed with SIGKILL, or on a machine that lost power, never records its end and
stays ``running``; checking that identity tells such a run from one that is still going.

On Linux the identity includes the kernel's boot id and the process's start time (in clock
ticks since boot, from ``/proc/<pid>/stat``), so a pid the kernel has since given to another
process, or a machine that restarted, reads as gone. Elsewhere only the pid's existence
can be checked (``os.kill(pid, 0)``): a reused pid then reads as alive. Host names are
compared as they are, so machines sharing a lineage store need distinct names.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

ALIVE = "alive"
GONE = "gone"
OTHER_HOST = "other-host"
UNKNOWN = "unknown"

_PROC = Path("/proc")


def host_name() -> str:
    """This machine's host name, as runs record it."""
    return socket.gethostname()


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks since boot) of ``pid`` from /proc, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)
    except (IndexError, ValueError):
        return None


def _has_proc() -> bool:
    return (_PROC / "self" / "stat").is_file()


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """The identity of process ``pid`` (default: this one) to record with a run.

    ``{"host", "pid"}``, plus ``"boot_id"`` and ``"start_ticks"`` where /proc has them.
    """
    pid = os.getpid() if pid is None else pid
    identity: dict[str, Any] = {"host": host_name(), "pid": pid}
    boot_id = _boot_id()
    if boot_id:
        identity["boot_id"] = boot_id
    stat = _proc_stat(pid)
    if stat is not None:
        identity["start_ticks"] = stat[1]
    return identity


def _pid_exists(pid: int) -> bool | None:
    """Whether a process ``pid`` exists, by signal 0; None where that cannot be asked."""
    if os.name == "nt":  # os.kill there terminates the process whatever the signal
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return None
    return True


def _local_state(identity: dict[str, Any], pid: int) -> str:
    """ALIVE or GONE for a process of this host (UNKNOWN where nothing can tell)."""
    recorded_boot, boot = identity.get("boot_id"), _boot_id()
    if recorded_boot and boot and recorded_boot != boot:
        return GONE  # the machine restarted since
    stat = _proc_stat(pid)
    if stat is not None:
        state, start_ticks = stat
        if state in ("Z", "X"):  # a zombie has finished; only its exit status is left
            return GONE
        recorded_start = identity.get("start_ticks")
        if recorded_start is not None and recorded_start != start_ticks:
            return GONE  # the pid now belongs to a newer process
        return ALIVE
    if _has_proc():
        return GONE
    exists = _pid_exists(pid)
    return UNKNOWN if exists is None else ALIVE if exists else GONE


def process_state(identity: dict[str, Any] | None) -> str:
    """Whether the process ``identity`` names (see :func:`process_identity`) still runs.

    :returns: :data:`ALIVE`, :data:`GONE`, :data:`OTHER_HOST` (it ran on another machine,
        which cannot be checked from here) or :data:`UNKNOWN` (no usable identity recorded).
    """
    if not isinstance(identity, dict):
        return UNKNOWN
    host, pid = identity.get("host"), identity.get("pid")
    if not host or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return UNKNOWN  # pid 0 and below would address process groups
    if host != host_name():
        return OTHER_HOST
    return _local_state(identity, pid)
