#!/usr/bin/env python
"""PII scanner benchmark on an independent corpus: recall, precision, false findings, speed.

Usage: .venv/bin/python benchmarks/pii_scan.py [--records N] [--seed S] [--json PATH]

Engines, all run on the same generated records (benchmarks/pii_bench_corpus.py, written for
this benchmark, not derived from polyadapt's scanners nor tests/pii_corpus.py):

(a) polyadapt's pattern path, ``builtin_scanners()`` + ``scan_text``;
(b) the same plus the named-entity scanners (``PersonNameScanner``, ``StreetAddressScanner``)
    when they import and load;
(c) Presidio's ``AnalyzerEngine`` (spaCy ``en_core_web_sm`` from polyadapt's model cache when
    present, else its pattern recognizers with a no-op NLP engine), entity names mapped to ours;
(d) detect-secrets with its default plugins, scored on the secret type only.

A finding is correct when it overlaps a planted entity of the same type; a planted entity is
found when a finding of its type overlaps it. polyadapt also gets a stricter exact-span figure.
Then: false findings per 1,000 paragraphs of real prose (benchmarks/prose.py), what each engine
reports on the FSF-address licence paragraphs and on Debian copyright files, and speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_bench_corpus import TYPES, Record, make_corpus  # noqa: E402
from prose import (  # noqa: E402
    debian_copyright_files,
    fsf_address_paragraphs,
    is_real_person,
    licence_paragraphs,
    python_reference_paragraphs,
    readme_paragraphs,
)

Span = tuple[str, int, int]  # (type, start, end)

STRUCTURED = ("email", "phone", "payment_card", "iban", "national_id", "ip_address", "passport", "date_of_birth")
TARGETS: dict[str, tuple[float, float]] = {t: (0.97, 0.95) for t in STRUCTURED}
TARGETS["secret"] = (0.95, 0.95)
TARGETS["person"] = (0.85, 0.90)
TARGETS["address"] = (0.85, 0.90)
PROSE_TARGET_PER_1000 = 1.0
SPACY_MODEL = Path.home() / ".cache" / "polyadapt" / "models" / "en_core_web_sm-3.8.0"

PRESIDIO_MAP = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "payment_card",
    "IBAN_CODE": "iban",
    "US_SSN": "national_id",
    "UK_NINO": "national_id",
    "IP_ADDRESS": "ip_address",
    "PERSON": "person",
    "US_PASSPORT": "passport",
    "UK_PASSPORT": "passport",
    "DE_PASSPORT": "passport",
    "ES_PASSPORT": "passport",
    "IT_PASSPORT": "passport",
    "DATE_TIME": "date_of_birth",
    "LOCATION": "address",
}


# ---------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------


@dataclass
class Engine:
    """One scanner set under test: what it covers and how to scan a text."""

    name: str
    covers: tuple[str, ...] = ()
    scan: Callable[[str], list[Span]] | None = None
    note: str = ""
    load_seconds: float = 0.0
    slow: bool = False
    unavailable: tuple[str, ...] = ()  # types this engine should add but whose scanner did not load
    batch: Callable[[Sequence[str], Sequence[str]], list[list[Span]]] | None = None

    @property
    def available(self) -> bool:
        """True when the engine loaded and can scan."""
        return self.scan is not None or self.batch is not None

    def run(self, texts: Sequence[str], kinds: Sequence[str] | None = None) -> list[list[Span]]:
        """Findings for each text; ``kinds`` (record kinds) pick the file suffix for file-based engines."""
        if self.batch is not None:
            return self.batch(texts, kinds or ["txt"] * len(texts))
        assert self.scan is not None
        return [self.scan(t) for t in texts]


def polyadapt_regex() -> Engine:
    """polyadapt's default pattern scanners."""
    start = time.perf_counter()
    from polyadapt.governance.scanners import builtin_scanners, scan_text

    scanners = builtin_scanners()
    covers = tuple(sorted({t for s in scanners for t in s.types}))

    def scan(text: str) -> list[Span]:
        return [(f.type, f.start, f.end) for f in scan_text(text, scanners)]

    scan("warm-up +44 20 7946 0958 and +49 30 1234567 and 212-867-5309")
    names = ", ".join(type(s).__name__ for s in scanners)
    return Engine("polyadapt", covers, scan, f"builtin_scanners(): {names}", time.perf_counter() - start)


