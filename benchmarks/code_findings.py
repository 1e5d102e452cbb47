#!/usr/bin/env python
"""Secrets and PII in real source code: false findings per 1,000 lines, before and after the
source rules, and recall on secrets and PII planted in a copy.

Usage: .venv/bin/python benchmarks/code_findings.py [--dir DIR] [--json PATH]

Held-out material: the source distributions of four permissively licensed packages from the
package index (requests 2.32.3 Apache-2.0, urllib3 2.2.3 MIT, click 8.1.7 BSD-3-Clause,
idna 3.10 BSD-3-Clause), fetched with ``pip download --no-deps --no-binary :all:`` into
``--dir`` (kept there for the next run). Each is read by the code loader
(``polyadapt.modalities.code.load_repository``: the files a run would train on) and every
file is scanned by the pattern scanners twice: as prose (the scanners alone, what a code run
did before) and as a source file (``polyadapt.governance.source_files.source_findings``).

Every finding either pass reported was read by hand; :data:`TRUE_FINDINGS` lists the true
ones by file, line and type (never the value): real people's addresses, public routable IP
addresses, and literal credentials in test files (``fixture``: a secret by the rule "a
literal is a secret", left to the policy's ``source.test_files``). Anything else is a false
finding. Private addresses are counted as false (no one's address outside a private network).

Recall: :func:`plant` writes real-looking secrets and PII (AWS key pairs, GitHub, Stripe and
generic API tokens, a PEM private key, passwords in database URLs and keyword arguments,
YAML/shell/JavaScript/Go assignments, emails, phone numbers, a public IP address) into a copy
of each package, in library code and in test files; a planted value is found when a finding of
its type overlaps it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import string
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sdists import fetch_sdists

PACKAGES = (("requests", "2.32.3"), ("urllib3", "2.2.3"), ("click", "8.1.7"), ("idna", "3.10"))

#: The true findings, by package: ``(path, line, type, kind)``; kind ``pii`` (a real person's
#: address, a public routable IP address) or ``fixture`` (a literal credential in a test).
#: Checked by reading each reported line of both passes; everything not listed is false:
#: documentation values (example.com/org, 192.0.2.x, 2001:db8::, the RFC 2732 IPv6 examples),
#: private addresses, version/date pairs in changelogs, base64 ``foo:bar``, ``user:pass`` URL
#: parts, self-naming placeholders (``keyfile_password``, ``badpass``), ``Hunter2@example.com``.
TRUE_FINDINGS: dict[str, tuple[tuple[str, int, str, str], ...]] = {
    "requests": (
        ("src/requests/__version__.py", 11, "email", "pii"),  # the author's address
        *(("tests/test_lowlevel.py", line, "email", "pii") for line in (137, 147, 200, 203, 247)),  # digest realm
    ),
    "urllib3": (
        ("docs/advanced-usage.rst", 379, "ip_address", "pii"),  # a public server's address
        ("docs/user-guide.rst", 98, "ip_address", "pii"),  # a client's public address in sample output
        *(("pyproject.toml", line, "email", "pii") for line in (13, 16, 17, 18)),  # maintainers
        ("src/urllib3/__init__.py", 48, "email", "pii"),
        *(("test/contrib/test_socks.py", line, "ip_address", "pii") for line in (276, 440, 481, 543, 583, 708)),
        *(("test/test_connectionpool.py", line, "ip_address", "pii") for line in (76, 77, 80, 81, 85, 86)),
        *(
            ("test/test_util.py", line, "ip_address", "pii")
            for line in (69, 70, 71, 72, 73, 75, 76, 78, 79, 82, 83, 86, 87, 120, 121, 123, 124)
        ),
        ("test/test_util.py", 295, "secret", "fixture"),  # auth="user%22:quoted"
        ("test/with_dummyserver/test_https.py", 212, "secret", "fixture"),  # key_password="letmein"
        ("test/with_dummyserver/test_socketlevel.py", 1219, "ip_address", "pii"),
    ),
    "click": (),
    "idna": (("pyproject.toml", 11, "email", "pii"),),
}


@dataclass
class Counts:
    """Findings of one pass over one package."""

    lines: int = 0
    test_lines: int = 0
    true: int = 0
    fixture: int = 0
    false: int = 0
    false_in_tests: int = 0
    false_by_type: Counter[str] | None = None


def fetch(directory: Path) -> dict[str, Path]:
    """Each package's unpacked source distribution under ``directory`` (downloaded when missing)."""
    return fetch_sdists(directory, PACKAGES)


