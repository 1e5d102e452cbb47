"""A synthetic PII corpus with known planted entities and near misses.

Each :class:`CorpusRecord` is one text with the exact spans and types of the entities
planted in it, so a scanner can be scored: recall (planted entities found with the right
type) and precision (findings that are planted entities). The near misses look like PII
but are not: Luhn-invalid card numbers, IBANs with a wrong checksum, SSNs that can never
be issued (000, 666, 9xx areas, 00 groups, 0000 serials), dates, times, version strings,
order and invoice numbers, ISBNs, CIDR networks, placeholder credentials.

Everything is generated from a seed: the same seed, the same corpus. Used by
``tests/test_governance_scanners.py`` (floors) and ``benchmarks/pii_scan.py`` (figures).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

TYPES = ("email", "phone", "payment_card", "iban", "national_id", "ip_address", "secret")


@dataclass(frozen=True)
class Planted:
    """One planted entity: ``text[start:end]`` is a ``type``."""

    type: str
    start: int
    end: int


@dataclass
class CorpusRecord:
    """One text, the entities planted in it, and how many near misses it holds."""

    text: str
    entities: list[Planted] = field(default_factory=list)
    near_misses: int = 0


# ---------------------------------------------------------------------------------------
# Entity generators: each returns a valid value of its type
# ---------------------------------------------------------------------------------------

FIRST = ["john", "maria", "li", "ahmed", "sofia", "lukas", "amelie", "raj", "olga", "tom"]
LAST = ["smith", "garcia", "wang", "khan", "rossi", "muller", "dubois", "patel", "ivanova", "brown"]
DOMAINS = ["example.com", "mail.co.uk", "firma.de", "poste.fr", "uni-example.edu", "corp.example.org"]


def gen_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}{rng.randint(1, 99)}",
            f"{first[0]}_{last}",
            f"{first}+claims",
            f"{last}.{first}{rng.randint(1950, 2005)}",
        ]
    )
    if rng.random() < 0.3:
        local = local.capitalize()
    return f"{local}@{rng.choice(DOMAINS)}"


def gen_phone(rng: random.Random) -> str:
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    region = rng.choice(["US", "GB", "DE", "FR"])
    kind = rng.choice([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    national = str(example.national_number)
    for _ in range(200):
        digits = list(national)
        if region == "US":
            digits[:3] = list(rng.choice(["212", "415", "312", "617", "206", "303", "512"]))
            digits[3:6] = [str(rng.randint(2, 9)), str(rng.randint(0, 9)), str(rng.randint(0, 9))]
        for i in range(max(len(digits) - 4, 1), len(digits)):
            digits[i] = str(rng.randint(0, 9))
        candidate = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int("".join(digits)))
        if phonenumbers.is_valid_number(candidate):
            break
    else:  # pragma: no cover - the example number itself is valid
        candidate = example
    style = rng.choice(["national", "international", "e164"])
    if style == "international":
        return phonenumbers.format_number(candidate, PhoneNumberFormat.INTERNATIONAL)
    if style == "e164":
        return phonenumbers.format_number(candidate, PhoneNumberFormat.E164)
    text = phonenumbers.format_number(candidate, PhoneNumberFormat.NATIONAL)
    if region == "US" and rng.random() < 0.5:
        n = str(candidate.national_number)
        text = f"{n[:3]}-{n[3:6]}-{n[6:]}"
    return text


CARD_PREFIXES = [
    ("4", 16),
    ("4", 19),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("3530", 16),
    ("36", 14),
    ("62", 16),
]


def _card_digits(rng: random.Random) -> str:
    from stdnum import luhn

    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def _format_card(rng: random.Random, digits: str) -> str:
    sep = rng.choice([" ", "-", ""])
    if len(digits) == 15:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    if len(digits) == 14:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def gen_card(rng: random.Random) -> str:
    return _format_card(rng, _card_digits(rng))


IBAN_EXAMPLES = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "NL91ABNA0417164300",
    "CH9300762011623852957",
    "AT611904300234573201",
    "FR1420041010050500013M02606",
    "ES9121000418450200051332",
    "BE68539007547034",
    "IT60X0542811101000000123456",
]


def _random_iban(rng: random.Random) -> str:
    from stdnum import iban

    for _ in range(500):
        example = rng.choice(IBAN_EXAMPLES)
        bban = "".join(
            str(rng.randint(0, 9)) if ch.isdigit() and i >= 4 else ch for i, ch in enumerate(example[4:], start=4)
        )
        candidate = example[:2] + "00" + bban
        candidate = example[:2] + iban.calc_check_digits(candidate) + bban
        if iban.is_valid(candidate):
            return candidate
    return rng.choice(IBAN_EXAMPLES)  # pragma: no cover


def gen_iban(rng: random.Random) -> str:
    value = _random_iban(rng)
    if rng.random() < 0.5:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def _valid_ssn(rng: random.Random) -> tuple[str, str, str]:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def gen_national_id(rng: random.Random) -> str:
    if rng.random() < 0.75:
        area, group, serial = _valid_ssn(rng)
        sep = rng.choice(["-", "-", "-", " "])
        return f"{area}{sep}{group}{sep}{serial}"
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = [f"{rng.randint(0, 99):02d}" for _ in range(3)]
    sep = rng.choice([" ", ""])
    return f"{first}{second}{sep}{sep.join(digits)}{sep}{rng.choice('ABCD')}"


def gen_ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        while True:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            if not (address.is_unspecified or address.is_loopback or address.is_multicast or address.is_reserved):
                return str(address)
    if rng.random() < 0.5:
        return str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(16)))  # 2001:db8::xxxx
    return str(ipaddress.IPv6Address((0x2A00 << 112) | rng.getrandbits(100)))


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def gen_secret(rng: random.Random) -> tuple[str, str, str]:
    """(prefix, secret, suffix): only the middle is the planted span."""
    kind = rng.randrange(11)
    if kind == 0:
        return "", rng.choice(["AKIA", "ASIA"]) + _rand(rng, string.ascii_uppercase + string.digits, 16), ""
    if kind == 1:
        return "", rng.choice(["ghp_", "gho_"]) + _rand(rng, ALNUM, 36), ""
    if kind == 2:
        return "", "github_pat_" + _rand(rng, ALNUM + "_", 82), ""
    if kind == 3:
        return "", f"xox{rng.choice('bpa')}-{rng.randint(10**10, 10**11)}-{_rand(rng, ALNUM, 24)}", ""
    if kind == 4:
        return "", "sk-ant-api03-" + _rand(rng, B64URL, 40) + "AA", ""
    if kind == 5:
        return "", "sk-proj-" + _rand(rng, ALNUM, 24) + str(rng.randint(0, 9)) + _rand(rng, ALNUM, 23), ""
    if kind == 6:
        return "", "AIza" + _rand(rng, B64URL, 35), ""
    if kind == 7:
        return "", "sk_live_" + _rand(rng, ALNUM, 24), ""
    if kind == 8:
        token = ".".join(
            [
                _b64({"alg": "HS256", "typ": "JWT"}),
                _b64({"sub": str(rng.randint(1, 10**6)), "name": rng.choice(FIRST)}),
                _rand(rng, B64URL, 43),
            ]
        )
        return "", token, ""
    if kind == 9:
        body = "\n".join(_rand(rng, ALNUM + "+/", 64) for _ in range(3))
        return "", f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----", ""
    key = rng.choice(["password", "api_key", "secret", "token", "client_secret"])
    value = _rand(rng, ALNUM, rng.randint(8, 14)) + rng.choice(["!", "#", "9", "x"]) + _rand(rng, string.digits, 3)
    quote = rng.choice(['"', "'"])
    return f"{key} = {quote}", value, quote


# ---------------------------------------------------------------------------------------
# Near misses: look like PII, are not
# ---------------------------------------------------------------------------------------


def miss_card(rng: random.Random) -> str:
    digits = _card_digits(rng)
    wrong = str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    return _format_card(rng, digits[:-1] + wrong)


def miss_iban(rng: random.Random) -> str:
    value = _random_iban(rng)
    check = int(value[2:4])
    bad = f"{(check + rng.randint(1, 90)) % 97 + 2:02d}"
    if bad == value[2:4]:
        bad = f"{(check + 1) % 97 + 2:02d}"
    value = value[:2] + bad + value[4:]
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.5 else value


def miss_ssn(rng: random.Random) -> str:
    area, group, serial = _valid_ssn(rng)
    broken = rng.randrange(5)
    if broken == 0:
        area = "000"
    elif broken == 1:
        area = "666"
    elif broken == 2:
        area = f"9{rng.randint(0, 99):02d}"
    elif broken == 3:
        group = "00"
    else:
        serial = "0000"
    return f"{area}-{group}-{serial}"


def miss_date(rng: random.Random) -> str:
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice(
        [
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{m:02d}.{d:02d}.{y}",
            f"{y}/{m:02d}/{d:02d}",
            f"{y}-{m:02d}-{d:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
        ]
    )


def miss_version(rng: random.Random) -> str:
    a, b, c = rng.randint(0, 12), rng.randint(0, 30), rng.randint(0, 40)
    return rng.choice(
        [
            f"{a}.{b}.{c}",
            f"v{a}.{b}.{c}",
            f"version {a}.{b}.{c}.{rng.randint(0, 99)}",
            f"release {a}.{b}.{c}.{rng.randint(0, 999)}",
            f"{a}.{b}",
        ]
    )


def miss_order(rng: random.Random) -> str:
    return rng.choice(
        [
            f"ORD-{rng.randint(2015, 2030)}-{rng.randint(0, 999999):06d}",
            f"#{rng.randint(10**7, 10**8 - 1)}",
            f"INV-{rng.randint(0, 10**9 - 1):09d}",
            f"SKU-{rng.randint(10000, 99999)}-{rng.choice('ABCDEFGH')}",
            f"ticket {rng.randint(1000, 99999)}",
        ]
    )


def miss_isbn(rng: random.Random) -> str:
    from stdnum import ean

    body = rng.choice(["978", "979"]) + "".join(str(rng.randint(0, 9)) for _ in range(9))
    number = body + ean.calc_check_digit(body)
    if rng.random() < 0.5:
        return number
    return f"{number[:3]}-{number[3]}-{number[4:6]}-{number[6:12]}-{number[12]}"


def miss_misc(rng: random.Random) -> str:
    return rng.choice(
        [
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            f"10.{rng.randint(0, 255)}.0.0/16",
            "192.168.0.0/24",
            "127.0.0.1",
            'api_key = "<your-api-key>"',
            'password = "changeme"',
            "token: ${API_TOKEN}",
            f"${rng.randint(1, 999)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
            f"{rng.randint(10000, 99999)}",
            "std::vector<int>",
            f"{rng.randint(1, 99)} kg",
            f"{rng.randint(100, 999)}-{rng.randint(100, 999)}",
        ]
    )


GENERATORS: dict[str, Callable[[random.Random], object]] = {
    "email": gen_email,
    "phone": gen_phone,
    "payment_card": gen_card,
    "iban": gen_iban,
    "national_id": gen_national_id,
    "ip_address": gen_ip,
    "secret": gen_secret,
}

NEAR_MISSES: list[Callable[[random.Random], str]] = [
    miss_card,
    miss_iban,
    miss_ssn,
    miss_date,
    miss_version,
    miss_order,
    miss_isbn,
    miss_misc,
]

ENTITY_FRAMES = {
    "email": ["Please write to {} about the claim.", "Contact: {}", "The customer ({}) asked for a refund."],
    "phone": ["Call me on {} after five.", "Phone: {}", "You can reach the agent at {} tomorrow."],
    "payment_card": ["My card number is {} and it expires soon.", "Charge {} for the premium.", "Card: {}"],
    "iban": ["Transfer the refund to {} please.", "IBAN: {}", "The account {} belongs to the insured."],
    "national_id": ["My SSN is {} for the form.", "National insurance number {} on file.", "ID {} verified."],
    "ip_address": ["The login came from {} last night.", "Server {} refused the connection.", "IP: {}"],
    "secret": ["Use {} to authenticate.", "config: {}", "The key {} was committed by mistake."],
}
MISS_FRAMES = ["Reference {} is attached.", "See {} in the notes.", "Value: {}.", "It was logged as {} yesterday."]
FILLER = [
    "The policyholder filed a claim after the storm.",
    "An underwriter reviews the deductible and the premium.",
    "The adjuster visits the property next week.",
    "Coverage starts on the first day of the month.",
    "Thank you for your patience while we review the file.",
]


def make_corpus(n: int = 600, seed: int = 0, types: Sequence[str] = TYPES) -> list[CorpusRecord]:
    """``n`` records, each with 0-3 planted entities, 0-3 near misses and filler, from ``seed``."""
    rng = random.Random(seed)
    corpus = []
    for i in range(n):
        parts: list[tuple[str, str | None, tuple[str, str, str]]] = []
        # every type appears evenly: record i plants type i % len(types) plus 0-2 random ones
        kinds = [types[i % len(types)]] + rng.sample(list(types), rng.randint(0, 2))
        for kind in kinds:
            value = GENERATORS[kind](rng)
            prefix, middle, suffix = value if isinstance(value, tuple) else ("", value, "")
            parts.append(("entity", kind, (prefix, middle, suffix)))
        misses = rng.randint(0, 3)
        for _ in range(misses):
            parts.append(("miss", None, ("", rng.choice(NEAR_MISSES)(rng), "")))
        for _ in range(rng.randint(0, 2)):
            parts.append(("filler", None, ("", "", "")))
        rng.shuffle(parts)
        text, entities = "", []
        for role, kind, (prefix, middle, suffix) in parts:
            if text:
                text += " "
            if role == "filler":
                text += rng.choice(FILLER)
                continue
            frame = rng.choice(ENTITY_FRAMES[kind] if role == "entity" else MISS_FRAMES)
            before, after = frame.split("{}")
            text += before + prefix
            start = len(text)
            text += middle
            if role == "entity":
                entities.append(Planted(kind, start, len(text)))
            text += suffix + after
        corpus.append(CorpusRecord(text=text, entities=entities, near_misses=misses))
    return corpus


def score(corpus: Sequence[CorpusRecord], findings: Sequence[Sequence[object]]) -> dict[str, dict[str, float]]:
    """Per-type recall and precision of ``findings`` (one list of Finding per record).

    A planted entity is found when a finding of its type overlaps it; a finding is correct
    when it overlaps a planted entity of its type.
    """
    stats = {kind: {"planted": 0, "found": 0, "reported": 0, "correct": 0} for kind in TYPES}
    for record, found in zip(corpus, findings, strict=True):
        for entity in record.entities:
            stats[entity.type]["planted"] += 1
            if any(f.type == entity.type and f.start < entity.end and entity.start < f.end for f in found):
                stats[entity.type]["found"] += 1
        for f in found:
            entry = stats.setdefault(f.type, {"planted": 0, "found": 0, "reported": 0, "correct": 0})
            entry["reported"] += 1
            if any(e.type == f.type and f.start < e.end and e.start < f.end for e in record.entities):
                entry["correct"] += 1
    for entry in stats.values():
        entry["recall"] = entry["found"] / entry["planted"] if entry["planted"] else 1.0
        entry["precision"] = entry["correct"] / entry["reported"] if entry["reported"] else 1.0
    return stats
