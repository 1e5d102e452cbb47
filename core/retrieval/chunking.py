"""Documents into passages: paragraph-aware chunks of about ``chunk_words`` words with a small
overlap, each knowing its line range (or PDF page).

Paragraphs (runs of lines between blank lines) are kept whole where they fit: a chunk takes
paragraphs until it holds ``chunk_words`` words, never more than a quarter over; a paragraph
too long for one chunk is cut at line ends (a single very long line at word boundaries).
The next chunk starts with the end of the one before (its last lines, or words of its last
line, up to ``overlap_words``: an eighth of ``chunk_words`` by default), so words at a chunk
edge keep some of their context in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from polyadapt.retrieval.documents import Document, Part

DEFAULT_CHUNK_WORDS = 200
MIN_CHUNK_WORDS = 20
MAX_CHUNK_WORDS = 2000

Line = tuple[int | None, str]


@dataclass(frozen=True)
class Chunk:
    """One passage before governance: its text, line range (None when unknown) and page."""

    text: str
    first_line: int | None
    last_line: int | None
    page: int | None

    def anchor(self) -> str:
        """``#L12-30`` (lines), ``#page=3`` (PDF page) or ``""`` when neither is known."""
        if self.page is not None:
            return f"#page={self.page}"
        if self.first_line is None or self.last_line is None:
            return ""
        if self.first_line == self.last_line:
            return f"#L{self.first_line}"
        return f"#L{self.first_line}-{self.last_line}"


def _words(lines: list[Line]) -> int:
    return sum(len(text.split()) for _, text in lines)


def _paragraphs(part: Part) -> list[list[Line]]:
    paragraphs: list[list[Line]] = []
    current: list[Line] = []
    for number, text in part.lines:
        if text.strip():
            current.append((number, text.rstrip()))
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def _pieces(paragraph: list[Line], size: int, limit: int) -> list[list[Line]]:
    """``paragraph`` cut into pieces of at most ``limit`` words (about ``size`` each)."""
    if _words(paragraph) <= limit:
        return [paragraph]
    lines: list[Line] = []
    for number, text in paragraph:
        words = text.split()
        if len(words) <= limit:
            lines.append((number, text))
        else:
            lines.extend((number, " ".join(words[i : i + size])) for i in range(0, len(words), size))
    pieces: list[list[Line]] = [[]]
    for line in lines:
        if pieces[-1] and _words(pieces[-1]) + len(line[1].split()) > size:
            pieces.append([])
        pieces[-1].append(line)
    return pieces


def _tail(paragraphs: list[list[Line]], overlap: int) -> list[Line]:
    """The end of a chunk to repeat at the start of the next: its last lines holding at most
    ``overlap`` words, or the last ``overlap`` words of its last line when that line is
    longer; nothing when that would be the whole chunk."""
    if overlap <= 0:
        return []
    last = paragraphs[-1]
    tail: list[Line] = []
    count = 0
    for number, text in reversed(last):
        words = text.split()
        if count + len(words) <= overlap:
            tail.insert(0, (number, text))
            count += len(words)
            continue
        if not tail:
            tail = [(number, " ".join(words[-overlap:]))]
        break
    if len(paragraphs) == 1 and tail == last:
        return []
    return tail


def _chunk(paragraphs: list[list[Line]], page: int | None) -> Chunk:
    text = "\n\n".join("\n".join(line for _, line in paragraph) for paragraph in paragraphs)
    numbers = [number for paragraph in paragraphs for number, _ in paragraph if number is not None]
    return Chunk(text, min(numbers) if numbers else None, max(numbers) if numbers else None, page)


def chunk_part(part: Part, chunk_words: int = DEFAULT_CHUNK_WORDS, overlap_words: int | None = None) -> list[Chunk]:
    """The chunks of one part of a document (see the module docstring)."""
    overlap = max(0, chunk_words // 8) if overlap_words is None else overlap_words
    limit = chunk_words + chunk_words // 4
    units = [piece for paragraph in _paragraphs(part) for piece in _pieces(paragraph, chunk_words, limit)]
    chunks: list[Chunk] = []
    current: list[list[Line]] = []
    fresh = False  # whether current holds more than the overlap carried over

    def emit() -> None:
        nonlocal current, fresh
        chunks.append(_chunk(current, part.page))
        tail = _tail(current, overlap)
        current, fresh = ([tail] if tail else []), False

    for unit in units:
        if fresh and _words([line for p in current for line in p]) + _words(unit) > limit:
            emit()
        current.append(unit)
        fresh = True
        if _words([line for p in current for line in p]) >= chunk_words:
            emit()
    if fresh:
        chunks.append(_chunk(current, part.page))
    return chunks


def chunk_document(document: Document, chunk_words: int = DEFAULT_CHUNK_WORDS) -> list[Chunk]:
    """Every chunk of ``document``, part by part (chunks never span two PDF pages)."""
    return [chunk for part in document.parts for chunk in chunk_part(part, chunk_words)]
