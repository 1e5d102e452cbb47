"""Licences and copyright holders of source files: ScanCode, else a light fallback.

:func:`licence_engine` picks the engine that :func:`~polyadapt.modalities.code.load_repository`
asks about every file it keeps and about the repository's ``LICENSE``/``COPYING`` files:

- :class:`ScanCodeEngine` runs ScanCode (``scancode-toolkit``, the detector ClearlyDefined's
  licence data comes from) in a subprocess from its own environment (``.venv-scancode``,
  made by ``scripts/setup.sh``: ScanCode needs ``pluggy<1.6``, which polyadapt's own
  environment does not pin). Each file gets the SPDX expression ScanCode detected, the
  rules it matched, the lowest match score, and the copyright holders and authors it found.
  Results are cached by the file's SHA-256 (under the state folder's ``cache/licences``, per
  ScanCode version): ScanCode takes seconds to start and about 0.25 s per file, and a file
  seen once is never scanned again.
- :class:`FallbackEngine` when ScanCode is not installed (or ``$POLYADAPT_SCANCODE=off``):
  an ``SPDX-License-Identifier`` tag, else the distinctive wording of the common licences
  (:data:`LICENCE_WORDING`) and ``Copyright`` lines. Its findings say ``engine: fallback``
  and carry no rule and no score, so nothing mistakes them for ScanCode's.

Where ScanCode is: ``$POLYADAPT_SCANCODE`` (the ``scancode`` executable), else
``.venv-scancode/bin/scancode`` in the current folder or the polyadapt checkout, else
``scancode`` on ``PATH``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol

from polyadapt.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.policy import Policy

#: The variable naming the ``scancode`` executable (``off``: always the fallback).
SCANCODE_ENV = "POLYADAPT_SCANCODE"
#: ScanCode's own environment, made by ``scripts/setup.sh``.
SCANCODE_VENV = ".venv-scancode"
#: What a licence finding counts as when ScanCode only saw a pointer to another file
#: ("see LICENSE"): the file then takes the repository's licence.
REFERENCE_ONLY = {"LicenseRef-scancode-unknown-license-reference"}
#: How to install ScanCode, for messages.
INSTALL_HINT = "run scripts/setup.sh (it makes .venv-scancode) or set $POLYADAPT_SCANCODE to a scancode executable"

#: (SPDX id, phrases that must all appear, lower case, whitespace collapsed), most specific
#: first. BSD-3-Clause is told from BSD-2-Clause by its third clause, which forbids using
#: the names of the holder or contributors "to endorse or promote products"; its wording of
#: who varies ("Neither the name of ...", "The names of the contributors may not be used").
LICENCE_WORDING: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AGPL-3.0-only", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0-only", ("gnu lesser general public license", "version 3")),
    ("GPL-3.0-only", ("gnu general public license", "version 3")),
    ("GPL-2.0-only", ("gnu general public license", "version 2")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "endorse or promote products")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("MIT", ("permission is hereby granted, free of charge", "the above copyright notice")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
)
SPDX_TAG = re.compile(r"SPDX-License-Identifier:\s*(?P<expr>[^\n*]+?)\s*(?:\*/|-->|$)", re.MULTILINE)
#: ``Copyright (c) 2013-2024, Jane Doe <jane@example.org>. All rights reserved.``: the holder
#: is what follows the years; "(c)", "©" or a year must come first (licence texts say "the
#: above copyright notice").
COPYRIGHT_LINE = re.compile(
    r"^\W*copyright\s+(?:(?:\(c\)|©)\s*(?:\d{4}[\d\s,\-–]*)?|\d{4}[\d\s,\-–]*)(?:by\s+)?(?P<holder>[^\n]+?)"
    r"\s*(?:<[^>\n]*>)?\s*(?:\.?\s*all rights reserved\.?)?\s*\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
HEAD_LINES = 30


@dataclass(frozen=True)
class LicenceFinding:
    """What a licence engine found in one file.

    ``licence`` is an SPDX expression (None: no licence text); ``rule`` the engine's
    matched rule ids and ``score`` its lowest match score (0-100), both None for the
    fallback; ``engine`` names the engine and its version (``scancode 32.5.0``,
    ``fallback``).
    """

    licence: str | None
    engine: str
    rule: str | None = None
    score: float | None = None
    holders: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    error: str | None = None

    @property
    def reference_only(self) -> bool:
        """The file only points to another file's licence ("see LICENSE")."""
        return self.licence is not None and set(re.split(r"\s+(?:AND|OR)\s+", self.licence)) <= REFERENCE_ONLY

    @property
    def own_licence(self) -> str | None:
        """The licence the file states itself: None when it states none or only points to
        another file; ``X AND <a pointer>`` is ``X`` (the pointer names the repository's)."""
        if self.licence is None or self.reference_only:
            return None
        if "(" in self.licence or " OR " in self.licence:
            return self.licence
        terms = [term for term in self.licence.split(" AND ") if term.strip() not in REFERENCE_ONLY]
        return " AND ".join(terms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the cache and the run records)."""
        return {
            "licence": self.licence,
            "engine": self.engine,
            "rule": self.rule,
            "score": self.score,
            "holders": list(self.holders),
            "authors": list(self.authors),
            **({"error": self.error} if self.error else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LicenceFinding:
        """The inverse of :meth:`to_dict`."""
        return cls(
            licence=data.get("licence"),
            engine=str(data.get("engine", "")),
            rule=data.get("rule"),
            score=data.get("score"),
            holders=tuple(data.get("holders") or ()),
            authors=tuple(data.get("authors") or ()),
            error=data.get("error"),
        )


class LicenceEngine(Protocol):
    """Finds the licence and copyright holders of files."""

    @property
    def name(self) -> str:
        """``scancode 32.5.0`` or ``fallback``."""
        ...

    def scan(self, files: dict[str, bytes]) -> dict[str, LicenceFinding]:
        """A finding for each of ``files`` (relative posix path -> content)."""
        ...


# ---------------------------------------------------------------------------------------
# The fallback
# ---------------------------------------------------------------------------------------


def spdx_tag(text: str) -> str | None:
    """The expression of the first ``SPDX-License-Identifier:`` tag in the first lines."""
    head = "\n".join(text.splitlines()[:HEAD_LINES])
    match = SPDX_TAG.search(head)
    return match.group("expr").strip() if match else None


def licence_from_wording(text: str) -> str | None:
    """The SPDX id a licence text names (a tag) or reads as (:data:`LICENCE_WORDING`)."""
    tagged = spdx_tag(text)
    if tagged:
        return tagged
    words = " ".join(text.lower().split())
    for spdx_id, phrases in LICENCE_WORDING:
        if all(phrase in words for phrase in phrases):
            return spdx_id
    return None


def copyright_holders(text: str, max_lines: int = 60) -> tuple[str, ...]:
    """The holders named by ``Copyright ...`` lines among the first ``max_lines`` lines, in order."""
    head = "\n".join(text.splitlines()[:max_lines])
    holders: list[str] = []
    for match in COPYRIGHT_LINE.finditer(head):
        holder = match.group("holder").strip(" ,.;")
        if holder and holder.lower() not in {"notice", "holders", "holder", "owner"} and holder not in holders:
            holders.append(holder)
    return tuple(holders)


def is_licence_file(path: str) -> bool:
    """Whether ``path`` is named like a licence text (``LICENSE``, ``COPYING.txt``...)."""
    return PurePosixPath(path).name.upper().startswith(("LICENSE", "LICENCE", "COPYING"))


class FallbackEngine:
    """Tags, licence wording (of licence files only) and ``Copyright`` lines; no rule, no score."""

    name = "fallback"

    def scan(self, files: dict[str, bytes]) -> dict[str, LicenceFinding]:
        """A finding for each file: its tag, or for a licence file its wording (a source file
        quoting "GNU General Public License" is not under it), and its ``Copyright`` lines."""
        found = {}
        for path, data in files.items():
            text = data.decode("utf-8", "replace")
            licence = licence_from_wording(text) if is_licence_file(path) else spdx_tag(text)
            found[path] = LicenceFinding(licence, self.name, holders=_unique(copyright_holders(text)))
        return found


# ---------------------------------------------------------------------------------------
# ScanCode
# ---------------------------------------------------------------------------------------


def find_scancode() -> Path | None:
    """The ``scancode`` executable (see the module docs), None when there is none or
    ``$POLYADAPT_SCANCODE`` is ``off``."""
    configured = os.environ.get(SCANCODE_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DataError(f"${SCANCODE_ENV}={configured}: not an executable file; {INSTALL_HINT}, or set it to off")
        return path
    checkout = Path(__file__).resolve().parents[1]  # modalities/ of a source checkout
    for base in (Path.cwd(), checkout):
        candidate = base / SCANCODE_VENV / "bin" / "scancode"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("scancode")
    return Path(found) if found else None


def _quiet_env() -> dict[str, str]:
    # typecode warns about libmagic on every start; nothing a user can act on here
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def scancode_version(executable: Path) -> str:
    """``32.5.0``: the version ``scancode --version`` prints; a DataError when it does not start."""
    try:
        proc = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, timeout=120, env=_quiet_env(), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"{executable}: ScanCode does not start ({exc}); {INSTALL_HINT}") from None
    match = re.search(r"ScanCode version:?\s*(\S+)", proc.stdout)
    if proc.returncode != 0 or not match:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"{executable}: ScanCode does not start: {last}; {INSTALL_HINT}")
    return match.group(1)


def finding_from_scancode(entry: dict[str, Any], engine: str) -> LicenceFinding:
    """One file's finding from its entry in ScanCode's JSON output (``files[]``)."""
    matches = [m for d in entry.get("license_detections") or [] for m in d.get("matches") or []]
    rules = sorted({str(m["rule_identifier"]) for m in matches if m.get("rule_identifier")})
    scores = [float(m["score"]) for m in matches if isinstance(m.get("score"), (int, float))]
    errors = entry.get("scan_errors") or []
    return LicenceFinding(
        licence=entry.get("detected_license_expression_spdx") or None,
        engine=engine,
        rule=", ".join(rules) or None,
        score=min(scores) if scores else None,
        holders=_unique(h.get("holder") for h in entry.get("holders") or []),
        authors=_unique(a.get("author") for a in entry.get("authors") or []),
        error="; ".join(str(e) for e in errors)[:500] or None,
    )


#: E-mail addresses in a holder or author: attribution needs the name, and the records
#: that keep these names are not redacted as file content is.
EMAIL = re.compile(r"\s*<?[\w.+-]+@[\w-]+(?:\.[\w-]+)+>?")


def _unique(values: Iterable[Any]) -> tuple[str, ...]:
    """Distinct names in order, without e-mail addresses."""
    seen: list[str] = []
    for value in values:
        name = EMAIL.sub("", value).strip(" ,;") if isinstance(value, str) else ""
        if name and name not in seen:
            seen.append(name)
    return tuple(seen)


@dataclass
class ScanCodeEngine:
    """ScanCode in a subprocess, with results cached by file hash (see the module docs)."""

    executable: Path
    cache_dir: Path | None = None
    processes: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    timeout_s: int = 3600
    version: str = ""
    #: Files scanned by the last :meth:`scan` (the rest came from the cache).
    scanned: int = 0

    def __post_init__(self) -> None:
        self.version = self.version or scancode_version(self.executable)
        if self.cache_dir is None:
            from polyadapt.lineage.state import state_dir

            self.cache_dir = state_dir() / "cache" / "licences"

    @property
    def name(self) -> str:
        """``scancode 32.5.0``."""
        return f"scancode {self.version}"

    def _cache_path(self, digest: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / f"scancode-{self.version}" / digest[:2] / f"{digest}.json"

    def scan(self, files: dict[str, bytes]) -> dict[str, LicenceFinding]:
        """A finding for each file: from the cache, else from one ScanCode run over the rest."""
        from polyadapt.fileio import atomic_write_text

        digests = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
        found: dict[str, LicenceFinding] = {}
        missing: dict[str, bytes] = {}
        for path, data in files.items():
            cached = self._cache_path(digests[path])
            try:
                found[path] = LicenceFinding.from_dict(json.loads(cached.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                missing[path] = data
        self.scanned = len(missing)
        if missing:
            for path, finding in self._run(missing).items():
                found[path] = finding
                target = self._cache_path(digests[path])
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, json.dumps(finding.to_dict()))
        return found

    def _run(self, files: dict[str, bytes]) -> dict[str, LicenceFinding]:
        with tempfile.TemporaryDirectory(prefix="polyadapt-scancode-") as work:
            root = Path(work) / "files"
            for path, data in files.items():
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            output = Path(work) / "scan.json"
            command = [
                str(self.executable),
                "--license",
                "--copyright",
                "--quiet",
                "--processes",
                str(self.processes),
                "--json",
                str(output),
                str(root),
            ]
            try:
                proc = subprocess.run(
                    command, capture_output=True, text=True, timeout=self.timeout_s, env=_quiet_env(), check=False
                )
            except subprocess.TimeoutExpired:
                raise DataError(
                    f"ScanCode took more than {self.timeout_s} s on {len(files)} files; exclude large generated "
                    f"folders with task_options.exclude, or set task_options.licence_engine: fallback"
                ) from None
            try:
                report = json.loads(output.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise DataError(f"ScanCode ({self.executable}) failed (exit {proc.returncode}): {last}") from None
        found = {}
        for entry in report.get("files") or []:
            if entry.get("type") != "file":
                continue
            relative = str(entry.get("path", "")).split("/", 1)[-1]  # ScanCode prefixes the folder's name
            if relative in files:
                found[relative] = finding_from_scancode(entry, self.name)
        for path in files.keys() - found.keys():  # never silently unscanned
            found[path] = LicenceFinding(None, self.name, error="not in ScanCode's output")
        return found


EngineChoice = Literal["auto", "scancode", "fallback"]


def licence_engine(choice: EngineChoice = "auto", field_name: str = "task_options.licence_engine") -> LicenceEngine:
    """The engine ``choice`` names: ``scancode`` (a DataError when it is not installed),
    ``fallback``, or ``auto`` (ScanCode when installed, else the fallback)."""
    if choice == "fallback":
        return FallbackEngine()
    executable = find_scancode()
    if executable is None:
        if choice == "scancode":
            raise DataError(f"{field_name}: scancode is set but ScanCode is not installed; {INSTALL_HINT}")
        return FallbackEngine()
    return ScanCodeEngine(executable)


# ---------------------------------------------------------------------------------------
# The policy, per file
# ---------------------------------------------------------------------------------------

Verdict = Literal["allow", "review", "deny"]
#: ScanCode's ids for licence text it could not name: a person has to read the file.
UNKNOWN_PREFIX = "licenseref-scancode-unknown"


def _keys(node: Any) -> set[str]:
    return {symbol.key.lower() for symbol in node.symbols}


def _satisfiable(node: Any, usable: set[str]) -> bool:
    """``A OR B`` needs either side usable, ``A AND B`` both."""
    from license_expression import AND, OR

    if isinstance(node, OR):
        return any(_satisfiable(arg, usable) for arg in node.args)
    if isinstance(node, AND):
        return all(_satisfiable(arg, usable) for arg in node.args)
    return node.render("{symbol.key}").lower() in usable


def licence_verdict(policy: Policy, licence: str | None, source: str) -> tuple[Verdict, str | None]:
    """Whether the policy allows a file under ``licence``, refuses it (``deny``, with the
    reason) or wants a person to look first (``review``, with the reason).

    ``licences.denied`` ids are refused even where ``allowed`` names them; ``licences.review``
    ids, and the licence text ScanCode could not name (``LicenseRef-scancode-unknown...``),
    need review; the rest is governance's :func:`~polyadapt.governance.engine.check_licence`
    (missing, invalid or not allowed: deny).
    """
    from polyadapt.errors import GovernanceError
    from polyadapt.governance.engine import check_licence
    from polyadapt.governance.policy import spdx_licensing

    rules = policy.licences
    denied = {item.lower() for item in getattr(rules, "denied", [])}
    review = {item.lower() for item in getattr(rules, "review", [])}
    licensing = spdx_licensing()
    parsed = None
    if licence:
        try:
            parsed = licensing.parse(licence)
        except Exception:  # noqa: BLE001 - check_licence below words the error
            parsed = None
    if parsed is not None:
        keys = _keys(parsed)
        allowed = {item.lower() for item in rules.allowed}
        if not _satisfiable(parsed, (allowed | review | keys) - denied):
            named = ", ".join(sorted(keys & denied))
            return "deny", f"{licence} is denied by policy {policy.name!r} (licences.denied: {named})"
        unknown = {key for key in keys if key.startswith(UNKNOWN_PREFIX)}
        if not _satisfiable(parsed, allowed - review - denied) and _satisfiable(
            parsed, (allowed | review | unknown) - denied
        ):
            why = ", ".join(sorted(keys & (review | unknown)))
            return "review", f"{licence} needs review under policy {policy.name!r} ({why})"
    try:
        check_licence(policy, licence, source)
    except GovernanceError as exc:
        return "deny", str(exc).split(": ", 1)[-1]
    return "allow", None
