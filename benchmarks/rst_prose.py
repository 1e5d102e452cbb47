"""Prose paragraphs of reStructuredText documentation (Django's ``docs/``, Sphinx's ``doc/``).

The markup is stripped the way a reader sees the rendered page: headings, tables, comments,
link targets, code directives (``code-block``, ``literalinclude``, ``toctree``, ...) and the
literal blocks after ``::`` are dropped; the bodies of prose directives (``note``,
``versionadded``, ``method``, ...) are kept; inline markup is reduced to its text (``:class:`~a.B```
-> ``B``, ````x```` -> ``x``, ```text <url>`_`` -> ``text``). Paragraphs are then joined onto
one line and filtered like README prose (:mod:`prose`): 200 characters or more, mostly letters,
no code lines, no ``@``/URL/credit wording. Release notes, change logs and author lists are
left out at the file level (they credit real people by name).
"""

from __future__ import annotations

import re
from pathlib import Path

import prose

#: Directives whose body is code, configuration or a table, not prose: skipped whole.
SKIPPED_DIRECTIVES = frozenset(
    "code-block code sourcecode literalinclude include toctree image figure table csv-table list-table raw "
    "highlight productionlist doctest testcode testoutput testsetup testcleanup graphviz digraph math "
    "autosummary automodule autoclass autofunction automethod autoattribute autodata autoexception "
    "tabularcolumns console code-block-caption parsed-literal only ifconfig index".split()
)
#: Files that credit people (release notes, change logs, author lists) and spelling word lists
#: (lists of contributors' names): left out whole.
_CREDIT_FILES = re.compile(
    r"(?:^|/)(?:releases|changes|changelog|news|authors?|contributors|credits|thanks|history|spelling_wordlist|"
    r"announce|whatsnew(?:-[\d.]+)?)"
    r"(?:/|\.|$)",
    re.IGNORECASE,
)
#: Paragraphs that may credit or contact someone.
_CREDIT_DROP = re.compile(
    r"@|https?://|www\.|copyright|\(c\)|©|thank|credit|contributed by|written by|created by|developed by|"
    r"originally by|sponsor|funded|e-?mail",
    re.IGNORECASE,
)
_ADORNMENT = re.compile(r"([=\-`:'\"~^_*+#<>.])\1{2,}")
_SIMPLE_TABLE = re.compile(r"=+(?: +=+)+")
_GRID_TABLE = re.compile(r"[+|]")
_DIRECTIVE = re.compile(r"\.\.\s+(?:\|[^|]+\|\s+)?([\w:-]+)::")
_BULLET = re.compile(r"(?:[-*+•]|#\.|\d+\.|\(?[a-z0-9]\)|[a-z]\.)\s+")
_OPTION = re.compile(r":[\w -]+:(?:\s|$)")

_ROLE = re.compile(r":[\w:+-]+:`([^`]*)`")
_LINK = re.compile(r"`([^`<]*?)\s*<[^`>]*>`__?")
_REF = re.compile(r"`([^`]+)`__?")
_LITERAL = re.compile(r"``(.+?)``")
_DEFAULT_ROLE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_FOOTNOTE = re.compile(r"\s*\[(?:#|\*|\d+|#?[\w-]+)\]_")
_SUBSTITUTION = re.compile(r"\|[\w -]+\|_?")
_NAMED_REF = re.compile(r"(?<![\w`])([A-Za-z][\w-]*[A-Za-z0-9])__?(?![\w`])")


def _role_text(content: str) -> str:
    """What a role renders as: ``Title <target>`` -> Title, ``~a.b.C`` -> C, ``!x`` -> x."""
    m = re.match(r"(.*?)\s*<[^<>]*>$", content, re.DOTALL)
    if m and m.group(1):
        return m.group(1)
    content = content.lstrip("!")
    if content.startswith("~"):
        return content[1:].rsplit(".", 1)[-1]
    return content


