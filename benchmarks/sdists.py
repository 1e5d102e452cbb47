"""Source distributions from the package index, fetched once and unpacked, for benchmarks
that measure on code nobody here wrote (``pip download --no-binary :all:``)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path


def fetch_sdists(directory: Path, packages: Iterable[tuple[str, str]]) -> dict[str, Path]:
    """Each ``(name, version)``'s unpacked source distribution under ``directory``
    (downloaded when missing): name -> its folder."""
    directory.mkdir(parents=True, exist_ok=True)
    roots = {}
    for name, version in packages:
        root = directory / f"{name}-{version}"
        if not root.is_dir():
            archive = directory / f"{name}-{version}.tar.gz"
            if not archive.exists():
                command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
                subprocess.run([*command, f"{name}=={version}", "-d", str(directory), "-q"], check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(directory, filter="data")
        roots[name] = root
    return roots