def polyadapt_new_secrets() -> Engine:
    """builtin_scanners() with the legacy secret scanner swapped for ``polyadapt.governance.secrets``.

    Shown only while builtin_scanners() still uses the legacy one: what wiring the new module in would give.
    """
    name = "polyadapt+secrets.py"
    start = time.perf_counter()
    from polyadapt.governance.scanners import builtin_scanners, scan_text

    scanners = builtin_scanners()
    legacy = [i for i, s in enumerate(scanners) if type(s).__module__.endswith(".scanners") and "secret" in s.types]
    if not legacy:
        return Engine(name, note="not shown: builtin_scanners() no longer uses the legacy secret scanner")
    try:
        from polyadapt.governance.secrets import SecretScanner

        scanners[legacy[0]] = SecretScanner()
    except Exception as exc:  # noqa: BLE001
        return Engine(name, note=f"not available ({type(exc).__name__}: {str(exc)[:80]})")

    def scan(text: str) -> list[Span]:
        return [(f.type, f.start, f.end) for f in scan_text(text, scanners)]

    scan("warm-up DB_PASSWORD=Winter2024! +44 20 7946 0958")
    covers = tuple(sorted({t for s in scanners for t in s.types}))
    note = "builtin_scanners() with polyadapt.governance.secrets.SecretScanner in place of the legacy one"
    return Engine(name, covers, scan, note, time.perf_counter() - start)


def polyadapt_ner() -> Engine:
    """polyadapt's pattern scanners plus the named-entity person and street-address scanners."""
    from polyadapt.governance.scanners import builtin_scanners, scan_text

    start = time.perf_counter()
    scanners = builtin_scanners()
    have = {t for s in scanners for t in s.types}
    added, missing = [], []
    for module, cls in (("ner", "PersonNameScanner"), ("addresses", "StreetAddressScanner")):
        try:
            mod = __import__(f"polyadapt.governance.{module}", fromlist=[cls])
            scanner = getattr(mod, cls)()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available", reported
            missing.append(f"{cls}: {type(exc).__name__}: {str(exc)[:80]}")
            continue
        if set(scanner.types) <= have:
            missing.append(f"{cls}: types already covered by builtin_scanners()")
            continue
        scanners.append(scanner)
        added.append(cls)
    name = "polyadapt+NER"
    if not added:
        return Engine(name, note="not available (" + "; ".join(missing) + ")")
    lost = tuple(
        t for cls, t in (("PersonNameScanner", "person"), ("StreetAddressScanner", "address")) if cls not in added
    )

    def scan(text: str) -> list[Span]:
        return [(f.type, f.start, f.end) for f in scan_text(text, scanners)]

    scan("Warm-up: Dr. Amara Okafor lives at 12 Kingsley Road, Manchester M14 6BR.")
    note = "builtin_scanners() + " + ", ".join(added) + ("; missing " + "; ".join(missing) if missing else "")
    covers = tuple(sorted({t for s in scanners for t in s.types}))
    return Engine(name, covers, scan, note, time.perf_counter() - start, slow=True, unavailable=lost)


def _spacy_model_dir() -> Path | None:
    if not SPACY_MODEL.is_dir():
        return None
    for config in sorted(SPACY_MODEL.rglob("config.cfg")):
        if (config.parent / "meta.json").exists() or (config.parent / "ner").is_dir():
            return config.parent
    return None


