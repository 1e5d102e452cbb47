"""False person names in technical prose, every paragraph and every finding listed (issue 13).

``pii_scan.py`` scans a spread sample of the prose set with every engine; this script runs only
``PersonNameScanner``, over all of it, and prints each person finding with its context, per
source, so that every false one can be read and classified. Sources:

* ``pydoc``, ``licence``, ``readme``: benchmarks/prose.py (the rules were tuned on these);
* ``doc-tune`` and ``doc-heldout``: docstring paragraphs of the standard library and of the
  installed packages (module, class and function docstrings read with ``ast``, nothing
  imported), filtered like README prose (no ``@``, URLs, credits, code lines; 200 characters
  or more, mostly letters), shuffled with a fixed seed and cut in two halves; rules are tuned
  on the first half only, the second is reported as held back.
* ``rst-tune`` and ``rst-heldout``: documentation prose nobody here tuned on, the reST files of
  the source distributions of Django (``docs/``) and Sphinx (``doc/``) at pinned versions
  (:data:`DOC_SDISTS`, fetched once into ``~/.cache/polyadapt/sdists``), markup stripped by
  :mod:`rst_prose` (release notes, change logs and author lists left out); each package's
  paragraphs shuffled with a fixed seed and cut in two halves like the docstrings.
* ``rst-extra``: more tuning material of the same kind, all the reST prose of Flask's and
  Celery's ``docs/`` (:data:`EXTRA_SDISTS`); it has no held-back half, the rst halves have.
  ``rst-heldout``'s findings were read in session 12, so since then it is tuning material too.
* ``rst-unseen``: the held-out figure since session 12, all the reST prose of pytest's
  ``doc/en``, Scrapy's ``docs/`` and Pyramid's ``docs/`` (:data:`UNSEEN_SDISTS`, no halves);
  its figure was recorded before the rules of that session were written, and its findings read
  only after they were final. Run it with ``--summary`` to get the figure without reading them.
  Its findings were read in session 13, so since then it is tuning material too.
* ``rst-fresh``: the held-out figure since session 13, all the reST prose of Alembic's
  ``docs/build``, setuptools' ``docs/`` and Twisted's ``docs/`` (:data:`FRESH_SDISTS`), measured
  with ``--summary`` before that session's rules; its findings were read after them (session 13),
  so it is tuning material since.
* ``rst-fresh2``: held out since then, all the reST prose of docutils' ``docs/``, Pygments'
  ``doc/``, Babel's ``docs/`` and urllib3's ``docs/`` (:data:`FRESH2_SDISTS`); read after the
  session-13 rules, so tuning material since.
* ``rst-fresh3``: held out since then, the reST prose of Cython's, pip's, Werkzeug's and
  Click's ``docs/`` (:data:`FRESH3_SDISTS`); read in session 14.
* ``rst-fresh4`` (SQLAlchemy's ``doc/build``) and ``rst-fresh5`` (the docs of sixteen smaller
  packages, gevent, networkx and Falcon among them): held out until session 14, measured with
  ``--summary`` before its rules; rst-fresh5 was read only after the rules written on rst-fresh4
  and the earlier sets, so it gave the held-out figure of that round; both are tuning material since.
* ``rst-fresh6`` (SymPy, pylint, IPython, lmfit, Invoke, numpydoc, Kombu, mistune docs): held
  out until session 14's second round of rules, read after it.
* ``rst-fresh7``: held out after that, the reST docs of seven small packages and the docstrings of
  six others (:data:`FRESH7_SDISTS`); the figure after session 14's third round.

Each source's line gives the false findings (spans) per 1,000 paragraphs and the paragraphs
with at least one false finding per 1,000 (issue 13's target is the latter: <= 1).

Docstring paragraphs are joined onto one line like README prose, so a definition list
(``Marshaller   Generate an ...``) reads as a sentence here. Findings of
:data:`prose.REAL_PEOPLE` count as right; other findings of real people must be judged by hand
(the script prints them all). Reading the site-packages docstrings takes a few minutes.

    .venv/bin/python benchmarks/ner_prose.py [--sources pydoc,licence,readme,doc-tune,doc-heldout,...]
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prose  # noqa: E402
import rst_prose  # noqa: E402
from sdists import fetch_sdists  # noqa: E402

SOURCES = (
    "pydoc",
    "licence",
    "readme",
    "doc-tune",
    "doc-heldout",
    "rst-tune",
    "rst-heldout",
    "rst-extra",
    "rst-unseen",
    "rst-fresh",
    "rst-fresh2",
    "rst-fresh3",
    "rst-fresh4",
    "rst-fresh5",
    "rst-fresh6",
    "rst-fresh7",
)
#: Source distributions whose reST documentation is the unseen prose: (name, version, docs folder).
DOC_SDISTS = (("Django", "5.1.4", "docs"), ("sphinx", "8.1.3", "doc"))
EXTRA_SDISTS = (("flask", "3.1.0", "docs"), ("celery", "5.4.0", "docs"))
#: Held-out documentation since session 12 (nobody tuned on it): all its paragraphs are scanned.
UNSEEN_SDISTS = (("pytest", "8.3.4", "doc/en"), ("scrapy", "2.12.0", "docs"), ("pyramid", "2.0.2", "docs"))
#: Held-out documentation since session 13, when rst-unseen's findings had been read.
FRESH_SDISTS = (("alembic", "1.14.0", "docs/build"), ("setuptools", "75.6.0", "docs"), ("twisted", "24.11.0", "docs"))
#: Held out after rst-fresh's findings were read in session 13.
FRESH2_SDISTS = (
    ("docutils", "0.21.2", "docs"),
    ("pygments", "2.18.0", "doc"),
    ("babel", "2.16.0", "docs"),
    ("urllib3", "2.2.3", "docs"),
)
#: Held out after rst-fresh2's findings were read in session 13.
FRESH3_SDISTS = (
    ("cython", "3.0.11", "docs"),
    ("pip", "24.3.1", "docs"),
    ("werkzeug", "3.1.3", "docs"),
    ("click", "8.1.7", "docs"),
)
#: Held out after rst-fresh3's findings were read in session 13; measured in session 14 before its rules.
FRESH4_SDISTS = (("sqlalchemy", "2.0.36", "doc/build"),)
#: Held out in session 14 like rst-fresh4, but read only after that session's rules were final.
FRESH5_SDISTS = (
    ("networkx", "3.6.1", "doc"),
    ("gevent", "26.9.0", "docs"),
    ("falcon", "4.4.0", "docs"),
    ("peewee", "4.5.3", "docs"),
    ("cffi", "2.1.1", "doc"),
    ("greenlet", "3.5.6", "docs"),
    ("pexpect", "4.9.0", "doc"),
    ("supervisor", "4.3.0", "docs"),
    ("zope_interface", "8.7", "docs"),
    ("tornado", "6.4.2", "docs"),
    ("coverage", "7.6.9", "doc"),
    ("gunicorn", "23.0.0", "docs/source"),
    ("mako", "1.3.8", "doc/build"),
    ("psycopg2", "2.9.10", "doc/src"),
    ("pyopenssl", "24.3.0", "doc"),
    ("waitress", "3.0.2", "docs"),
)
#: Held out after rst-fresh5's findings were read in session 14.
FRESH6_SDISTS = (
    ("sympy", "1.14.0", "doc"),
    ("pylint", "4.1.5", "doc"),
    ("ipython", "9.19.1", "docs"),
    ("lmfit", "1.0.2", "doc"),
    ("invoke", "3.0.3", "sites"),
    ("numpydoc", "1.10.0", "doc"),
    ("kombu", "5.7.0", "docs"),
    ("mistune", "3.4.0", "docs"),
)
#: In place of a docs folder: the docstrings of every ``.py`` file of the source distribution.
DOCSTRINGS = "*.py docstrings"
#: Held out after rst-fresh6's findings were read in session 14: reST docs of seven packages and,
#: to make the set large enough, the docstrings of six others (only their docstrings were read).
FRESH7_SDISTS = (
    ("python_docx", "1.2.0", "docs"),
    ("deform", "3.0.1", "docs"),
    ("simpy", "3.0.12", "docs"),
    ("pyqtgraph", "0.13.7", "doc/source"),
    ("ephem", "4.2.1", "ephem/doc"),
    ("PasteDeploy", "3.1.0", "docs"),
    ("webtest", "3.0.7", "docs"),
    ("pyomo", "6.10.1", DOCSTRINGS),
    ("ezdxf", "1.4.5", DOCSTRINGS),
    ("pyqtgraph", "0.13.7", DOCSTRINGS),
    ("mpmath", "1.3.0", DOCSTRINGS),
    ("gensim", "4.4.0", DOCSTRINGS),
    ("cvxpy", "1.9.3", DOCSTRINGS),
    ("skyfield", "1.55", DOCSTRINGS),
)
#: The sources scanned whole (no halves), by name, in the order they were held out.
WHOLE_SETS = {
    "rst-unseen": UNSEEN_SDISTS,
    "rst-fresh": FRESH_SDISTS,
    "rst-fresh2": FRESH2_SDISTS,
    "rst-fresh3": FRESH3_SDISTS,
    "rst-fresh4": FRESH4_SDISTS,
    "rst-fresh5": FRESH5_SDISTS,
    "rst-fresh6": FRESH6_SDISTS,
    "rst-fresh7": FRESH7_SDISTS,
}
SDIST_DIR = Path.home() / ".cache" / "polyadapt" / "sdists"
#: Made-up people that documentation examples name ("matches both Jane Doe and Jack Black"):
#: person names, so finding them is right; read by hand, counted with :data:`prose.REAL_PEOPLE`.
EXAMPLE_PEOPLE = frozenset(("Jane Doe", "Jack Black"))


def docstring_paragraphs(root: Path, *, skip: tuple[str, ...] = ()) -> list[prose.Paragraph]:
    """Prose paragraphs of the docstrings of the ``.py`` files under ``root`` (tests skipped)."""
    out, seen = [], set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(skip) or "/test" in rel or rel.startswith("test") or "polyadapt" in rel:
            continue
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for para in prose._paragraphs(ast.get_docstring(node) or ""):
                if prose._README_DROP.search(para) or any(prose._CODE_LINE.match(x) for x in para.splitlines()):
                    continue
                flat = re.sub(r"\s+", " ", para)
                if prose._is_prose(flat) and flat not in seen:
                    seen.add(flat)
                    out.append(prose.Paragraph(f"doc:{rel.split('/')[0]}", flat))
    return out


def docstring_halves(per_root: int, seed: int = 0) -> tuple[list[prose.Paragraph], list[prose.Paragraph]]:
    """(tune, held back): up to ``per_root`` shuffled paragraphs of each root in each half."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    tune, held = [], []
    for root, skip in ((stdlib, ("site-packages",)), (site, ())):
        paragraphs = docstring_paragraphs(root, skip=skip)
        random.Random(seed).shuffle(paragraphs)
        tune += paragraphs[:per_root]
        held += paragraphs[per_root : 2 * per_root]
    return tune, held


