"""The pattern scanners' fast paths give the answers of the slow forms they replace:
compiled phone validity against ``phonenumbers``, regexes rewritten to open with a character
class against their original spelling, cheap gates never closed where the pattern matches,
the IBAN checksum pre-test against ``stdnum``."""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from stdnum import iban

from polyadapt.governance import addresses, contact, financial, network, secrets, textfacts
from polyadapt.governance.phone_validity import is_valid_number

ALPHABET = "0123456789+( )-./\t\n:aAbBzZ_#~=@ékſ٣"


def _random_texts(rng: random.Random, n: int, alphabet: str = ALPHABET, longest: int = 40) -> list[str]:
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest))) for _ in range(n)]


def test_phone_validity_matches_phonenumbers_for_every_calling_code():
    rng = random.Random(7)
    numbers = []
    for code in [*sorted(COUNTRY_CODE_TO_REGION_CODE), 0, 999]:
        for _ in range(12):
            digits = rng.randint(4, 15)
            number = phonenumbers.PhoneNumber(
                country_code=code, national_number=rng.randrange(10 ** (digits - 1), 10**digits)
            )
            number.italian_leading_zero = rng.random() < 0.2
            numbers.append(number)
    for region in ("US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "JM", "IM", "RU", "KZ", "AU", "CC"):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            numbers += [
                phonenumbers.PhoneNumber(country_code=example.country_code, national_number=example.national_number + d)
                for d in (-1, 0, 1, 1000)
            ]
    answers = [(phonenumbers.is_valid_number(n), is_valid_number(n)) for n in numbers]
    assert all(theirs == ours for theirs, ours in answers)
    assert sum(theirs for theirs, _ in answers) > 50  # valid numbers were among them


@pytest.mark.parametrize(
    ("original", "rewritten", "whole"),
    [
        (r"\+?\(?\d[\d \t().\-/]{5,}\d", contact._PHONE_WINDOW, True),
        (
            r"(?<![\w-])--(?P<k>[A-Za-z][\w-]{1,60})[ \t]+(?P<q>[\"']?)(?P<v>[^\s\"']{1,300})(?P=q)",
            secrets._CLI_FLAG,
            True,
        ),
        (r"[0-9A-Fa-f]{3,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:", network._IPV6_HINT, False),
        (r"\d{4}[ \t]?[A-Z]{2}\b", addresses._NL_POSTCODE_GATE, False),
        (r"\d[A-Z]{2}\b", addresses._UK_POSTCODE_GATE, False),
    ],
)
def test_rewritten_patterns_match_what_their_original_spelling_matches(original, rewritten, whole):
    old = re.compile(original)
    rng = random.Random(11)
    alphabet = ALPHABET + "CDEFabcdef-" * 2 + "AB12 NL91 ABNA 0417 1643 00--x"
    texts = _random_texts(rng, 20_000, alphabet, 60) + [
        "NL91ABNA0417164300",
        "2001:0db8:85a3::",
        "1012 LG",
        "--token 'x1'",
    ]
    for text in texts:
        if whole:  # every match, span and groups
            assert [(m.span(), m.groups()) for m in old.finditer(text)] == [
                (m.span(), m.groups()) for m in rewritten.finditer(text)
            ], text
        else:  # used as a test only: whether it matches anywhere
            assert bool(old.search(text)) == bool(rewritten.search(text)), text


def test_iban_candidates_are_the_matches_of_the_original_pattern():
    old = re.compile(r"(?<![\w-])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,34}(?![\w])")
    rng = random.Random(13)
    alphabet = "NLGBDEnl0123456789 -_xX.éABNA"
    texts = _random_texts(rng, 30_000, alphabet, 60) + ["NL91ABNA0417164300 and de89 3704 0044 0532 0130 00"]
    for text in texts:
        assert financial._iban_candidates(text) == [(m.start(), m.group()) for m in old.finditer(text)], text


def test_the_iban_checksum_pretest_only_rejects_what_stdnum_rejects():
    rng = random.Random(3)
    candidates = ["NL91 ABNA 0417 1643 00", "de89370400440532013000", "GB82-WEST-1234-5698-7654-32"]
    for _ in range(3000):
        base = rng.choice(candidates)
        chars = list(base)
        chars[rng.randrange(len(chars))] = rng.choice("0123456789ABCXYZ -")
        candidates.append("".join(chars))
    for candidate in candidates:
        if financial._checksum_fails(candidate):
            assert not iban.is_valid(candidate.upper()), candidate
    assert not financial._checksum_fails("NL91 ABNA 0417 1643 00")