def scan_files(root: Path, source: bool) -> list[tuple[str, str, list]]:
    """``(path, text, findings)`` per file the code loader reads, scanned as prose or as source."""
    from polyadapt.governance.scanners import pattern_scanners, resolve_overlaps
    from polyadapt.governance.source_files import ScanContext, source_findings
    from polyadapt.modalities.code import load_repository

    scanners = pattern_scanners()
    out = []
    for record in load_repository(root).records:
        text, path = record["text"], record["path"]
        found = [finding for scanner in scanners for finding in scanner.scan(text)]
        if source:
            found = source_findings(text, found, ScanContext("source", path))
        out.append((path, text, resolve_overlaps(found)))
    return out


def score(package: str, files: list[tuple[str, str, list]]) -> Counts:
    """The pass's findings against :data:`TRUE_FINDINGS`."""
    from polyadapt.governance.source_files import is_test_path

    truth = {(path, line, kind): label for path, line, kind, label in TRUE_FINDINGS[package]}
    counts = Counts(false_by_type=Counter())
    for path, text, findings in files:
        lines = text.count("\n") + 1
        counts.lines += lines
        counts.test_lines += lines if is_test_path(path) else 0
        for finding in findings:
            label = truth.get((path, text.count("\n", 0, finding.start) + 1, finding.type))
            if label == "pii":
                counts.true += 1
            elif label == "fixture":
                counts.fixture += 1
            else:
                counts.false += 1
                counts.false_in_tests += is_test_path(path)
                assert counts.false_by_type is not None
                counts.false_by_type[finding.type] += 1
    return counts


# ---------------------------------------------------------------------------------------
# Planted secrets and PII
# ---------------------------------------------------------------------------------------


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _password(rng: random.Random) -> str:
    return _random(rng, string.ascii_letters, 5) + _random(rng, string.digits, 3) + rng.choice("#!%&*") + "Q"


def _phone(rng: random.Random) -> str:
    import phonenumbers

    while True:
        number = f"+1 {rng.choice(['212', '415', '617', '312'])}-{rng.randint(201, 989)}-{rng.randint(1000, 9999)}"
        if "-555-" not in number and phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def _pem(rng: random.Random) -> str:
    body = "\\n".join(_random(rng, string.ascii_letters + string.digits + "+/", 64) for _ in range(6))
    return f"-----BEGIN RSA PRIVATE KEY-----\\n{body}\\n-----END RSA PRIVATE KEY-----"


def plant(root: Path, rng: random.Random) -> list[tuple[str, str, str]]:
    """Write planted values into the copy at ``root``; ``(path, type, value)`` for each."""
    b62 = string.ascii_letters + string.digits
    planted: list[tuple[str, str, str]] = []
    python_files = sorted(p for p in root.rglob("*.py") if "test" not in p.relative_to(root).as_posix())
    test_files = sorted(p for p in root.rglob("test_*.py"))
    targets = python_files[:3] + test_files[:2]
    for number, target in enumerate(targets):
        values = {
            "aws_id": "AKIA" + _random(rng, string.ascii_uppercase + "234567", 16),
            "aws_secret": _random(rng, b62 + "+/", 40),
            "github": "ghp_" + _random(rng, b62, 36),
            "stripe": "sk_live_" + _random(rng, b62, 24),
            "api_key": _random(rng, b62, 32),
            "db_password": _password(rng),
            "kw_password": _password(rng),
            "email": f"{rng.choice(['dana.whitfield', 'r.okafor', 'mchen'])}{number}@northwind-traders.io",
            "phone": _phone(rng),
            "ip": f"84.{rng.randint(1, 250)}.{rng.randint(1, 250)}.{rng.randint(1, 250)}",
            "pem": _pem(rng),
        }
        block = (
            "\n\n# planted by benchmarks/code_findings.py\n"
            f'AWS_ACCESS_KEY_ID = "{values["aws_id"]}"\n'
            f'aws_secret_access_key = "{values["aws_secret"]}"\n'
            f'GITHUB_TOKEN = "{values["github"]}"\n'
            f'stripe_api_key = "{values["stripe"]}"\n'
            f'API_KEY = "{values["api_key"]}"\n'
            f'DATABASE_URL = "postgresql://orders:{values["db_password"]}@db1.northwind-traders.io:5432/orders"\n'
            f'client = connect(user="deploy", password="{values["kw_password"]}")\n'
            f'SIGNING_KEY = """{values["pem"]}"""\n'
            f"# questions: {values['email']}, on call {values['phone']}\n"
            f'UPSTREAM = "http://{values["ip"]}:8080/"\n'
        )
        with target.open("a", encoding="utf-8") as handle:
            handle.write(block)
        path = target.relative_to(root).as_posix()
        kinds = {"email": "email", "phone": "phone", "ip": "ip_address"}
        values["pem"] = values["pem"].split("\\n")[1]  # a line of the key body: the file holds "\\n" escapes
        planted += [(path, kinds.get(key, "secret"), value) for key, value in values.items()]
    extra = {
        "deploy/values.yaml": ("database:\n  host: db1.internal\n  password: {p}\napi_token: {t}\n", "yaml"),
        "deploy/run.sh": ("#!/bin/sh\nexport DB_PASSWORD='{p}'\nexport SERVICE_TOKEN={t}\n", "shell"),
        "web/config.js": ('const apiKey = "{t}";\nconst db = {{ password: "{p}" }};\n', "js"),
        "cmd/main.go": ('package main\n\nfunc main() {{\n\ttoken := "{t}"\n\tdbPassword := "{p}"\n}}\n', "go"),
        "site/settings.py": (
            'DATABASES = {{"default": {{"USER": "app", "PASSWORD": "{p}"}}}}\n'
            'SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "{t}")\n',
            "python",
        ),
    }
    for relative, (template, _) in extra.items():
        password, token = _password(rng), _random(rng, b62, 40)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.format(p=password, t=token), encoding="utf-8")
        planted += [(relative, "secret", password), (relative, "secret", token)]
    return planted


