"""Opening a user's data file and reading its lines, whatever the file holds.

A path that is not a readable regular file (a folder, a FIFO, a missing file, one without
read permission, an empty one) and a file that is not text (gzip, PNG, UTF-16 without a
byte-order mark) are refused with one :class:`DataError` that names the file and says what
to do. Inside a text file, a line that cannot be used (bytes that are not UTF-8, a NUL byte,
more characters than the bound) is handed on with the reason, so the reader quarantines
that record and goes on.
"""

from __future__ import annotations

import codecs
import difflib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from polyadapt.errors import DataError
from polyadapt.textfiles import BOMS, signature

#: The default of ``data.max_record_chars``: a record (a JSONL line, a CSV row) with more
#: characters than this is quarantined rather than read.
DEFAULT_MAX_RECORD_CHARS = 1_000_000
#: How much of a file is looked at to tell text from binary.
SNIFF_BYTES = 4096
#: The extensions of data files, for suggestions.
DATA_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".parquet")
_COMPRESSED = {"gzip", "zip", "bzip2", "xz", "zstd"}
_FILE_TYPES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Line(NamedTuple):
    """One physical line: its 1-based number, its text (line end kept) and, when it cannot
    be used, why (a quarantine reason). ``text`` is a best effort even then (undecodable
    bytes as surrogates), so a CSV parser keeps its place."""

    number: int
    text: str
    problem: str | None = None


def oversize(chars: int, bound: int) -> str:
    """The quarantine reason for a record of ``chars`` characters over ``bound``."""
    return (
        f"oversize: the record is {chars:,} characters, above data.max_record_chars ({bound:,}); "
        "split it or raise the bound"
    )


def check_data_file(path: Path) -> os.stat_result:
    """``path``'s status when it is a non-empty regular file; else a :class:`DataError`
    saying what it is instead (missing, a folder, a FIFO, ...) and what to do."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(_missing(path)) from None
    except NotADirectoryError:
        raise DataError(_missing(path)) from None
    except PermissionError:
        raise DataError(f"{path}: cannot read: permission denied on a folder above it") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(_folder(path))
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_TYPES if test(info.st_mode)), "an unknown kind")
        raise DataError(
            f"{path}: is not a regular file ({kind}); save the data to a .jsonl, .csv or .parquet file "
            "and point the config at it"
        )
    if info.st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes, no records); was it written completely?")
    return info


def open_data_file(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, after :func:`check_data_file`; a :class:`DataError`
    when the permissions forbid it. Opened without blocking and checked again, so a file
    swapped for a FIFO after the check cannot hang the read."""
    check_data_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        raise DataError(f"{path}: cannot read: permission denied; let your user read it (chmod u+r)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{path}: is not a regular file any more (it changed while being opened)")
    return os.fdopen(fd, "rb")


def _missing(path: Path) -> str:
    if path.is_symlink():
        return f"{path}: no such data file: it is a link to {os.readlink(path)}, which does not exist"
    folder = path.parent
    if not folder.is_dir():
        # name the first folder on the way down that is not there (or is a file)
        while not folder.parent.is_dir() and folder.parent != folder:
            folder = folder.parent
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        return f"{path}: no such data file (the folder {folder} {what})"
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    # compare the names without extensions: they share ".jsonl" too often to tell anything
    stems = [Path(name).stem.lower() for name in names]
    close_stems = dict.fromkeys(difflib.get_close_matches(path.stem.lower(), stems, n=3, cutoff=0.6))
    close = [name for stem in close_stems for name, other in zip(names, stems, strict=True) if other == stem][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else f" in {folder}"
    return f"{path}: no such data file{hint}"


def _folder(path: Path) -> str:
    try:
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES and p.is_file())
    except OSError:
        inside = []
    holds = f" (it holds {', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})" if inside else ""
    return (
        f"{path}: is a folder, not a data file{holds}; point the config's data path at a .jsonl, .csv "
        "or .parquet file (only tasks that read folders, such as code, image or speech, take a folder)"
    )