def test_address_gates_stay_open_wherever_their_pattern_matches():
    rng = random.Random(5)
    words = "12|4 bis|7,|rue|RUE|Avenue|av.|de la|Paix|Hauptstraße|Berliner|Str.|5|Weg|ring|Ring|3a|  |\t|\n|x|Allée|22"
    words = words.split("|")
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(20_000)]
    texts += ["12 rue de la Paix", "8   \t boulevard Saint-Michel", "Hauptstraße 5", "Berliner Str. 12a"]
    for text in texts:
        lower = text.lower()
        if addresses._FR_STREET.search(text) and textfacts.plain_case(text):
            assert addresses._french_type_after_number(lower), text
        if addresses._DE_STREET.search(text):
            assert addresses._word_before_number(text, addresses._DE_STREET_WORDS), text
        assert addresses._german_word_before_number(text, lower) == addresses._word_before_number(
            text, addresses._DE_STREET_WORDS
        ), text


def test_lowered_is_the_lower_case_text_and_plain_case_knows_the_four_exceptions():
    assert textfacts.lowered("Hello WORLD") == "hello world"
    assert textfacts.lowered("Straße") == "straße"
    assert textfacts.plain_case("PASSPORT no")
    assert textfacts.plain_case("Reisepaß Nr")
    for odd in textfacts.CASE_EXCEPTIONS:
        assert re.fullmatch("(?i)[a-z]", odd)  # the regex folds it to an ASCII letter ...
        assert not textfacts.plain_case(f"pa{odd}sport")  # ... so substring tests must not be trusted
    assert textfacts.first_at("a travel pass", ("pas", "travel")) == 2
    assert textfacts.first_at("nothing", ("pas", "travel")) == -1