def presidio(threshold: float) -> Engine:
    """Presidio's AnalyzerEngine with its default registry plus the UK NINO and passport recognizers."""
    start = time.perf_counter()
    try:
        import tldextract.tldextract as tx

        tx.TLD_EXTRACTOR = tx.TLDExtract(suffix_list_urls=())  # bundled suffix list, no network
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer import predefined_recognizers as pr
        from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine
    except Exception as exc:  # noqa: BLE001
        return Engine("presidio", note=f"not available ({type(exc).__name__}: {exc})")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    model = _spacy_model_dir()
    if model is not None:
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(model)}])
        how = f"spaCy NER from {model}"
    else:
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        how = "pattern recognizers only, NER off (no spaCy model found)"
    analyzer = AnalyzerEngine(nlp_engine=nlp)
    extra = ["UkNinoRecognizer", "UkPassportRecognizer", "DePassportRecognizer", "EsPassportRecognizer"]
    extra += ["ItPassportRecognizer"]
    for cls in extra:
        analyzer.registry.add_recognizer(getattr(pr, cls)(supported_language="en"))
    unmapped: Counter[str] = Counter()

    def scan(text: str) -> list[Span]:
        out = []
        for r in analyzer.analyze(text=text, language="en", score_threshold=threshold):
            mapped = PRESIDIO_MAP.get(r.entity_type)
            if mapped is None:
                unmapped[r.entity_type] += 1
            else:
                out.append((mapped, r.start, r.end))
        return out

    scan("Warm-up: call Dr. Amara Okafor on +44 20 7946 0958.")
    unmapped.clear()
    mapping = ", ".join(f"{k}->{v}" for k, v in PRESIDIO_MAP.items())
    note = f"{how}; score_threshold={threshold}; added {', '.join(extra)}; mapped {mapping}"
    engine = Engine("presidio", tuple(sorted(set(PRESIDIO_MAP.values()))), scan, note, time.perf_counter() - start)
    engine.slow = model is not None
    engine.unmapped = unmapped  # type: ignore[attr-defined]
    return engine


_DS_SUFFIX = {"env": ".env", "yaml": ".yaml", "json": ".json", "code": ".py", "shell": ".sh"}


def detect_secrets_engine() -> Engine:
    """detect-secrets 1.5.0, default plugins and filters, each text scanned as a file.

    ``detect_secrets.core.scan.scan_file`` is the path its CLI takes: default plugins and
    filters, no eager search. ``scan_line`` is its ad-hoc string mode, which reports every
    token of a line as a candidate (``see``, ``db``), so it would measure nothing useful.
    """
    start = time.perf_counter()
    try:
        import detect_secrets
        from detect_secrets.core.scan import scan_file
        from detect_secrets.settings import default_settings
    except Exception as exc:  # noqa: BLE001
        return Engine("detect-secrets", note=f"not available ({type(exc).__name__}: {exc})")
    other: Counter[str] = Counter()

    def batch(texts: Sequence[str], kinds: Sequence[str]) -> list[list[Span]]:
        out: list[list[Span]] = []
        with tempfile.TemporaryDirectory() as tmp, default_settings():
            for i, (text, kind) in enumerate(zip(texts, kinds)):
                path = Path(tmp) / f"r{i}{_DS_SUFFIX.get(kind, '.txt')}"
                path.write_text(text)
                lines = text.split("\n")
                offsets = [0]
                for line in lines:
                    offsets.append(offsets[-1] + len(line) + 1)
                spans: list[Span] = []
                for secret in scan_file(str(path)):
                    if secret.type.startswith("Public IP"):
                        other[secret.type] += 1
                        continue
                    line = lines[secret.line_number - 1]
                    value = secret.secret_value or ""
                    at = line.find(value) if value else -1
                    base = offsets[secret.line_number - 1]
                    if at < 0:
                        spans.append(("secret", base, base + len(line)))
                    else:
                        spans.append(("secret", base + at, base + at + len(value)))
                out.append(spans)
        return out

    version = getattr(detect_secrets, "__version__", "") or _dist_version("detect-secrets")
    engine = Engine(
        "detect-secrets",
        ("secret",),
        None,
        f"detect-secrets {version}, default plugins via scan_file (IPPublicDetector findings left out of 'secret')",
        time.perf_counter() - start,
        batch=batch,
    )
    engine.other = other  # type: ignore[attr-defined]
    return engine


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


def scanner_seconds(texts: Sequence[str]) -> dict[str, float]:
    """Seconds each of builtin_scanners() takes over ``texts`` on its own (where the time goes)."""
    from polyadapt.governance.scanners import builtin_scanners

    out = {}
    for scanner in builtin_scanners():
        start = time.perf_counter()
        for text in texts:
            scanner.scan(text)
        out[type(scanner).__name__] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------


@dataclass
class Score:
    """Per-type counts for one engine on the labelled corpus, plus what went wrong."""

    records: int = 0
    planted: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    exact: Counter[str] = field(default_factory=Counter)
    exact_correct: Counter[str] = field(default_factory=Counter)
    reported: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    sub_planted: Counter[str] = field(default_factory=Counter)
    sub_found: Counter[str] = field(default_factory=Counter)
    false_by_cause: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    false_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    miss_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def recall(self, t: str) -> float | None:
        """Share of planted ``t`` entities found; None when none were planted."""
        return self.found[t] / self.planted[t] if self.planted[t] else None

    def precision(self, t: str) -> float | None:
        """Share of ``t`` findings that are correct; None when none were reported."""
        return self.correct[t] / self.reported[t] if self.reported[t] else None


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


