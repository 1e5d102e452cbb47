"""Bytes to text for files users hand us: byte-order marks honoured, binary files and bad
bytes reported with where they are, never a bare ``UnicodeDecodeError``."""

from __future__ import annotations

import codecs

#: Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

#: Leading bytes of binary formats people hand over by mistake.
MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"%PDF", "PDF"),
    (b"PAR1", "parquet"),
    (b"\x7fELF", "executable (ELF)"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ", "xz"),
    (b"(\xb5/\xfd", "zstd"),
    (b"SQLite format 3", "SQLite"),
    (b"\x80\x02", "Python pickle"),
    (b"\x80\x04", "Python pickle"),
    (b"\x80\x05", "Python pickle"),
)


class TextDecodeError(ValueError):
    """Why bytes are not text, in words a user can act on."""


def split_bom(data: bytes) -> tuple[str | None, bytes]:
    """The encoding a byte-order mark at the start names (or None) and the bytes after it."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return encoding, data[len(bom) :]
    return None, data


def signature(head: bytes) -> str | None:
    """The binary format a file's first bytes announce (gzip, PNG, ...), or UTF-16/32 without a
    byte-order mark (NUL bytes in fixed lanes); None for anything else."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    if b"\x00" not in head or len(head) < 4:
        return None
    quarter = len(head) // 4
    lanes = [head[i::4].count(0) for i in range(4)]
    if min(lanes[1:]) > quarter // 2 and lanes[0] == 0:
        return "UTF-32 (little-endian, without a byte-order mark)"
    if min(lanes[:3]) > quarter // 2 and lanes[3] == 0:
        return "UTF-32 (big-endian, without a byte-order mark)"
    if head[1::2].count(0) > quarter and head[0::2].count(0) == 0:
        return "UTF-16 (little-endian, without a byte-order mark)"
    if head[0::2].count(0) > quarter and head[1::2].count(0) == 0:
        return "UTF-16 (big-endian, without a byte-order mark)"
    return None


def binary_kind(data: bytes) -> str | None:
    """What binary format ``data`` (a file's first bytes) looks like, or None for text: a
    :func:`signature`, else any NUL byte makes it binary."""
    head = data[:4096]
    kind = signature(head)
    if kind is not None:
        return kind
    return "binary data (it holds NUL bytes)" if b"\x00" in head else None


def position(data: bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column (in bytes) of ``offset`` in ``data``."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def decode_text(data: bytes) -> str:
    """``data`` as text: UTF-8, or the UTF-8/16/32 its byte-order mark names (the mark dropped).

    Raises :class:`TextDecodeError` saying what the bytes look like (gzip, UTF-16 without a
    mark, ...) or which byte at which line and column is not UTF-8, and how to convert.
    """
    encoding, body = split_bom(data)
    if encoding is None:
        kind = binary_kind(data)
        if kind is not None:
            hint = f" (convert it: iconv -f {kind[:6]} -t UTF-8)" if kind.startswith("UTF-") else ""
            raise TextDecodeError(f"looks like {kind}, not UTF-8 text{hint}")
        encoding = "utf-8"
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        line, column = position(body, exc.start)
        raise TextDecodeError(
            f"not valid {encoding.upper()} text: byte 0x{body[exc.start]:02x} at line {line}, column {column} "
            "(save the file as UTF-8, e.g. iconv -f LATIN1 -t UTF-8)"
        ) from None
