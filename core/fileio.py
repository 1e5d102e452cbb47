"""Atomic file and folder writes: an artifact is either whole or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def create_exclusive_text(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if nothing is there yet, complete or not at all.

    The content goes to a temporary file that is then hard-linked to ``path``; the link fails
    when ``path`` exists, so of several processes racing for one name exactly one gets True.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_json_file(path: Path, what: str) -> Any:
    """The JSON in ``path`` (a file polyadapt wrote: ``run.json``, ``adapter.json``); a
    :class:`~polyadapt.errors.PolyadaptError` naming it and what to do when it is damaged."""
    from polyadapt.errors import PolyadaptError

    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise PolyadaptError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PolyadaptError(
            f"{path}: the {what} is damaged ({str(exc).splitlines()[0]}); restore it from a copy, "
            "or start the run again"
        ) from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    The file gets the mode it had, or for a new file the one a plain ``open`` would give
    (``mkstemp`` alone would leave every run file readable by its owner only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole.

    If the block raises, the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _apply_umask_modes(tmp)  # mkdtemp makes the folder owner-only
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def is_leftover(name: str) -> bool:
    """True for what an interrupted atomic write leaves: ``.NAME.*.tmp``, ``.NAME.old``."""
    return name.startswith(".") and name.endswith((".tmp", ".old"))


def remove_leftovers(folder: Path) -> int:
    """Remove what interrupted atomic writes leave in ``folder`` (``.NAME.*.tmp`` files and
    folders, ``.NAME.old`` folders); return how many. Only for a folder no other process
    is writing to (a run being resumed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for item in folder.iterdir():
        if is_leftover(item.name):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    item.unlink()
            removed += 1
    return removed


def _umask() -> int:
    """The process's umask (reading it means setting it; it is put back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _apply_umask_modes(folder: Path) -> None:
    """Give ``folder`` and what lies in it the modes a plain mkdir/open would have given."""
    umask = _umask()
    folder.chmod(0o777 & ~umask)
    for item in folder.rglob("*"):
        item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)


def portable_path(path: Path | str, root: Path | str | None = None) -> str:
    """``path`` as run artifacts store it: relative to ``root`` (the working directory by
    default) when inside it, ``~/...`` when inside the home folder, else as given.

    Run folders are copied, shared and published; an absolute path would tell where and
    under which user name a run was made, and would not mean anything on another machine.
    """
    text = str(path)
    if "://" in text:  # a URL or a remote reference, not a local path
        return text
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        return text
    base = Path(root) if root is not None else Path.cwd()
    for folder, prefix in ((base, ""), (Path.home(), "~/")):
        try:
            relative = candidate.resolve().relative_to(folder.resolve())
        except (ValueError, OSError):
            continue
        return f"{prefix}{relative.as_posix()}" if str(relative) != "." else (prefix.rstrip("/") or ".")
    return text
