"""Files and folders into documents: the text of each file, with its line numbers (or PDF
page), its SHA-256 and size.

Read: ``.txt``, ``.md``/``.markdown``, ``.rst``, ``.html``/``.htm`` (text only: tags,
scripts and styles dropped) and ``.pdf`` (the text layer, through ``pypdf``, from the
``retrieval`` extra). Folders are read recursively in name order; hidden files and folders
and files of other types are passed over and counted. A file that cannot be used (not UTF-8,
binary, empty, unreadable, a PDF without a text layer) is refused with the reason when it
was named on its own, and listed by name with the reason when it was found in a folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from polyadapt.errors import DataError
from polyadapt.fileio import portable_path
from polyadapt.textfiles import TextDecodeError, decode_text

#: File suffix -> document kind.
KINDS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
PDF_INSTALL = "pip install 'polyadapt[retrieval]' (or pip install pypdf)"


@dataclass(frozen=True)
class Part:
    """A run of a document's text: its lines with their 1-based line numbers in the file
    (None for PDF text), and the PDF page it is on (None for other files)."""

    lines: tuple[tuple[int | None, str], ...]
    page: int | None = None


@dataclass(frozen=True)
class Document:
    """One file's text: ``source`` (the path relative to the project), its SHA-256 over the
    file's bytes, size, kind (``text``, ``markdown``, ``rst``, ``html``, ``pdf``) and parts."""

    source: str
    sha256: str
    bytes: int
    kind: str
    parts: tuple[Part, ...]


@dataclass
class Reading:
    """What reading the inputs gave: the documents, the files left out with the reason, and
    how many hidden or other-type files the folders held."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    hidden: int = 0
    other_types: int = 0


class _HtmlText(HTMLParser):
    """The text of an HTML page with the line each piece starts on; block tags break lines."""

    BLOCKS = frozenset(
        "p div br li ul ol tr table h1 h2 h3 h4 h5 h6 section article header footer pre blockquote dd dt".split()
    )
    SKIP = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int | None, str]] = []
        self._current: list[str] = []
        self._line: int | None = None
        self._skipping = 0

    def _break(self, blank: bool = False) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.lines.append((self._line, text))
        if blank and self.lines and self.lines[-1][1]:
            self.lines.append((None, ""))
        self._current, self._line = [], None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self._break(blank=tag != "br")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self._break(blank=True)

    def handle_data(self, data: str) -> None:
        if self._skipping or not data.strip():
            if data and not self._skipping:
                self._current.append(" ")
            return
        line = self.getpos()[0]
        pieces = data.split("\n")
        for offset, piece in enumerate(pieces):
            if offset:
                self._break()
            if piece.strip():
                if self._line is None:
                    self._line = line + offset
                self._current.append(piece)

    def text_lines(self) -> tuple[tuple[int | None, str], ...]:
        self._break()
        return tuple(self.lines)


def _text_part(text: str) -> Part:
    return Part(tuple((number, line) for number, line in enumerate(text.splitlines(), start=1)))


def _pdf_parts(path: Path, data: bytes) -> tuple[Part, ...]:
    try:
        from pypdf import PdfReader
    except ModuleNotFoundError:
        raise DataError(f"{path}: reading PDF files needs pypdf, which is not installed; {PDF_INSTALL}") from None
    import io

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise TextDecodeError("the PDF is encrypted; save an unencrypted copy")
        parts = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                parts.append(Part(tuple((None, line) for line in text.splitlines()), page=number))
    except TextDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds for damaged files
        raise TextDecodeError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    if not parts:
        raise TextDecodeError("the PDF has no text layer (a scan? run OCR on it first)")
    return tuple(parts)


def read_document(path: Path) -> Document:
    """The document in the file ``path``; :class:`TextDecodeError` saying why it cannot be
    used (unreadable, binary, not UTF-8, empty, a PDF without text), :class:`DataError`
    when a library it needs is missing."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise TextDecodeError(
            f"{path.suffix or 'files without a suffix'} is not a document type the index reads "
            f"({', '.join(sorted(KINDS))})"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TextDecodeError(f"cannot read it ({exc.strerror or exc})") from None
    if not data.strip():
        raise TextDecodeError("the file is empty")
    if kind == "pdf":
        parts = _pdf_parts(path, data)
    else:
        text = decode_text(data)
        if not text.strip():
            raise TextDecodeError("the file holds only white space")
        if kind == "html":
            parser = _HtmlText()
            parser.feed(text)
            parser.close()
            lines = parser.text_lines()
            if not any(line for _, line in lines):
                raise TextDecodeError("the page holds no text")
            parts = (Part(lines),)
        else:
            parts = (_text_part(text),)
    return Document(portable_path(path), hashlib.sha256(data).hexdigest(), len(data), kind, parts)


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def read_documents(paths: list[Path | str]) -> Reading:
    """Every document under ``paths`` (files and folders), in the order given, folders in
    name order. A named file that cannot be used raises :class:`DataError` with the reason;
    a bad file inside a folder is listed in :attr:`Reading.skipped`. A path that does not
    exist raises :class:`DataError`."""
    reading = Reading()
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise DataError(f"{raw}: no such file or folder to index")
        if path.is_file():
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                reading.documents.append(read_document(path))
            except TextDecodeError as exc:
                raise DataError(f"{path}: cannot index it: {exc}") from None
            continue
        for item in sorted(path.rglob("*")):
            if item.is_dir() or item.resolve() in seen:
                continue
            if _hidden(item, path):
                reading.hidden += 1
                continue
            if item.suffix.lower() not in KINDS:
                reading.other_types += 1
                continue
            seen.add(item.resolve())
            try:
                reading.documents.append(read_document(item))
            except TextDecodeError as exc:
                reading.skipped.append((portable_path(item), str(exc)))
    return reading