def context(text: str, start: int, end: int, width: int = 60) -> str:
    """``width`` characters around ``text[start:end]``, the span in brackets, newlines shown as ⏎."""
    value = text[start:end]
    room = max(0, width - len(value) - 2)
    before = text[max(0, start - room // 2) : start]
    after = text[end : end + room - len(before)]
    return (before + "[" + value + "]" + after).replace("\n", "⏎")


def score(records: Sequence[Record], findings: Sequence[list[Span]], examples: int = 8) -> Score:
    """Count planted/found/reported/correct per type; attribute each false finding to its cause."""
    s = Score(records=len(records))
    for rec, found in zip(records, findings):
        for ent in rec.entities:
            s.planted[ent.type] += 1
            s.sub_planted[ent.subtype] += 1
            hits = [f for f in found if f[0] == ent.type and _overlaps(f[1], f[2], ent.start, ent.end)]
            if hits:
                s.found[ent.type] += 1
                s.sub_found[ent.subtype] += 1
                if any(f[1] == ent.start and f[2] == ent.end for f in hits):
                    s.exact[ent.type] += 1
            elif len(s.miss_examples[ent.type]) < examples:
                s.miss_examples[ent.type].append(f"{ent.subtype:<28} {context(rec.text, ent.start, ent.end)}")
        for t, a, b in found:
            s.reported[t] += 1
            if any(e.type == t and _overlaps(a, b, e.start, e.end) for e in rec.entities):
                s.correct[t] += 1
                if any(e.type == t and e.start == a and e.end == b for e in rec.entities):
                    s.exact_correct[t] += 1
                continue
            cause = next((f"near miss {m.kind}" for m in rec.near_misses if _overlaps(a, b, m.start, m.end)), None)
            if cause is None:
                other = next((e for e in rec.entities if _overlaps(a, b, e.start, e.end)), None)
                cause = f"inside planted {other.type}" if other else "other text"
            s.false_by_cause[t][cause] += 1
            if len(s.false_examples[t]) < examples:
                s.false_examples[t].append(f"{cause:<30} {context(rec.text, a, b)}")
    return s


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


def _f(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def _mark(engine: Engine, t: str, s: Score) -> str:
    if t in engine.unavailable:
        return "not available"
    if t not in engine.covers:
        return "n/a"
    r, p = s.recall(t), s.precision(t)
    want_r, want_p = TARGETS[t]
    ok = (r is not None and r >= want_r) and (p is None or p >= want_p)
    return "PASS" if ok else "MISS"


def print_table(engine: Engine, s: Score, exact: bool) -> None:
    """One engine's per-type table with targets."""
    head = f"{'type':<14}{'planted':>8}{'found':>7}{'recall':>8}{'reported':>9}{'correct':>8}{'precision':>10}"
    head += f"{'exact R':>9}{'exact P':>9}" if exact else ""
    print(head + f"{'target R/P':>12}  mark")
    for t in TYPES:
        line = (
            f"{t:<14}{s.planted[t]:>8}{s.found[t]:>7}{_f(s.recall(t)):>8}{s.reported[t]:>9}{s.correct[t]:>8}"
            f"{_f(s.precision(t)):>10}"
        )
        if exact:
            line += f"{_f(s.exact[t] / s.planted[t] if s.planted[t] else None):>9}"
            line += f"{_f(s.exact_correct[t] / s.reported[t] if s.reported[t] else None):>9}"
        want_r, want_p = TARGETS[t]
        print(line + f"{want_r:>7.2f}/{want_p:.2f}  {_mark(engine, t, s)}")
    extra = [t for t in s.reported if t not in TYPES]
    if extra:
        print("  other types reported: " + ", ".join(f"{t}={s.reported[t]}" for t in extra))


def side_by_side(engines: list[Engine], scores: dict[str, Score]) -> None:
    """Recall/precision per type, one column pair per engine."""
    cols = [e for e in engines if e.name in scores]
    print(f"{'type':<14}" + "".join(f"{e.name + ' (' + str(scores[e.name].records) + ')':>28}" for e in cols))
    print(f"{'':<14}" + "".join(f"{'recall  prec  mark':>28}" for _ in cols))
    for t in TYPES:
        row = f"{t:<14}"
        for e in cols:
            s = scores[e.name]
            cell = f"{_f(s.recall(t))} {_f(s.precision(t))} {_mark(e, t, s):>4}" if t in e.covers else _mark(e, t, s)
            row += f"{cell:>28}"
        print(row)


def print_diagnostics(s: Score, types: Sequence[str], limit: int) -> None:
    """Weakest subtypes, false findings by cause and examples, misses with context, for ``types``."""
    weak = [
        (s.sub_found[k] / n, k, n)
        for k, n in s.sub_planted.items()
        if n >= 3 and s.sub_found[k] / n < 0.97 and k.split(":")[0] in types
    ]
    if weak:
        print("  weakest shapes (recall < .97, at least 3 planted):")
        for r, k, n in sorted(weak)[: limit * 2]:
            print(f"    {k:<34} {s.sub_found[k]:>4}/{n:<4} {r:.2f}")
    for t in types:
        causes = s.false_by_cause.get(t)
        if causes:
            top = ", ".join(f"{c} {n}" for c, n in causes.most_common(5))
            print(f"  false {t} ({sum(causes.values())}): {top}")
            for ex in s.false_examples[t][:limit]:
                print(f"      {ex}")
    for t in types:
        if s.miss_examples.get(t):
            print(f"  missed {t} ({s.planted[t] - s.found[t]}):")
            for ex in s.miss_examples[t][:limit]:
                print(f"      {ex}")


# ---------------------------------------------------------------------------------------
# Prose and Debian copyright files
# ---------------------------------------------------------------------------------------


def prose_false(engine: Engine, paragraphs: list, limit: int) -> dict:
    """Findings per type on PII-free prose, per 1,000 paragraphs, with the first few examples."""
    texts = [p.text for p in paragraphs]
    start = time.perf_counter()
    found = engine.run(texts)
    seconds = time.perf_counter() - start
    counts: Counter[str] = Counter()
    examples: list[str] = []
    by_source: Counter[str] = Counter()
    real = 0
    for p, spans in zip(paragraphs, found):
        for t, a, b in spans:
            if t == "person" and is_real_person(p.text[a:b]):
                real += 1  # a real person named in the prose: a right finding, not a false one
                continue
            counts[t] += 1
            by_source[p.source.split(":")[0]] += 1
            if len(examples) < limit:
                examples.append(f"{t:<13} {p.source:<26} {context(p.text, a, b)}")
    n = len(paragraphs)
    return {
        "paragraphs": n,
        "seconds": seconds,
        "findings": dict(counts),
        "per_1000": {t: 1000 * c / n for t, c in counts.items()} if n else {},
        "by_source": dict(by_source),
        "examples": examples,
        "real_people_found": real,
    }


_ZIP4 = re.compile(r"\d{5}-\d{4}")


def scan_documents(engine: Engine, docs: list[tuple[str, str]], limit: int) -> dict:
    """Findings per type on whole documents; phone findings split into ZIP+4 shapes (false) and the rest."""
    start = time.perf_counter()
    found = engine.run([d[1] for d in docs])
    seconds = time.perf_counter() - start
    counts: Counter[str] = Counter()
    phone_zip4 = 0
    phone_examples: list[str] = []
    for (name, text), spans in zip(docs, found):
        for t, a, b in spans:
            counts[t] += 1
            if t != "phone":
                continue
            if _ZIP4.fullmatch(text[a:b].strip("() ")):
                phone_zip4 += 1
            if len(phone_examples) < limit:
                phone_examples.append(f"{name:<24} {context(text, a, b)}")
    return {
        "files": len(docs),
        "chars": sum(len(d[1]) for d in docs),
        "seconds": seconds,
        "findings": dict(counts),
        "phone_zip4": phone_zip4,
        "phone_examples": phone_examples,
    }


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def _quiet() -> contextlib.AbstractContextManager:
    return contextlib.redirect_stderr(io.StringIO())


def dataset_speed(seed: int, n: int) -> dict:
    """The pattern path as a run scans a dataset: worker processes (``Redactor.primed``'s path,
    their start-up counted) against one process, on the same ``n`` records."""
    from pii_bench_corpus import make_corpus

    from polyadapt.governance import parallel
    from polyadapt.governance.scanners import pattern_scanners

    texts = [r.text for r in make_corpus(n, seed + 1000)]
    scanners = pattern_scanners()
    workers = parallel.configured_workers()
    start = time.perf_counter()
    one = parallel.scan_each(scanners, texts)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    many = parallel.scan_in_processes(scanners, texts, workers) if workers > 1 else one
    many_s = time.perf_counter() - start
    rate = n / many_s
    method = parallel.start_method()
    print(
        f"  dataset path, {n:,} other records: 1 process {n / one_s:,.0f} records/s; {workers} processes "
        f"(this one and {workers - 1} {method}ed) {rate:,.0f} records/s ({one_s / many_s:.2f}x, "
        f"start-up included; same findings: {one == many})"
    )
    print(
        f"  target >= 2,000 records/s with {workers} process(es) on this machine: {'PASS' if rate >= 2000 else 'MISS'}"
    )
    return {
        "records": n,
        "workers": workers,
        "start_method": method,
        "one_process_per_s": n / one_s,
        "records_per_s": rate,
        "same": one == many,
    }


def main() -> None:
    """Generate the corpus, run every engine, print the tables and optionally write ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="labelled records to generate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--dataset-records", type=int, default=10000, help="records for the worker-process speed figure"
    )
    parser.add_argument("--presidio-records", type=int, default=500, help="score presidio on the first N records")
    parser.add_argument("--ner-records", type=int, default=500, help="score polyadapt+NER on the first N records")
    parser.add_argument("--presidio-threshold", type=float, default=0.0, help="presidio score_threshold (its default)")
    parser.add_argument(
        "--slow-prose", type=int, default=300, help="prose paragraphs (a spread sample) for NER engines"
    )
    parser.add_argument("--debian-files", type=int, default=390, help="Debian copyright files for pattern engines")
    parser.add_argument("--slow-debian-files", type=int, default=15, help="Debian copyright files for slow engines")
    parser.add_argument("--examples", type=int, default=5, help="examples to print per list")
    parser.add_argument("--skip", default="", help="comma-separated engines to skip: ner,presidio,detect-secrets")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()

    corpus = make_corpus(args.records, seed=args.seed)
    texts = [r.text for r in corpus]
    kinds = [r.kind for r in corpus]
    chars = sum(len(t) for t in texts)
    planted = Counter(e.type for r in corpus for e in r.entities)
    misses = Counter(m.kind for r in corpus for m in r.near_misses)
    print(
        f"corpus: {len(corpus)} records (seed {args.seed}), {chars:,} chars, "
        f"{sum(planted.values())} planted entities, {sum(misses.values())} near misses"
    )
    print("  kinds:   " + ", ".join(f"{k} {n}" for k, n in Counter(kinds).most_common()))
    print("  planted: " + ", ".join(f"{t} {planted[t]}" for t in TYPES))
    print("  near misses: " + ", ".join(f"{k} {n}" for k, n in misses.most_common()))

    with _quiet():
        engines = [polyadapt_regex()]
        new_secrets = polyadapt_new_secrets()
        if new_secrets.available or "not available" in new_secrets.note:
            engines.append(new_secrets)
        engines.append(polyadapt_ner() if "ner" not in skip else Engine("polyadapt+NER", note="skipped"))
        engines.append(
            presidio(args.presidio_threshold) if "presidio" not in skip else Engine("presidio", note="skipped")
        )
        engines.append(
            detect_secrets_engine() if "detect-secrets" not in skip else Engine("detect-secrets", note="skipped")
        )

    limits = {"polyadapt+NER": args.ner_records, "presidio": args.presidio_records}
    scores: dict[str, Score] = {}
    speed: dict[str, dict] = {}
    report: dict = {"corpus": {"records": len(corpus), "seed": args.seed, "chars": chars, "planted": dict(planted)}}
    report["corpus"]["near_misses"] = dict(misses)
    report["engines"] = {}
    for engine in engines:
        print(f"\n== {engine.name}: {engine.note}")
        report["engines"][engine.name] = {"note": engine.note, "available": engine.available}
        if not engine.available:
            print("   not available")
            continue
        n = min(limits.get(engine.name, len(corpus)), len(corpus))
        with _quiet():
            engine.run(texts[: 5 if engine.slow else 50], kinds[: 5 if engine.slow else 50])  # lazy loads, caches
            start = time.perf_counter()
            found = engine.run(texts[:n], kinds[:n])
            seconds = time.perf_counter() - start
        s = score(corpus[:n], found)
        scores[engine.name] = s
        speed[engine.name] = {
            "records": n,
            "seconds": seconds,
            "records_per_s": n / seconds,
            "mb_per_s": sum(len(t) for t in texts[:n]) / seconds / 1e6,
            "load_seconds": engine.load_seconds,
        }
        if n < len(corpus):
            print(f"   scored on the first {n} of {len(corpus)} records")
        print_table(engine, s, exact=engine.name.startswith("polyadapt"))
        unmapped = getattr(engine, "unmapped", None)
        if unmapped:
            print(
                "   presidio entities not mapped to a type here: " + ", ".join(f"{k} {v}" for k, v in unmapped.items())
            )
        other = getattr(engine, "other", None)
        if other:
            print("   left out of 'secret': " + ", ".join(f"{k} {v}" for k, v in other.items()))
        report["engines"][engine.name].update(
            {
                "records": n,
                "covers": list(engine.covers),
                "per_type": {
                    t: {
                        "planted": s.planted[t],
                        "found": s.found[t],
                        "recall": s.recall(t),
                        "reported": s.reported[t],
                        "correct": s.correct[t],
                        "precision": s.precision(t),
                        "exact_found": s.exact[t],
                        "exact_correct": s.exact_correct[t],
                        "mark": _mark(engine, t, s),
                    }
                    for t in TYPES
                },
                "subtypes": {k: {"planted": v, "found": s.sub_found[k]} for k, v in sorted(s.sub_planted.items())},
                "false_by_cause": {t: dict(c) for t, c in s.false_by_cause.items()},
                "false_examples": dict(s.false_examples),
                "miss_examples": dict(s.miss_examples),
                "unmapped_entities": dict(unmapped) if unmapped else {},
            }
        )

    print("\n== side by side (recall, precision; each engine on the record count in brackets)")
    side_by_side(engines, scores)

    by_name = {e.name: e for e in engines}
    if "polyadapt" in scores:
        print("\n== polyadapt: where it goes wrong")
        print_diagnostics(scores["polyadapt"], by_name["polyadapt"].covers, args.examples)
    if "polyadapt+NER" in scores:
        added = [t for t in by_name["polyadapt+NER"].covers if t not in by_name["polyadapt"].covers]
        print(f"\n== polyadapt+NER: where it goes wrong on the types NER adds ({', '.join(added)})")
        print_diagnostics(scores["polyadapt+NER"], added, args.examples)

    print("\n== speed (same records, one process; model load not counted)")
    base = speed.get("polyadapt", {}).get("records_per_s")
    for name, sp in speed.items():
        ratio = f"  polyadapt is {base / sp['records_per_s']:.1f}x this" if base and name != "polyadapt" else ""
        print(
            f"  {name:<21} {sp['records_per_s']:>9,.0f} records/s  {sp['mb_per_s']:6.2f} MB/s"
            f"  ({sp['records']} records, load {sp['load_seconds']:.1f}s){ratio}"
        )
    if base:
        print(
            f"  polyadapt in one process: {'at or above' if base >= 2000 else 'below'} 2,000 records/s "
            "(the target is the dataset path's, below: one process per core)"
        )
        per_scanner = scanner_seconds(texts)
        total = sum(per_scanner.values())
        print(
            "  polyadapt time by scanner: "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(per_scanner.items(), key=lambda kv: -kv[1]))
        )
        speed["polyadapt"]["scanner_seconds"] = per_scanner
    if base:
        speed["polyadapt_workers"] = dataset_speed(args.seed, args.dataset_records)
    for a, b in (("polyadapt+NER", "presidio"), ("polyadapt+NER", "detect-secrets"), ("presidio", "detect-secrets")):
        if a in speed and b in speed:
            print(f"  {a} / {b}: {speed[a]['records_per_s'] / speed[b]['records_per_s']:.2f}x")
    report["speed"] = speed

    with _quiet():
        sources = {
            "python reference": python_reference_paragraphs(),
            "licences": licence_paragraphs(),
            "README prose": readme_paragraphs(),
        }
    paragraphs = [p for ps in sources.values() for p in ps]
    print(
        f"\n== real prose without PII: {len(paragraphs)} paragraphs ("
        + ", ".join(f"{k} {len(v)}" for k, v in sources.items())
        + f"), {sum(len(p.text) for p in paragraphs):,} chars"
    )
    report["prose"] = {"paragraphs": {k: len(v) for k, v in sources.items()}, "engines": {}}
    prose_results = {}
    for engine in engines:
        if not engine.available:
            continue
        subset = paragraphs if not engine.slow else paragraphs[:: max(1, len(paragraphs) // args.slow_prose)]
        with _quiet():
            res = prose_false(engine, subset, args.examples * 2)
        prose_results[engine.name] = res
        report["prose"]["engines"][engine.name] = res
    if prose_results:
        names = list(prose_results)
        w = {n: max(16, len(n) + 2) for n in names}
        print(f"  false findings per 1,000 paragraphs{'':>3}" + "".join(f"{n:>{w[n]}}" for n in names))
        print(f"  {'paragraphs scanned':<38}" + "".join(f"{prose_results[n]['paragraphs']:>{w[n]}}" for n in names))
        for t in TYPES:
            row = "".join(f"{prose_results[n]['per_1000'].get(t, 0.0):>{w[n]}.1f}" for n in names)
            print(f"  {t:<38}{row}")
        total = "".join(f"{sum(prose_results[n]['per_1000'].values()):>{w[n]}.1f}" for n in names)
        print(f"  {'all types':<38}{total}")
        real = "".join(f"{prose_results[n].get('real_people_found', 0):>{w[n]}}" for n in names)
        print(f"  {'real people named (not counted above)':<38}{real}")
        for name in ("polyadapt", "polyadapt+NER"):
            if name in prose_results:
                worst = max(prose_results[name]["per_1000"].values(), default=0.0)
                mark = "PASS" if worst <= PROSE_TARGET_PER_1000 else "MISS"
                print(f"  target {name} <= {PROSE_TARGET_PER_1000:g} per 1,000 per type: {mark} (worst {worst:.1f})")
        for name, res in prose_results.items():
            if res["examples"]:
                print(f"  first false findings, {name}:")
                for ex in res["examples"][: args.examples * 2]:
                    print(f"      {ex}")

    with _quiet():
        fsf = fsf_address_paragraphs()
    print(f"\n== licence paragraphs with the FSF postal address ({len(fsf)}): findings per engine")
    report["fsf_address"] = {}
    for engine in engines:
        if engine.available and fsf:
            with _quiet():
                res = prose_false(engine, fsf, 3)
            report["fsf_address"][engine.name] = res
            found = ", ".join(f"{t} {n}" for t, n in sorted(res["findings"].items())) or "nothing"
            print(f"  {engine.name:<21} {found}")
            for ex in res["examples"][:3]:
                print(f"      {ex}")

    with _quiet():
        docs = debian_copyright_files()
    print(
        f"\n== Debian copyright files ({len(docs)} distinct, {sum(len(d[1]) for d in docs):,} chars): real "
        "holders' names and e-mails; phone findings there are false (e.g. ZIP+4 02110-1301)"
    )
    report["debian"] = {}
    for engine in engines:
        if not engine.available or not docs:
            continue
        n = args.slow_debian_files if engine.slow or engine.batch is not None else args.debian_files
        subset = docs if n >= len(docs) else docs[:: max(1, len(docs) // n)][:n]
        with _quiet():
            res = scan_documents(engine, subset, args.examples)
        report["debian"][engine.name] = res
        f = res["findings"]
        print(
            f"  {engine.name:<21} {res['files']:>4} files: person {f.get('person', 0)}, "
            f"phone {f.get('phone', 0)} (ZIP+4 shapes {res['phone_zip4']}), "
            f"email {f.get('email', 0)}, address {f.get('address', 0)}; all: "
            + ", ".join(f"{t} {c}" for t, c in sorted(f.items()))
            + f"  ({res['seconds']:.1f}s)"
        )
        for ex in res["phone_examples"][: args.examples]:
            print(f"      phone: {ex}")

    elapsed = time.perf_counter() - t0
    print(f"\ntotal time {elapsed:.0f}s")
    report["total_seconds"] = elapsed
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