def inline_text(text: str) -> str:
    """``text`` with its inline reST markup reduced to what the rendered page shows."""
    text = _ROLE.sub(lambda m: _role_text(m.group(1)), text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    text = _REF.sub(r"\1", text)
    text = _DEFAULT_ROLE.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _FOOTNOTE.sub("", text)
    text = _SUBSTITUTION.sub("", text)
    text = _NAMED_REF.sub(r"\1", text)
    text = text.replace("\\ ", "").replace("\\", "")
    text = re.sub(r"\s+::$", "", text)
    return re.sub(r"::$", ":", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_blocks(text: str) -> list[str]:
    """The paragraphs of a reST document, markup stripped, each joined onto one line."""
    lines = text.expandtabs().splitlines()
    blocks: list[str] = []
    current: list[str] = []
    current_indent = 0
    skip_deeper_than: int | None = None  # skip blank lines and lines indented more than this
    in_table = False
    in_directive_header = False

    def flush() -> None:
        if current:
            blocks.append(" ".join(current))
            current.clear()

    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = _indent(line)
        if skip_deeper_than is not None:
            if not stripped or indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if in_table:
            if _SIMPLE_TABLE.fullmatch(stripped):
                nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
                in_table = bool(nxt)  # a border followed by a blank line closes the table
            continue
        if not stripped:
            flush()
            in_directive_header = False
            continue
        if in_directive_header and _OPTION.match(stripped):
            continue  # a directive's option (":maxdepth: 2")
        in_directive_header = False
        if _SIMPLE_TABLE.fullmatch(stripped):
            flush()
            in_table = True
            continue
        if stripped.startswith("+-") or stripped.startswith("+="):
            flush()
            skip_deeper_than = indent - 1  # a grid table: up to the next blank line
            continue
        if _ADORNMENT.fullmatch(stripped):
            flush()  # a heading's over- or underline
            continue
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if not current and _ADORNMENT.fullmatch(nxt) and len(nxt) >= len(stripped) - 2:
            continue  # a heading's text
        if stripped.startswith(".."):
            flush()
            m = _DIRECTIVE.match(stripped)
            if m and m.group(1).lower() not in SKIPPED_DIRECTIVES and not stripped.startswith(".. |"):
                in_directive_header = True  # a prose directive: its body is read as text
            else:
                skip_deeper_than = indent  # a comment, target, substitution or code directive
            continue
        if stripped.startswith((">>>", "$ ")) or _GRID_TABLE.match(stripped) and stripped.endswith("|"):
            flush()
            skip_deeper_than = indent - 1
            continue
        if _OPTION.match(stripped) and not current:
            flush()  # a field list item (":param x: ...")
            skip_deeper_than = indent
            continue
        bullet = _BULLET.match(stripped)
        content_indent = indent + (bullet.end() if bullet else 0)
        if bullet or (current and indent != current_indent):
            flush()
        if not current:
            current_indent = content_indent
        current.append(stripped[bullet.end() :] if bullet else stripped)
        if stripped.endswith("::"):
            flush()
            skip_deeper_than = indent  # a literal block follows
    flush()
    return [inline_text(re.sub(r"\s+", " ", b)).strip() for b in blocks]


def rst_paragraphs(root: Path, label: str, *, suffixes: tuple[str, ...] = (".txt", ".rst")) -> list[prose.Paragraph]:
    """Prose paragraphs of the reST files under ``root`` (credit files and paragraphs left out)."""
    out, seen = [], set()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix not in suffixes or not path.is_file() or _CREDIT_FILES.search(rel) or "/_" in f"/{rel}":
            continue
        for block in rst_blocks(path.read_text(errors="replace")):
            if _CREDIT_DROP.search(block) or prose._CODE_LINE.match(block):
                continue
            if prose._is_prose(block) and block not in seen:
                seen.add(block)
                out.append(prose.Paragraph(f"{label}:{rel}", block))
    return out