def recall(root: Path, planted: list[tuple[str, str, str]], source: bool) -> tuple[int, list[tuple[str, str]]]:
    """How many planted values a finding of their type overlaps, and the ``(path, type)`` of those missed."""
    by_path = {path: (text, findings) for path, text, findings in scan_files(root, source)}
    found, missed = 0, []
    for path, kind, value in planted:
        text, findings = by_path.get(path, ("", []))
        start = text.find(value)
        end = start + len(value)
        if start >= 0 and any(f.type == kind and f.start < end and start < f.end for f in findings):
            found += 1
        else:
            missed.append((path, kind))
    return found, missed


def _per_1000(count: int, lines: int) -> float:
    return 1000 * count / lines if lines else 0.0


def main() -> None:
    """Fetch, scan, score, plant, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "polyadapt-code-findings")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    roots = fetch(args.dir)
    report: dict[str, dict] = {}
    totals = {"prose": Counts(false_by_type=Counter()), "source": Counts(false_by_type=Counter())}
    print(
        f"{'package':10} {'lines':>7} {'pass':7} {'true':>5} {'fixture':>7} {'false':>6} {'false/1k':>8} "
        f"{'non-test false/1k':>17}  false by type"
    )
    for name, root in roots.items():
        for mode in ("prose", "source"):
            counts = score(name, scan_files(root, mode == "source"))
            total = totals[mode]
            for attr in ("lines", "test_lines", "true", "fixture", "false", "false_in_tests"):
                setattr(total, attr, getattr(total, attr) + getattr(counts, attr))
            assert total.false_by_type is not None and counts.false_by_type is not None
            total.false_by_type.update(counts.false_by_type)
            report.setdefault(name, {})[mode] = _row(name, mode, counts)
    for mode, counts in totals.items():
        report.setdefault("all", {})[mode] = _row("all", mode, counts)

    rng = random.Random(args.seed)
    print("\nRecall on planted secrets and PII (a finding of the planted type overlaps the value):")
    planted_total = {"prose": [0, 0], "source": [0, 0]}
    with tempfile.TemporaryDirectory() as scratch:
        for name, root in roots.items():
            copy = Path(scratch) / name
            shutil.copytree(root, copy)
            planted = plant(copy, rng)
            for mode in ("prose", "source"):
                found, missed = recall(copy, planted, mode == "source")
                planted_total[mode][0] += found
                planted_total[mode][1] += len(planted)
                report[name][f"recall_{mode}"] = {"found": found, "planted": len(planted), "missed": missed}
                shown = f"; missed: {Counter(missed).most_common()}" if missed else ""
                print(f"  {name:10} {mode:7} {found}/{len(planted)}{shown}")
    for mode, (found, count) in planted_total.items():
        print(f"  {'all':10} {mode:7} {found}/{count} = {found / count:.3f}")
        report["all"][f"recall_{mode}"] = {"found": found, "planted": count}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _row(name: str, mode: str, counts: Counts) -> dict:
    non_test_lines = counts.lines - counts.test_lines
    row = {
        "lines": counts.lines,
        "test_lines": counts.test_lines,
        "true": counts.true,
        "fixture": counts.fixture,
        "false": counts.false,
        "false_per_1000_lines": round(_per_1000(counts.false, counts.lines), 3),
        "non_test_false_per_1000_lines": round(_per_1000(counts.false - counts.false_in_tests, non_test_lines), 3),
        "false_by_type": dict(sorted((counts.false_by_type or Counter()).items())),
    }
    print(
        f"{name:10} {counts.lines:7} {mode:7} {counts.true:5} {counts.fixture:7} {counts.false:6} "
        f"{row['false_per_1000_lines']:8.2f} {row['non_test_false_per_1000_lines']:17.2f}  {row['false_by_type']}"
    )
    return row


if __name__ == "__main__":
    main()
