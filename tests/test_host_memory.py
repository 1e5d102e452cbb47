"""Training fixes glibc's mmap threshold, so memory that training frees goes back to the system."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from polyadapt.training import host_memory

pytest.importorskip("torch")

#: After a 16 MB mapped block is freed, glibc by default serves 4 MB blocks from its heap (whose
#: freed space stays with the process); bounded, each gets its own mapping, unmapped when freed.
#: ``mallinfo2().hblkhd`` is the bytes in such mappings.
SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, torch
    from polyadapt.training.host_memory import bound_host_allocator
    applied = bound_host_allocator() if sys.argv[1] == "bounded" else None
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    first = torch.ones(16 << 20, dtype=torch.uint8)
    del first
    before = libc.mallinfo2().hblkhd
    blocks = [torch.ones(4 << 20, dtype=torch.uint8) for _ in range(50)]
    mapped = libc.mallinfo2().hblkhd - before
    del blocks
    print(applied, mapped >> 20, (libc.mallinfo2().hblkhd - before) >> 20)
    """
)


def mapped_megabytes(mode: str) -> tuple[str, int, int]:
    """(bound_host_allocator's answer, MB of the 200 MB in own mappings, MB still mapped once freed)."""
    env = {k: v for k, v in os.environ.items() if k not in (*host_memory.USER_SETTINGS, "LD_PRELOAD")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return out[-3], int(out[-2]), int(out[-1])


@pytest.mark.skipif(
    host_memory._glibc() is None or not hasattr(host_memory._glibc(), "mallinfo2"), reason="glibc 2.33+"
)
def test_bounded_tensors_get_their_own_mappings_and_give_them_back():
    applied, mapped, left = mapped_megabytes("bounded")
    assert applied == "True"
    assert mapped == 200 and left == 0  # returned to the system the moment they are freed
    _, mapped_by_default, _ = mapped_megabytes("default")
    assert mapped_by_default == 0, (
        "glibc's default no longer keeps such blocks in its heap: is this module still needed?"
    )


@pytest.mark.parametrize(
    "env",
    [{"MALLOC_MMAP_THRESHOLD_": "65536"}, {"MALLOC_ARENA_MAX": "2"}, {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}],
)
def test_the_users_allocator_settings_are_left_alone(monkeypatch, env):
    monkeypatch.setattr(host_memory, "_applied", None)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    called = []
    monkeypatch.setattr(host_memory, "_glibc", lambda: called.append(1))
    assert host_memory.bound_host_allocator() is False
    assert not called


def test_off_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(host_memory, "_applied", None)
    for name in (*host_memory.USER_SETTINGS, "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(host_memory, "_glibc", lambda: None)
    assert host_memory.bound_host_allocator() is False