def sniff_encoding(path: Path, handle: BinaryIO, what: str) -> str:
    """The text encoding of the open file (UTF-8, or the UTF-16/32 its byte-order mark names),
    ``handle`` left just after the mark. A file that is binary (compressed, an image, ...) or
    UTF-16/32 without a mark is refused with a :class:`DataError`; ``what`` names the format
    expected (``jsonl``, ``csv``)."""
    head = handle.read(SNIFF_BYTES)
    for bom, encoding in BOMS:
        if head.startswith(bom):
            handle.seek(len(bom))
            return encoding
    handle.seek(0)
    kind = _binary_kind(head)
    if kind is None:
        return "utf-8"
    if kind.startswith("UTF-"):
        source = kind.split(" ")[0] + ("LE" if "little" in kind else "BE")
        raise DataError(
            f"{path}: looks like {kind}, not UTF-8 {what} text; convert it, e.g. "
            f"iconv -f {source} -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}"
        )
    if kind in _COMPRESSED:
        todo = f"decompress it first and point the config at the {what} file inside"
    elif kind == "parquet":
        todo = "name it .parquet or set data.format: parquet"
    else:
        todo = f"point the config at the {what} data file"
    raise DataError(f"{path}: looks like a binary file ({kind}), not {what} text; {todo}")


def _binary_kind(head: bytes) -> str | None:
    """What a file's first bytes look like when they are not UTF-8 text, or None: a
    :func:`~polyadapt.textfiles.signature`, else mostly binary lines. A stray binary line among
    text lines is quarantined by the reader; a file whose lines are mostly binary is refused."""
    kind = signature(head)
    if kind is not None or b"\x00" not in head or len(head) < 4:
        return kind
    lines = head.split(b"\n")[:-1] or [head]
    binary = sum(1 for line in lines if b"\x00" in line or any(b < 9 or 13 < b < 27 for b in line))
    return "it holds NUL bytes" if 2 * binary > len(lines) else None


def text_lines(path: Path, handle: BinaryIO, encoding: str, max_chars: int) -> Iterator[Line]:
    """The physical lines of the open file (positioned after any byte-order mark), each with
    the reason it cannot be used when it cannot: bytes that are not ``encoding``, a NUL byte,
    more than ``max_chars`` characters (counted without reading the line whole)."""
    if encoding == "utf-8":
        yield from _utf8_lines(handle, max_chars)
    else:
        yield from _wide_lines(path, handle, encoding, max_chars)


def _line_end(text: str) -> int:
    return 2 if text.endswith("\r\n") else 1 if text.endswith(("\n", "\r")) else 0


def _utf8_lines(handle: BinaryIO, max_chars: int) -> Iterator[Line]:
    cap = 4 * max_chars + 2  # a UTF-8 character takes at most 4 bytes
    number = 0
    while raw := handle.readline(cap):
        number += 1
        if len(raw) == cap and not raw.endswith(b"\n"):
            yield Line(number, "\n", oversize(_count_rest(handle, raw), max_chars))
            continue
        problem = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "surrogateescape")
            problem = (
                f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not valid UTF-8; "
                "re-save the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)"
            )
        if b"\x00" in raw:
            problem = f"NUL byte: at column {raw.index(0) + 1}; the line holds binary data, not text"
        if problem is None and len(text) > max_chars and len(text) - _line_end(text) > max_chars:
            problem = oversize(len(text) - _line_end(text), max_chars)
        yield Line(number, text, problem)


def _count_rest(handle: BinaryIO, start: bytes) -> int:
    """The characters of a line whose first bytes are ``start``, read on in chunks to its end."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    chars, tail = len(decoder.decode(start)), start[-2:]
    while not tail.endswith(b"\n"):
        chunk = handle.readline(1 << 20)
        if not chunk:
            break
        chars += len(decoder.decode(chunk))
        tail = (tail + chunk)[-2:]
    chars += len(decoder.decode(b"", final=True))
    return chars - (2 if tail == b"\r\n" else 1 if tail.endswith(b"\n") else 0)


def _wide_lines(path: Path, handle: BinaryIO, encoding: str, max_chars: int) -> Iterator[Line]:
    stream = io.TextIOWrapper(handle, encoding=encoding, errors="strict", newline="")
    number = 0
    try:
        while text := stream.readline(max_chars + 2):
            number += 1
            if len(text) == max_chars + 2 and not _line_end(text):
                chars = len(text)
                while chunk := stream.readline(1 << 20):
                    chars += len(chunk)
                    if _line_end(chunk):
                        chars -= _line_end(chunk)
                        break
                yield Line(number, "\n", oversize(chars, max_chars))
                continue
            problem = None
            if "\x00" in text:
                problem = f"NUL byte: at column {text.index(chr(0)) + 1}; the line holds binary data, not text"
            elif len(text) - _line_end(text) > max_chars:
                problem = oversize(len(text) - _line_end(text), max_chars)
            yield Line(number, text, problem)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: line {number + 1} is not valid {encoding.upper()} ({exc.reason}); the file may be "
            "truncated or mixed: re-save it as UTF-8"
        ) from None
    finally:
        stream.detach()
