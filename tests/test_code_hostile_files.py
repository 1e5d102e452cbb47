"""Hostile files in a repository folder (polyadapt.modalities.code): each is quarantined with
its path and a reason, the rest of the repository is still read, and nothing raises or
hangs (a FIFO), follows a link out of the repository or loops."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from code_helpers import MIT, module_text
from conftest import without_hanging

from polyadapt.modalities.code import IngestOptions, load_repository


def load(root: Path, **options: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(kept path -> text, quarantined path -> reason) of ``root``, loaded in a thread that
    must finish within HANG_S."""
    dataset = without_hanging(load_repository, root, **options)
    return {r["path"]: r["text"] for r in dataset.records}, {q.source: q.reason for q in dataset.quarantined}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a licence and two good modules."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "LICENSE").write_text(MIT)
    (root / "pkg" / "good_a.py").write_text(module_text(1))
    (root / "pkg" / "good_b.py").write_text(module_text(2))
    return root


GOOD = {"pkg/good_a.py", "pkg/good_b.py"}


def test_latin1_source_is_quarantined_with_the_bad_byte(repo):
    (repo / "pkg" / "legacy.py").write_bytes(b'"""Module."""\nname = "caf\xe9"\n')
    kept, skipped = load(repo)
    assert set(kept) == GOOD
    assert skipped["pkg/legacy.py"].startswith("encoding: not valid UTF-8 text: byte 0xe9 at line 2, column 12")
    assert "iconv" in skipped["pkg/legacy.py"]


@pytest.mark.parametrize(
    "data, expected",
    [
        (bytes(range(256)) * 4, "binary: looks like binary data (it holds NUL bytes)"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "binary: looks like executable (ELF)"),
        (b"x = 1\n" * 1000 + b"\x00", "binary: looks like binary data (it holds NUL bytes)"),
        ("x = 1\n".encode("utf-16-le"), "encoding: looks like UTF-16 (little-endian, without a byte-order mark)"),
    ],
    ids=["nul-bytes", "elf", "late-nul", "utf16-no-bom"],
)
def test_binary_files_with_a_source_suffix_are_quarantined(repo, data, expected):
    (repo / "pkg" / "blob.py").write_bytes(data)
    kept, skipped = load(repo)
    assert set(kept) == GOOD
    assert skipped["pkg/blob.py"].startswith(expected)


def test_byte_order_marks_are_honoured(repo):
    (repo / "pkg" / "bom8.py").write_bytes(b"\xef\xbb\xbf" + module_text(3).encode())
    (repo / "pkg" / "bom16.py").write_text(module_text(4), encoding="utf-16")  # BOM + UTF-16
    kept, skipped = load(repo)
    assert set(kept) == GOOD | {"pkg/bom8.py", "pkg/bom16.py"} and not set(skipped) - {"LICENSE"}
    assert kept["pkg/bom8.py"] == module_text(3)  # no U+FEFF left at the start
    assert kept["pkg/bom16.py"] == module_text(4)


def test_zero_length_file_is_quarantined(repo):
    (repo / "pkg" / "__init__.py").write_bytes(b"")
    kept, skipped = load(repo)
    assert set(kept) == GOOD
    assert skipped["pkg/__init__.py"].startswith("empty: no content")


def test_oversize_file_is_quarantined_unread(repo):
    (repo / "pkg" / "big.py").write_text("x = 1\n" * 2000)  # 12 kB
    kept, skipped = load(repo, options=IngestOptions(max_file_bytes=4_000))
    assert set(kept) == GOOD
    assert skipped["pkg/big.py"] == "oversize: 12000 bytes > max_file_bytes 4000"


def test_symlinks_leaving_the_repository_are_not_followed(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text('TOKEN = "from outside the repository"\n')
    (repo / "pkg" / "leak.py").symlink_to(outside / "secret.py")
    (repo / "pkg" / "tree").symlink_to(outside, target_is_directory=True)
    (repo / "pkg" / "up.py").symlink_to("../../outside/secret.py")  # relative, same place
    kept, skipped = load(repo)
    assert set(kept) == GOOD
    for path in ("pkg/leak.py", "pkg/tree", "pkg/up.py"):
        assert skipped[path].startswith("symlink leaves the repository: it points to"), skipped[path]
    assert not any(path.startswith("pkg/tree/") for path in kept | skipped)  # the folder was not entered
    assert "from outside" not in "".join(kept.values())


def test_symlink_loop_and_links_inside_the_repository(repo):
    (repo / "pkg" / "loop.py").symlink_to("loop.py")
    (repo / "pkg" / "ping.py").symlink_to("pong.py")
    (repo / "pkg" / "pong.py").symlink_to("ping.py")
    (repo / "pkg" / "alias.py").symlink_to("good_a.py")
    (repo / "pkg" / "dangling.py").symlink_to("nowhere.py")
    kept, skipped = load(repo)
    assert set(kept) == GOOD  # good_a.py read once, under its own path
    for path in ("pkg/loop.py", "pkg/ping.py", "pkg/pong.py"):
        assert skipped[path].startswith("symlink loop"), skipped[path]
    assert skipped["pkg/alias.py"].startswith("symlink: it points to good_a.py inside the repository")
    assert skipped["pkg/dangling.py"].startswith("symlink: nowhere.py does not exist")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_in_the_repository_does_not_hang(repo):
    os.mkfifo(repo / "pkg" / "pipe.py")
    os.mkfifo(repo / "LICENSE.txt")  # a licence file name too: looked at before the files
    kept, skipped = load(repo)
    assert set(kept) == GOOD
    assert skipped["pkg/pipe.py"] == "not a regular file: it is a FIFO (named pipe), never opened"


def test_unreadable_file_is_quarantined(repo, monkeypatch):
    """Permission denied (faked for ``locked.py``: the tests may run as root, who reads anything)."""
    import polyadapt.modalities.datafolder as datafolder

    (repo / "pkg" / "locked.py").write_text(module_text(5))
    real_open = os.open

    def guarded(path, flags, *args):
        if str(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(datafolder.os, "open", guarded)
    kept, skipped = load(repo)
    assert set(kept) == GOOD
    assert skipped["pkg/locked.py"] == "unreadable: Permission denied"


def test_symlinks_in_a_git_revision_are_listed_not_followed(repo):
    (repo / "pkg" / "leak.py").symlink_to("/etc/hostname")
    (repo / "pkg" / "alias.py").symlink_to("good_a.py")
    (repo / "pkg" / "latin.py").write_bytes(b"# caf\xe9\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(repo), *command], check=True, env=env, capture_output=True)
    kept, skipped = load(repo, revision="HEAD")
    assert set(kept) == GOOD
    assert skipped["pkg/leak.py"] == "symlink leaves the repository: it points to /etc/hostname, not followed"
    assert skipped["pkg/alias.py"] == "symlink: it points to good_a.py inside the repository, not followed"
    assert skipped["pkg/latin.py"].startswith("encoding: not valid UTF-8 text")