def rst_halves(seed: int = 0) -> tuple[list[prose.Paragraph], list[prose.Paragraph]]:
    """(tune, held back): each package's reST prose paragraphs shuffled and cut in two halves."""
    roots = fetch_sdists(SDIST_DIR, ((name, version) for name, version, _ in DOC_SDISTS))
    tune, held = [], []
    for name, _, docs in DOC_SDISTS:
        paragraphs = rst_prose.rst_paragraphs(roots[name] / docs, name.lower())
        random.Random(seed).shuffle(paragraphs)
        half = len(paragraphs) // 2
        tune += paragraphs[:half]
        held += paragraphs[half : 2 * half]
    return tune, held


def rst_extra() -> list[prose.Paragraph]:
    """Every reST prose paragraph of :data:`EXTRA_SDISTS` (tuning material only)."""
    roots = fetch_sdists(SDIST_DIR, ((name, version) for name, version, _ in EXTRA_SDISTS))
    return [p for name, _, docs in EXTRA_SDISTS for p in rst_prose.rst_paragraphs(roots[name] / docs, name)]


def rst_all(sdists: tuple[tuple[str, str, str], ...]) -> list[prose.Paragraph]:
    """Every reST prose paragraph of the docs folders of ``sdists`` ((name, version, folder)), or
    every docstring paragraph of the distribution where the folder is :data:`DOCSTRINGS`."""
    roots = fetch_sdists(SDIST_DIR, {(name, version) for name, version, _ in sdists})
    out = []
    for name, _, docs in sdists:
        if docs == DOCSTRINGS:
            out += docstring_paragraphs(roots[name])
        else:
            out += rst_prose.rst_paragraphs(roots[name] / docs, name.lower())
    return out


