#!/usr/bin/env python
"""Licences and copyright holders of real packages: ScanCode against the light fallback, and
ScanCode's time cold and cached.

Usage: .venv/bin/python benchmarks/code_licences.py [--dir DIR] [--json PATH]

Outside material: the source distributions of permissively licensed packages from the
package index (:data:`PACKAGES`, with the licence each declares), fetched with
``pip download --no-deps --no-binary :all:`` into ``--dir`` (kept there for the next run).
Each is read by the code loader (``polyadapt.modalities.code.load_repository``: the files a
run would keep, and the root's LICENSE file) twice with ScanCode, first with an empty cache
(cold: every file scanned) then again (cached: nothing scanned), and once with the fallback.
Printed per package and engine: the repository licence found, the rule and score, the
copyright holders, how many files carry a licence of their own, and the wall time. ScanCode
is found as a run finds it (``$POLYADAPT_SCANCODE``, ``.venv-scancode``, ``PATH``); without it
only the fallback's rows are printed, and the script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from sdists import fetch_sdists

#: (name, version, the licence the package declares).
PACKAGES = (
    ("boltons", "25.0.0", "BSD-3-Clause"),
    ("idna", "3.10", "BSD-3-Clause"),
    ("attrs", "24.2.0", "MIT"),
)


def fetch(directory: Path) -> dict[str, Path]:
    """Each package's unpacked source distribution under ``directory`` (downloaded when missing)."""
    return fetch_sdists(directory, ((n, v) for n, v, _ in PACKAGES))


def measure(root: Path, engine) -> dict:
    """One load of ``root`` with ``engine``: what it found and how long it took."""
    from polyadapt.modalities.code import load_repository

    start = time.perf_counter()
    dataset = load_repository(root, licence_engine=engine)
    seconds = time.perf_counter() - start
    report = dataset.report
    return {
        "engine": report.licence_engine,
        "licence": report.repository_licence,
        "source": report.licence_source,
        "rule": report.licence_rule,
        "score": report.licence_score,
        "holders": report.holders,
        "authors": report.authors,
        "files_kept": len(dataset.records),
        "files_with_own_licence": sum(1 for f in report.file_licences.values() if f.get("licence")),
        "file_licences": sorted({f["licence"] for f in report.file_licences.values() if f.get("licence")}),
        "scanned": getattr(engine, "scanned", None),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    """Fetch, load with each engine, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "polyadapt-code-licences")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    from polyadapt.modalities.code_licences import INSTALL_HINT, FallbackEngine, ScanCodeEngine, find_scancode

    roots = fetch(args.dir)
    executable = find_scancode()
    if executable is None:
        print(f"ScanCode is not installed ({INSTALL_HINT}): fallback rows only")
    rows = []
    with tempfile.TemporaryDirectory(prefix="polyadapt-licence-cache-") as cache:
        for name, version, declared in PACKAGES:
            runs = [("fallback", FallbackEngine())]
            if executable is not None:
                engine = ScanCodeEngine(executable, cache_dir=Path(cache), processes=os.cpu_count() or 1)
                runs = [("scancode cold", engine), ("scancode cached", engine), *runs]
            for label, engine in runs:
                found = measure(roots[name], engine)
                rows.append({"package": f"{name} {version}", "declared": declared, "run": label, **found})
    print(f"cores: {os.cpu_count()} (shared with whatever else runs)")
    print(
        f"{'package':15} {'declared':13} {'run':16} {'found':13} {'right':5} {'score':>5} {'files':>5} "
        f"{'scanned':>7} {'own':>4} {'s':>6}  holders"
    )
    for row in rows:
        right = "yes" if row["licence"] == row["declared"] else "NO"
        score = "-" if row["score"] is None else f"{row['score']:g}"
        scanned = "-" if row["scanned"] is None else str(row["scanned"])
        holders = ", ".join(row["holders"][:3]) + (f" (+{len(row['holders']) - 3})" if len(row["holders"]) > 3 else "")
        print(
            f"{row['package']:15} {row['declared']:13} {row['run']:16} {str(row['licence']):13} {right:5} "
            f"{score:>5} {row['files_kept']:>5} {scanned:>7} {row['files_with_own_licence']:>4} "
            f"{row['seconds']:>6}  {holders or '-'}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
