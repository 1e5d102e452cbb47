"""Real prose that nobody here wrote, for counting false findings of PII scanners.

Three PII-free sources, read from the local machine (no network):

* the Python language reference (``pydoc_data.topics.topics``), split on blank lines;
* the licence texts in ``/usr/share/common-licenses``; paragraphs that carry the Free
  Software Foundation's postal address are kept apart (:func:`fsf_address_paragraphs`), since
  a real (organisation's) address is in them;
* README prose from the ``METADATA`` of installed packages, where paragraphs that could hold
  real contact or attribution data are dropped: any ``@``, URL, ``copyright``/``(c)``,
  author/maintainer/thanks lines, and code blocks.

Every source keeps only paragraphs of at least 200 characters that are mostly letters, so
what is left is running text, not tables or code. README prose may still name people (credits,
a project's history): person findings of the names in :data:`REAL_PEOPLE` (reviewed by hand)
are counted as real names found, every other finding as false.

:func:`debian_copyright_files` returns the Debian copyright files, which do hold real names
and e-mail addresses of copyright holders: a separate check, not PII-free prose.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

LICENSE_DIR = Path("/usr/share/common-licenses")
DOC_DIR = Path("/usr/share/doc")
MIN_CHARS = 200
MIN_LETTER_SHARE = 0.75

_FSF_ADDRESS = re.compile(r"Franklin St|Temple Place|Mass Ave|Boston,? MA|02110|02111|02139", re.IGNORECASE)
_README_DROP = re.compile(
    r"@|https?://|www\.|copyright|\(c\)|©|author|maintain|thank|contributor|written by|created by|"
    r"developed by|e-?mail|contact|sponsor|funded",
    re.IGNORECASE,
)
_CODE_LINE = re.compile(r"^\s*(?:>>>|\$ |```|\.\. |    \S|\t|import |from \S+ import|pip install)")


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of prose and where it came from."""

    source: str
    text: str


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _is_prose(paragraph: str) -> bool:
    """Long enough and mostly letters (spaces and ordinary punctuation allowed)."""
    if len(paragraph) < MIN_CHARS:
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in paragraph)
    return letters / len(paragraph) >= MIN_LETTER_SHARE


def python_reference_paragraphs() -> list[Paragraph]:
    """Paragraphs of the Python language reference shipped with the interpreter."""
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        for para in _paragraphs(topics[name]):
            if _is_prose(para) and not any(_CODE_LINE.match(line) for line in para.splitlines()):
                out.append(Paragraph(f"pydoc:{name}", para))
    return out


def _licence_paragraphs() -> Iterable[tuple[str, str]]:
    seen: set[str] = set()
    if not LICENSE_DIR.is_dir():
        return
    for path in sorted(LICENSE_DIR.iterdir()):
        if not path.is_file():
            continue
        for para in _paragraphs(path.read_text(errors="replace")):
            para = re.sub(r"\s+", " ", para)
            if para in seen or not _is_prose(para):
                continue
            seen.add(para)
            yield path.name, para


def licence_paragraphs() -> list[Paragraph]:
    """Licence prose without the paragraphs that carry the FSF's postal address."""
    return [Paragraph(f"licence:{name}", p) for name, p in _licence_paragraphs() if not _FSF_ADDRESS.search(p)]


def fsf_address_paragraphs() -> list[Paragraph]:
    """Licence paragraphs that do carry the FSF's postal address (an organisation's address)."""
    return [Paragraph(f"licence:{name}", p) for name, p in _licence_paragraphs() if _FSF_ADDRESS.search(p)]


def _site_packages() -> Path | None:
    for entry in sys.path:
        if entry.endswith("site-packages") and Path(entry).is_dir():
            return Path(entry)
    return None


def readme_paragraphs(site_packages: Path | None = None) -> list[Paragraph]:
    """README prose from installed packages' ``METADATA`` descriptions, contact data filtered out.

    polyadapt's own distributions are left out: their README is written here, and it quotes the
    detectors' findings (a false name it reports on would be found in it again)."""
    root = site_packages or _site_packages()
    if root is None:
        return []
    out = []
    seen: set[str] = set()
    for meta in sorted(root.glob("*.dist-info/METADATA")):
        try:
            message = Parser().parsestr(meta.read_text(errors="replace"))
        except Exception:  # noqa: BLE001 - a broken METADATA file is skipped, not fatal
            continue
        body = message.get_payload()
        if not isinstance(body, str):
            continue
        package = meta.parent.name.split("-")[0]
        if package.startswith("polyadapt"):
            continue
        for para in _paragraphs(body):
            if _README_DROP.search(para) or any(_CODE_LINE.match(line) for line in para.splitlines()):
                continue
            flat = re.sub(r"\s+", " ", para)
            if not _is_prose(flat) or flat in seen:
                continue
            seen.add(flat)
            out.append(Paragraph(f"readme:{package}", flat))
    return out