def main() -> None:
    """Scan the chosen sources and print every person finding, false ones first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated: " + ", ".join(SOURCES))
    parser.add_argument("--per-root", type=int, default=1500, help="docstring paragraphs per root and half")
    parser.add_argument("--summary", action="store_true", help="print each source's figures, not its findings")
    args = parser.parse_args()
    chosen = args.sources.split(",")
    sets: dict[str, list[prose.Paragraph]] = {}
    if "pydoc" in chosen:
        sets["pydoc"] = prose.python_reference_paragraphs()
    if "licence" in chosen:
        sets["licence"] = prose.licence_paragraphs()
    if "readme" in chosen:
        sets["readme"] = prose.readme_paragraphs()
    if "doc-tune" in chosen or "doc-heldout" in chosen:
        tune, held = docstring_halves(args.per_root)
        sets.update({k: v for k, v in (("doc-tune", tune), ("doc-heldout", held)) if k in chosen})
    if "rst-tune" in chosen or "rst-heldout" in chosen:
        tune, held = rst_halves()
        sets.update({k: v for k, v in (("rst-tune", tune), ("rst-heldout", held)) if k in chosen})
    if "rst-extra" in chosen:
        sets["rst-extra"] = rst_extra()
    for name, sdists in WHOLE_SETS.items():
        if name in chosen:
            sets[name] = rst_all(sdists)

    from polyadapt.governance.ner import PersonNameScanner

    scanner = PersonNameScanner()
    scanner.load()
    for name, paragraphs in sets.items():
        start = time.perf_counter()
        results = scanner.scan_many([p.text for p in paragraphs])
        false, real = [], []
        false_paragraphs = 0
        for p, findings in zip(paragraphs, results, strict=True):
            before = len(false)
            for f in findings:
                value = p.text[f.start : f.end]
                context = p.text[max(0, f.start - 60) : f.end + 60].replace("\n", "⏎")
                person = prose.is_real_person(value) or " ".join(value.split()) in EXAMPLE_PEOPLE
                (real if person else false).append(f"{p.source:<26} [{value}]  ...{context}...")
            false_paragraphs += len(false) > before
        n = len(paragraphs)
        print(
            f"== {name}: {n} paragraphs, {len(false)} person findings not in REAL_PEOPLE "
            f"({1000 * len(false) / max(n, 1):.1f} per 1,000) in {false_paragraphs} paragraphs "
            f"({1000 * false_paragraphs / max(n, 1):.1f} per 1,000), {len(real)} of REAL_PEOPLE or EXAMPLE_PEOPLE "
            f"({time.perf_counter() - start:.0f}s)"
        )
        for line in [] if args.summary else false:
            print("   ", line)


if __name__ == "__main__":
    main()
