"""Files a dataset names inside its folder, checked before anything reads them.

A metadata row (or a folder walk) names a file; before a reader opens it, :func:`locate`
makes sure the name stays inside the data folder (no absolute path, no ``..`` out of it),
that a symbolic link does not lead outside it (unless the caller allows that), and that
the file is a regular file: opening a FIFO blocks forever, a folder or a device is no
data. :func:`open_regular` opens a file without following a final symbolic link and
without blocking, and refuses anything but a regular file, so a file swapped for a FIFO
after the check still cannot hang a run.

Problems are raised or returned as quarantine reasons (``"<key>: <what to do>"``) without
the file's name: the caller adds the name it knows the file by.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

#: Whether a file whose symbolic link resolves outside the data folder is read. Off: a
#: dataset folder copied from elsewhere must not make a run read other files on this
#: machine. Meant to become the run config's ``data.follow_external_symlinks``.
FOLLOW_EXTERNAL_SYMLINKS = False

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class FileProblem(Exception):
    """A file that cannot be read as data; ``str(error)`` is the quarantine reason."""


def kind_of(mode: int) -> str:
    """What a ``st_mode`` is, in words (``"a folder"``, ``"a FIFO (named pipe)"``, ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def locate(folder: Path, name: str, *, follow_external_symlinks: bool = FOLLOW_EXTERNAL_SYMLINKS) -> Path | str:
    """The real path of the regular file ``name`` (relative, ``/`` or ``\\`` separated)
    inside ``folder``, or the reason it cannot be read:

    ``bad file_name: path leaves the data folder``, ``symlink leaves the data folder``,
    ``symlink loop``, ``missing file``, ``not a regular file`` (a folder, a FIFO, ...) or
    ``unreadable``. Nothing outside ``folder`` is looked at unless a link inside it leads there.
    """
    text = name.replace("\\", "/")
    if "\0" in text:
        return "bad file_name: it holds a NUL character"
    normal = posixpath.normpath(text)
    if PurePosixPath(text).is_absolute() or _WINDOWS_DRIVE.match(text) or normal.split("/")[0] == "..":
        return "bad file_name: path leaves the data folder; name files relative to it, without '..'"
    root = os.path.realpath(folder)
    candidate = Path(folder) / Path(*PurePosixPath(normal).parts)
    real = os.path.realpath(candidate)
    if not _inside(real, root) and not follow_external_symlinks:
        return (
            "symlink leaves the data folder: it leads outside; copy the file into the folder, "
            "or set data.follow_external_symlinks: true"
        )
    try:
        mode = os.stat(candidate).st_mode
    except FileNotFoundError:
        if os.path.islink(candidate):
            return f"missing file: broken symlink to {os.readlink(candidate)}"
        return "missing file: no such file in the data folder"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: the link leads back to itself"
        return f"unreadable: {exc.strerror}"
    if not stat.S_ISREG(mode):
        return f"not a regular file: it is {kind_of(mode)}; give a regular file"
    return Path(real)


def open_regular(path: Path | str, *, follow_symlinks: bool = True) -> BinaryIO:
    """``path`` opened for reading in binary; :class:`FileProblem` unless it is a regular file.

    The open does not block (a FIFO would, waiting for a writer), and with
    ``follow_symlinks=False`` a final symbolic link is refused.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileProblem("missing file: it was removed while loading") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileProblem("symlink: not followed" if not follow_symlinks else "symlink loop") from None
        raise FileProblem(f"unreadable: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise FileProblem(f"not a regular file: it is {kind_of(mode)}; give a regular file")
    return os.fdopen(fd, "rb")


def read_regular(path: Path | str, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (one more than ``limit`` tells
    the caller the file is over it); :class:`FileProblem` as :func:`open_regular`."""
    with open_regular(path, follow_symlinks=follow_symlinks) as handle:
        try:
            return handle.read(limit + 1)
        except OSError as exc:
            raise FileProblem(f"unreadable: {exc.strerror}") from None
