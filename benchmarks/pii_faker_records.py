"""The pattern scanners on whole records that Faker writes: JSON, ``key: value`` lines, CSV rows.

``pii_faker.py`` puts one value in a sentence; datasets more often hold records, where the key
is the only context (``"ssn": "164 339 780"``, ``"birthdate": "1937-10-05"``), line breaks of
an address are escaped inside a JSON string (``...Locks\\nLake Kathy, UT 76496``) and a CSV row
has no keys at all. This script asks Faker (the ``bench`` extra) for ``profile()`` records (name,
job, company, address, residence, e-mail, SSN or national number, birth date, blood group,
username) plus a phone number and an IBAN, in several locales, writes each record in one of
three shapes and scores, per field:

* found: a finding of the field's type covers at least 80% of the value as written in the record;
* false: findings that touch none of those values (a job title or company taken for an address, ...).

A birth date or a national number without its key (the CSV shape) is not scored: by itself
``1937-10-05`` is any date. en_GB's ``ssn`` is left out (Faker writes NINOs with the prefix
ZZ, which HMRC never issues), as are the US-shaped ``ssn`` values of locales Faker has no
national number for (de_DE, es_ES: areas 9xx, never issued either).

    .venv/bin/python benchmarks/pii_faker_records.py [--per-locale 120] [--seed 9]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict

LOCALES = ("en_US", "en_GB", "en_CA", "en_AU", "de_DE", "fr_FR", "nl_NL", "it_IT", "es_ES")
#: Record field -> the polyadapt type that should report it.
FIELDS = {
    "mail": "email",
    "address": "address",
    "residence": "address",
    "phone": "phone",
    "iban": "iban",
    "birthdate": "date_of_birth",
    "ssn": "national_id",
}
#: Fields scored only where their key is written (JSON, ``key: value``), never in a CSV row.
KEYED_ONLY = {"birthdate", "ssn"}
#: Locales whose Faker ``ssn`` is a real national number of theirs.
REAL_SSN = {"en_US", "en_CA", "fr_FR", "nl_NL", "it_IT"}
SHAPES = ("json", "lines", "csv")


def records(per_locale: int, seed: int, locales: tuple[str, ...]) -> list[tuple[str, str, str, dict[str, str]]]:
    """(locale, shape, text, {field: value as written}) for ``per_locale`` records per locale."""
    from faker import Faker

    out = []
    for locale in locales:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for i in range(per_locale):
            profile = fake.profile()
            record = {
                key: str(value)
                for key, value in profile.items()
                if key not in ("current_location", "website") and (key != "ssn" or locale in REAL_SSN)
            }
            record["birthdate"] = profile["birthdate"].isoformat()
            record["phone"] = fake.phone_number()
            record["iban"] = fake.iban()
            shape = SHAPES[i % len(SHAPES)]
            if shape == "json":
                text = json.dumps(record, ensure_ascii=False, indent=1)
                written = {key: json.dumps(value, ensure_ascii=False)[1:-1] for key, value in record.items()}
            elif shape == "lines":
                text = "\n".join(f"{key}: {value}" for key, value in record.items())
                written = dict(record)
            else:
                written = {key: value.replace("\n", ", ") for key, value in record.items()}
                text = ",".join(f'"{value}"' if "," in value else value for value in written.values())
            out.append((locale, shape, text, written))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-locale", type=int, default=120)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--examples", type=int, default=3, help="missed values to print per row")
    args = parser.parse_args()
    try:
        import faker
    except ImportError:
        print("Faker is not installed: .venv/bin/pip install -e '.[bench]' (or pip install faker)", file=sys.stderr)
        return 2
    from polyadapt.governance.scanners import pattern_scanners, scan_text

    scanners = pattern_scanners()
    found: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    missed: dict[tuple[str, str], list[str]] = defaultdict(list)
    false: list[tuple[str, str, str]] = []
    cases = records(args.per_locale, args.seed, LOCALES)
    for locale, shape, text, written in cases:
        findings = scan_text(text, scanners)
        scored = []
        for field, kind in FIELDS.items():
            value = written.get(field)
            if value is None:
                continue
            at = text.find(value)
            end = at + len(value)
            scored.append((at, end))  # a finding here is no false one, scored or not
            if shape == "csv" and field in KEYED_ONLY:
                continue
            covered = sum(max(0, min(end, f.end) - max(at, f.start)) for f in findings if f.type == kind)
            total[(field, locale)] += 1
            if covered >= 0.8 * len(value):
                found[(field, locale)] += 1
            else:
                missed[(field, locale)].append(f"{shape}: {value}")
        for f in findings:
            if not any(f.start < end and f.end > at for at, end in scored):
                false.append((locale, f.type, text[f.start : f.end]))

    print(f"Faker {faker.VERSION}: {len(cases):,} records, {args.per_locale} per locale, seed {args.seed}")
    print(f"{'field':10} {'locale':6} {'found':>9} {'recall':>7}  missed, e.g.")
    by_field: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for field in FIELDS:
        for locale in LOCALES:
            n = total[(field, locale)]
            if not n:
                continue
            by_field[field][0] += found[(field, locale)]
            by_field[field][1] += n
            if found[(field, locale)] < n:
                examples = "; ".join(repr(v)[:56] for v in missed[(field, locale)][: args.examples])
                hit = found[(field, locale)]
                print(f"{field:10} {locale:6} {hit:>4}/{n:<4} {hit / n:7.2f}  {examples}")
    print("\nper field, all locales:")
    for field, (hit, n) in by_field.items():
        print(f"  {field:10} recall {hit / n:.3f} ({hit}/{n})")
    print(f"\nfindings touching no scored value: {len(false)}")
    for locale, kind, value in false[: args.examples * 5]:
        print(f"  {locale} {kind}: {value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