#: Real people named in this prose (reviewed by hand: package authors and contributors in README
#: credits, Python's documentation thanking Raymond Hettinger): finding them is right, so they are
#: counted apart, not as false findings. Only names checked to be people belong here.
REAL_PEOPLE = frozenset(
    "Aaron Meurer|Adam Twardoch|Adrien Tétar|Andreas Seidel|Antoine Leca|Antonio Cavedoni|Behdad Esfahbod|"
    "Behnam Esfahbod|Brian Jorgensen|Chris Simpkins|Chris Wu|Colin Rofls|Cosimo Lupo|Dave Crossland|Dave Opstad|"
    "David Corbett|Denis Moyogo Jacquerye|Erik van Blokland|Fredrik Johansson|Frédéric Coiffier|Garret Rieger|"
    "Georg Seifert|Greg Hitchcock|Guido van Rossum|Rossum|Hannes Famira|Jack Jansen|Jason Gedge|Jelle Bosma|"
    "Jens Kutilek|Jeremie Hornus|John Hudson|Jushuanghui Li|Khaled Hosny|Laurence Penney|Liang Hai|Luis Figueroa|"
    "Masaya Nakamura|Mateusz Paprocki|Matt Fontaine|Miguel Sousa|Olivier Berten|Olli Meier|Ondřej Čertík|"
    "Paul Wise|Pearu Peterson|Peter Lofting|Petr van Blokland|Raymond Hettinger|Read Roberts|Rob Hagemans|"
    "Robert Schwarz|Roozbeh Pournader|Sam Fishman|Samyak Bhuta|Sascha Brawer|Simon Cozens|Takaaki Fuji|"
    "Tal Leming|Tom Byrer|Tom Kacvinsky|Vincent Connare|Vitaly Volkov|Werner Lemberg|Xie Huanyi|Yannis Haralambous|"
    "Zihan Dai|Peter Dekkers|Simon Daniels|Denis Jacquerye|John Gruber|Dmitri Mendeleev|"
    # docstrings (ner_prose doc-*): a NumPy developer, the author of the HTTPClient parser
    "Robert Kern|Ronald Tschalar|"
    # Django's documentation (ner_prose rst-*): its creators and contributors, and famous people
    # its examples name ("Helena Bonham Carter" is found as "Bonham Carter")
    "Jacob Kaplan-Moss|Adrian Holovaty|Simon Willison|Kurt Schwehr|Adam Johnson|Bob Marley|"
    "Helena Bonham Carter|Bonham Carter|"
    # Celery's documentation (ner_prose rst-extra): the author of a RabbitMQ plug-in
    "Michael Bridgen".split("|")
)


def is_real_person(value: str) -> bool:
    """True when ``value`` (a person finding in this prose) is one of :data:`REAL_PEOPLE`."""
    return " ".join(value.split()) in REAL_PEOPLE


def prose_paragraphs() -> list[Paragraph]:
    """Every PII-free paragraph: Python reference, licences (no FSF address), README prose."""
    return python_reference_paragraphs() + licence_paragraphs() + readme_paragraphs()


def debian_copyright_files(limit_bytes: int = 400_000) -> list[tuple[str, str]]:
    """(package, text) of each distinct ``/usr/share/doc/*/copyright`` file, each cut at ``limit_bytes``.

    These hold real copyright holders' names and e-mail addresses: a check of what the
    scanners do on real attribution text, not a PII-free set.
    """
    out = []
    seen: set[str] = set()
    if not DOC_DIR.is_dir():
        return out
    for path in sorted(DOC_DIR.glob("*/copyright")):
        try:
            data = path.read_bytes()[:limit_bytes]
        except OSError:
            continue
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        out.append((path.parent.name, data.decode("utf-8", errors="replace")))
    return out