_A = addresses
#: Each rewritten pattern (opened with a character class or its fixed prefix) and its original spelling.
_REWRITTEN = [
    (
        r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)?(?::[0-9A-Fa-f]{0,4}){2,7}"
        r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|/\d|\.\d)",
        network._IPV6_PATTERN,
    ),
    (
        rf"(?P<number>\d{{1,6}}[A-Za-z]?(?:[-/]\d{{1,5}}[A-Za-z]?)?)[ \t]+(?:{_A._DIRECTION}\.?[ \t]+)?"
        rf"(?P<name>(?:(?:{_A._CAP}|{_A._ORDINAL})[ \t]+){{1,4}}?)"
        rf"(?P<type>{_A._title_and_upper(f'{_A._SURE_TYPES}|{_A._WEAK_TYPES}|{_A._USPS_TYPES}')})"
        rf"\b\.?(?P<direction>[ \t]+{_A._DIRECTION}\b\.?)?",
        _A._US_STREET,
    ),
    (
        r"\b[Pp](?i:\.?[ \t]?O\.?[ \t]?Box|ost[ \t]+Office[ \t]+Box|O[ \t]+Box|ostfach)[ \t]+\d{1,7}\b",
        _A._PO_BOX,
    ),
    (
        rf"(?<![\w-])(?:{_A._CAP}[ \t]+)?(?:[A-ZÄÖÜ][\wäöüß-]*{_A._DE_SUFFIX}|"
        rf"[A-ZÄÖÜ][\wäöüß-]*-{_A._DE_CAPITAL_WORDS}|[A-ZÄÖÜ][\wäöüß-]*[ \t]+{_A._DE_CAPITAL_WORDS})"
        rf"[ \t]*(?P<number>\d{{1,4}}[a-z]?(?:[-/]\d{{1,4}}[a-z]?)?)(?![\w.,]\d)",
        _A._DE_STREET,
    ),
    (
        _A._FR_STREET.pattern.replace(r"(?P<number>\d\d{0,3})", r"(?P<number>\d{1,4})", 1),
        _A._FR_STREET,
    ),
    (
        r"(?<![\w-])[A-Z][\w-]*(?:straat|gracht|weg|laan|plein|kade|dijk|singel|steeg|markt|park|hof|baan|dreef|boulevard)"
        r"[ \t]+(?P<number>\d{1,4}[a-zA-Z]?(?:-\d{1,4})?)(?![\w.,]\d)",
        _A._NL_STREET,
    ),
    (
        rf"(?<![\w-])(?:{_A._CAP}[ \t]+){{0,2}}{_A._CAP}[ \t]+\d{{1,4}}[a-zA-Z]?(?:-\d{{1,4}})?"
        rf",?[ \t]*\n?[ \t]*\d{{4}}[ \t]?[A-Z]{{2}}[ \t]+{_A._CITY}",
        _A._NL_POSTCODE_ADDRESS,
    ),
    (
        rf"(?<![\w-])\d{{1,4}}[A-Z]?[ \t]+(?:{_A._CAP}[ \t]+){{0,3}}{_A._CAP}"
        rf",?[ \t]*\n?[ \t]*(?:{_A._CITY},?[ \t]+)?{_A._UK_POSTCODE}\b",
        _A._UK_POSTCODE_ADDRESS,
    ),
]
_RULE = {rule.name: rule.pattern for rule in secrets._RULES}
_REWRITTEN += [
    (r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", _RULE["aws-access-key-id"]),
    (r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b", _RULE["github"]),
    (r"\bxox[abeoprs]-[A-Za-z0-9-]{10,250}", _RULE["slack"]),
    (r"\bnpm_[A-Za-z0-9]{36}\b", _RULE["npm"]),
    (r"(?<![\w-])sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,250}", _RULE["openai"]),
    (r"\bsk-ant-[A-Za-z0-9_-]{20,250}", _RULE["anthropic"]),
    (r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{8,}", _RULE["jwt"]),
    (r"\bSK[0-9a-fA-F]{32}\b", _RULE["twilio"]),
    (r"\bkey-[0-9a-zA-Z]{32}\b", _RULE["mailgun"]),
]
_SOUP = (
    "12|4 bis|221B|7,|1600|30|0|A|Main|Street|St|St.|Court|Way|NW|N|Apt 4B|"
    "HWY|parkway|Brooks|Am Markt|-Straße|po box|Oak|Baker|34th|Queen's|Saint-Michel|"
    "rue|RUE|de la|Paix|Hauptstraße|Berliner|Str.|Weg|Ring|Lindenallee|Keizersgracht|Damrak|1012 LG|1012LG|"
    "Amsterdam|London|EC3A 8BF|SW1A 2AA|P.O. Box|PO Box|Postfach|xPO|Ä|Über|é|-|_|\n|\t|  |,|:|.|"
    "2a02:810d|::|::1|fe80|ffff|1.2.3.4|:eb6d|ab:cd|"
    "Damrak 1, 1012 LG Amsterdam|Ab Cd 12a,\n1012LG Den Haag|30 St Mary Axe, London EC3A 8BF|Hauptstraße 5|"
    "12 rue de la Paix|8 boulevard Saint-Michel|P.O. Box 12|"
    "AKIA2OGYBAH6STMJ2XQ4|ghp_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5|xoxb-123456789012-aB3dE5gH7jK9|"
    "npm_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5|sk-proj-aB3dE5gH7jK9mN1pQ3sT5vX7|sk-ant-api03-aB3dE5gH7jK9mN1pQ3sT5|"
    "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.aB3dE5gH7jK9|SK0123456789abcdef0123456789abcdef|"
    "key-aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI|"
    "AKIA|ABCDEFGHIJKLMNOP|0123456789abcdef|ghp_|xoxb-|npm_|sk-|sk-ant-|proj-|eyJ|eyJhbGciOi|SK|key-|x|_"
).split("|")


@pytest.mark.parametrize(("original", "rewritten"), _REWRITTEN, ids=[p.pattern[:24] for _, p in _REWRITTEN])
def test_patterns_opened_with_a_class_or_prefix_match_what_their_original_spelling_matches(original, rewritten):
    old = re.compile(original)
    assert old.pattern != rewritten.pattern
    rng = random.Random(13)
    texts = [
        "".join(rng.choice(_SOUP) + rng.choice(("", " ", " ", "\n", ", ")) for _ in range(rng.randint(1, 12)))
        for _ in range(6_000)
    ] + _random_texts(rng, 3_000, ALPHABET + "ABCDEFGHIJKLMNOPRSTabcdef" * 2, 60)
    matched = 0
    for text in texts:
        theirs = [(m.span(), m.groups()) for m in old.finditer(text)]
        assert theirs == [(m.span(), m.groups()) for m in rewritten.finditer(text)], text
        matched += bool(theirs)
        start = len(text) // 3  # a search that starts inside the text sees what lies before it
        assert (m.span() if (m := old.search(text, start)) else None) == (
            m.span() if (m := rewritten.search(text, start)) else None
        ), text
    assert matched > 10, "the texts never exercised the pattern"


def test_phone_and_reference_words_are_found_after_the_last_digit_as_anywhere():
    rng = random.Random(17)
    words = "tel|Tel.|phone|call me on|ring|order|Order no.|ref:|invoice #|id|policy|☎|_fax|x|12|3|\n| |  |:|,|é|ſ"
    words = words.split("|")
    texts = ["".join(rng.choice(words) for _ in range(rng.randint(0, 10))) for _ in range(20_000)]
    hits = 0
    for text in texts:
        start = len(text)
        window = text[max(0, start - 40) : start]
        phone = contact._PHONE_WORD.search(window) is not None
        reference = contact._REFERENCE_WORD.search(window) is not None
        assert contact._phone_word_before(text, start) == phone, text
        assert contact._reference_word_before(text, start) == reference, text
        hits += phone + reference
    assert hits > 1000


def _international_spellings(rng: random.Random) -> list[str]:
    """Numbers of every calling code written as a scanner meets them: ``+CC``, ``00CC``,
    ``011CC``, a ``(0)`` national prefix, leading zeros, brackets and separators."""
    from polyadapt.governance.phone_validity import _INTERNATIONAL_SHAPE

    spellings = []
    for code in [*sorted(COUNTRY_CODE_TO_REGION_CODE), 0, 999, 42]:
        for _ in range(10):
            national = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
            if rng.random() < 0.3:
                national = rng.choice(("0", "(0)", "00", "1", "01")) + national
            groups, rest = [], national
            while rest:
                cut = rng.randint(1, 4)
                groups.append(rest[:cut])
                rest = rest[cut:]
            body = "".join(g + rng.choice(("", " ", "-", ".", "/", " ", "  ", ") (")) for g in groups).strip(" -./(")
            head = rng.choice(("+", "+", "00", "011", "(+", "+(", "0", ""))
            spellings.append(f"{head}{code}{rng.choice(('', ' ', '-', ') '))}{body}")
    spellings += ["+44 (0)20 7946 0018", "+39 06 6982 1234", "0039 06 6982 1234", "+800 1234 5678", "+1 415 555 0123"]
    spellings += ["011 44 20 7946 0018", "+44", "00", "+0 12345", "000049 30 901820", "+49 (0) 30 901820"]
    return [s for s in spellings if _INTERNATIONAL_SHAPE.fullmatch(s)] + ["+44 20 7946 0018 x12", "+٤٤ 20 7946 0018"]


def test_parse_international_builds_what_phonenumbers_parse_returns():
    from polyadapt.governance.phone_validity import parse_international

    rng = random.Random(17)
    spellings = _international_spellings(rng)
    built = 0
    for region in ("US", "GB", "DE", "FR", "NL", "ES", "IT", "AU", "RU", "JP"):
        for raw in spellings:
            ours = parse_international(raw, region)
            if ours is None:
                continue  # left to parse
            built += 1
            theirs = phonenumbers.parse(raw, region)  # raises where the fast path should have said None
            assert ours == theirs, (raw, region, ours, theirs)
            assert (ours.italian_leading_zero, ours.number_of_leading_zeros) == (
                theirs.italian_leading_zero,
                theirs.number_of_leading_zeros,
            ), (raw, region)
    assert built > 5_000  # most spellings take the fast path
    assert parse_international("+44 (0)20 7946 0018", "US") == phonenumbers.parse("+442079460018")
    assert parse_international("020 7946 0018", "GB") is None  # national form: not this path's
    assert parse_international("+44 20 7946 0018 x12", "GB") is None  # an extension: parse's


def test_nino_matches_are_what_finditer_finds():
    from polyadapt.governance import identity

    rng = random.Random(19)
    words = "AB|ab|Ab|QQ|qq|ſK|1|12|34|56|123456|C|c|D|d|E| |  |-|_|\n|x|BG|12 34 56|٣٤|(|+|.".split("|")
    words += ["QQ 12 34 56 C", "ab123456d", "CE 12 34 56 B", "JK 12 34 56", "AB 12 34 56 A"] * 3
    texts = ["".join(rng.choice(words) for _ in range(rng.randint(1, 14))) for _ in range(30_000)]
    texts += ["QQ 12 34 56 C and AB123456D, ab 12 34 56 c", "AB 12 34 56 C AB 12 34 56 D"]
    found = 0
    for text in texts:
        theirs = [(m.span(), m.groups()) for m in identity._NINO_PATTERN.finditer(text)]
        assert theirs == [(m.span(), m.groups()) for m in identity._nino_matches(text)], text
        found += len(theirs)
    assert found > 500
