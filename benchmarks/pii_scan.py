#!/usr/bin/env python
"""PII scanner benchmark: recall and precision per type over the synthetic corpus, and speed.

Usage: python benchmarks/pii_scan.py [--records N] [--seed S]

The corpus (tests/pii_corpus.py) plants known entities of every built-in type among near
misses (Luhn-invalid cards, IBANs with wrong checksums, SSNs that are never issued, dates,
versions, order ids, ISBNs, CIDR networks, placeholder credentials). A finding counts as
correct when it overlaps a planted entity of the same type.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pii_corpus import TYPES, make_corpus, score
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners, scan_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    corpus = make_corpus(args.records, seed=args.seed)
    scanners = builtin_scanners()
    for record in corpus[:50]:  # load the phone metadata of every region first
        scan_text(record.text, scanners)

    start = time.perf_counter()
    findings = [scan_text(record.text, scanners) for record in corpus]
    scan_seconds = time.perf_counter() - start

    redactor = Redactor(Policy(), scanners, hash_key=b"k" * 32)
    start = time.perf_counter()
    for record in corpus:
        redactor.apply(record.text)
    redact_seconds = time.perf_counter() - start

    from pii_corpus import FILLER

    prose = [" ".join(FILLER[(i + j) % len(FILLER)] for j in range(4)) for i in range(len(corpus))]
    start = time.perf_counter()
    for text in prose:
        scan_text(text, scanners)
    prose_seconds = time.perf_counter() - start

    stats = score(corpus, findings)
    chars = sum(len(r.text) for r in corpus)
    misses = sum(r.near_misses for r in corpus)
    print(
        f"corpus: {len(corpus)} records, {chars} characters, "
        f"{sum(len(r.entities) for r in corpus)} planted entities, {misses} near misses (seed {args.seed})"
    )
    print(f"{'type':<14}{'planted':>9}{'found':>7}{'recall':>9}{'reported':>10}{'correct':>9}{'precision':>11}")
    for kind in TYPES:
        s = stats[kind]
        print(
            f"{kind:<14}{s['planted']:>9}{s['found']:>7}{s['recall']:>9.3f}"
            f"{s['reported']:>10}{s['correct']:>9}{s['precision']:>11.3f}"
        )
    planted = sum(stats[k]["planted"] for k in TYPES)
    found = sum(stats[k]["found"] for k in TYPES)
    reported = sum(s["reported"] for s in stats.values())
    correct = sum(s["correct"] for s in stats.values())
    print(
        f"{'all':<14}{planted:>9}{found:>7}{found / planted:>9.3f}{reported:>10}{correct:>9}{correct / reported:>11.3f}"
    )
    print(f"scan:   {len(corpus) / scan_seconds:,.0f} records/s ({chars / scan_seconds / 1e6:.2f} MB/s), one process")
    print(f"redact: {len(corpus) / redact_seconds:,.0f} records/s (strict policy, scan included)")
    prose_chars = sum(len(t) for t in prose)
    print(
        f"prose:  {len(prose) / prose_seconds:,.0f} records/s ({prose_chars / prose_seconds / 1e6:.2f} MB/s) "
        "on records of plain sentences without PII"
    )


if __name__ == "__main__":
    main()
