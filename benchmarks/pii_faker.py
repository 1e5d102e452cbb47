"""The pattern scanners on PII that Faker generates: values nobody here wrote, in seventeen locales.

``pii_scan.py`` scores a corpus built from this project's own templates; test-data generators
write values differently (numbers from reserved and unassigned ranges, ``x8100`` extensions,
multi-line addresses with the postcode on its own line, JCB cards from any 35xx range), and
held-out corpora are often built with them. This script asks Faker (``faker``, installed with
the ``bench`` extra; it is not a dependency of polyadapt) for addresses, phone numbers, e-mail
addresses, IBANs, card numbers, IPv4/IPv6 addresses, dates of birth and, for en_US, SSNs and
passport numbers, and the national numbers of five other countries (:data:`NATIONAL_IDS`),
places each value in a sentence frame, and scores:

* found: a finding of the value's type covers at least 80% of it (exact: starts and ends with it);
* other findings: any finding in the frame that is not the value (a false finding: the frames
  hold nothing else).

    .venv/bin/python benchmarks/pii_faker.py [--per-kind 150] [--seed 11] [--examples 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter, defaultdict

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT")
#: Locales added in session 12 to see how the rules hold beyond the ones they were written for:
#: the English-speaking countries, German and French Switzerland, Austria, Belgium, Quebec.
MORE_LOCALES = ("en_CA", "en_AU", "en_NZ", "en_IE", "en_IN", "de_AT", "de_CH", "fr_CH", "fr_CA", "nl_BE")
#: Faker value kind -> the polyadapt type that should report it.
TYPES = {
    "address": "address",
    "phone": "phone",
    "email": "email",
    "iban": "iban",
    "credit_card": "payment_card",
    "ipv4": "ip_address",
    "ipv6": "ip_address",
    "dob": "date_of_birth",
    "ssn": "national_id",
    "national_id": "national_id",
    "passport": "passport",
}
FRAMES = {
    "address": [
        "Please ship it to {v}.",
        "My new address is {v}",
        "Address:\n{v}\n",
        "{v}",
        "We moved to {v} last year.",
    ],
    "phone": ["Call me on {v}.", "Phone: {v}", "You can reach our office at {v} any time.", "{v}", "mobile {v}"],
    "email": ["Write to {v} today.", "Email: {v}", "cc {v}"],
    "iban": ["IBAN: {v}", "Please pay to {v}.", "account {v}"],
    "credit_card": ["Card: {v}", "paid with {v} yesterday", "{v}"],
    "ipv4": ["from {v}", "Client IP {v} blocked", "{v}"],
    "ipv6": ["from {v}", "host {v}"],
    "dob": ["Date of birth: {v}", "born on {v}", "DOB {v}"],
    "ssn": ["SSN: {v}", "social security number {v}", "my SSN is {v}."],
    "passport": ["Passport number: {v}", "passport {v}"],
}
#: Other countries' national numbers Faker writes with valid check digits: (Faker method, the
#: name people write before it). en_GB's "ssn" is left out: Faker writes NINOs with the prefix
#: ZZ, which HMRC never issues (the scanner reports issued shapes only), and en_IN's
#: "aadhaar_id": nine in ten of Faker's Aadhaar numbers fail the Verhoeff check every real one passes.
NATIONAL_IDS = {
    "en_CA": ("ssn", "SIN"),
    "fr_FR": ("ssn", "numéro de sécurité sociale"),
    "nl_NL": ("ssn", "BSN"),
    "it_IT": ("ssn", "codice fiscale"),
    "es_ES": ("nif", "DNI"),
}
NATIONAL_ID_FRAMES = ["{w}: {v}", "My {w} is {v}.", "National ID: {v}", "{w} {v}"]
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%B %d, %Y", "%d.%m.%Y")


def generate(per_kind: int, seed: int, locales: tuple[str, ...] = LOCALES) -> list[tuple[str, str, str, str]]:
    """(locale, kind, value, text) for ``per_kind`` values of each kind in each of ``locales``."""
    from faker import Faker

    rng = random.Random(seed)
    cases = []
    for locale in locales:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_kind):
            values = {
                "address": fake.address(),
                "phone": fake.phone_number(),
                "email": fake.email(),
                "iban": fake.iban(),
                "credit_card": fake.credit_card_number(),
                "ipv4": fake.ipv4_public(),
                "ipv6": fake.ipv6(),
                "dob": fake.date_of_birth().strftime(rng.choice(DATE_FORMATS)),
            }
            if locale == "en_US":
                values["ssn"] = fake.ssn()
                values["passport"] = fake.passport_number()
            for kind, value in values.items():
                cases.append((locale, kind, value, rng.choice(FRAMES[kind]).format(v=value)))
            if locale in NATIONAL_IDS:
                method, word = NATIONAL_IDS[locale]
                value = getattr(fake, method)()
                cases.append((locale, "national_id", value, rng.choice(NATIONAL_ID_FRAMES).format(w=word, v=value)))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=150, help="values per kind and locale")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--examples", type=int, default=3, help="missed values to print per row")
    parser.add_argument(
        "--locales", default="all", help="comma-separated Faker locales; 'all' (default), 'first' (the first seven)"
    )
    args = parser.parse_args()
    locales = {"all": LOCALES + MORE_LOCALES, "first": LOCALES}.get(args.locales) or tuple(args.locales.split(","))
    try:
        import faker  # noqa: F401
    except ImportError:
        print("Faker is not installed: .venv/bin/pip install -e '.[bench]' (or pip install faker)", file=sys.stderr)
        return 2
    from polyadapt.governance.scanners import pattern_scanners, scan_text

    cases = generate(args.per_kind, args.seed, locales)
    scanners = pattern_scanners()
    found: Counter[tuple[str, str]] = Counter()
    exact: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    other: Counter[tuple[str, str]] = Counter()
    missed: dict[tuple[str, str], list[str]] = defaultdict(list)
    start_time = time.perf_counter()
    for locale, kind, value, text in cases:
        key = (locale, kind)
        total[key] += 1
        at, end = text.index(value), text.index(value) + len(value)
        findings = scan_text(text, scanners)
        mine = [f for f in findings if f.type == TYPES[kind]]
        covered = sum(max(0, min(end, f.end) - max(at, f.start)) for f in mine)
        if covered >= 0.8 * (end - at):
            found[key] += 1
            exact[key] += any(f.start == at and f.end == end for f in mine)
        else:
            missed[key].append(value)
        other[key] += sum(1 for f in findings if f.end <= at or f.start >= end)
    seconds = time.perf_counter() - start_time

    print(f"Faker {faker.VERSION}: {len(cases):,} values, {args.per_kind} per kind and locale, seed {args.seed}")
    print(f"{'kind':12} {'locale':6} {'found':>9} {'recall':>7} {'exact':>6} {'false':>6}  missed, e.g.")
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for kind in TYPES:
        for locale in locales:
            key = (locale, kind)
            if not total[key]:
                continue
            n = total[key]
            by_kind[kind][0] += found[key]
            by_kind[kind][1] += n
            by_kind[kind][2] += other[key]
            examples = "; ".join(repr(v)[:48] for v in missed[key][: args.examples])
            print(
                f"{kind:12} {locale:6} {found[key]:>4}/{n:<4} {found[key] / n:7.2f} {exact[key] / n:6.2f} "
                f"{other[key]:>6}  {examples}"
            )
    print("\nper kind, all locales:")
    for kind, (hit, n, false) in by_kind.items():
        print(f"  {kind:12} recall {hit / n:.3f} ({hit}/{n}), false findings {false}")
    print(f"\n{len(cases) / seconds:,.0f} frames/s (short texts: one value each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
