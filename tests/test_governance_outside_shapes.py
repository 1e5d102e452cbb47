"""Shapes found missing when the pattern scanners were run on other projects' detector fixtures
(Presidio's recognizer tests, detect-secrets' test data): each case here is written for this
project, in the same shape."""

from __future__ import annotations

import pytest

from polyadapt.governance.scanners import pattern_scanners, scan_text
from polyadapt.governance.secrets import secret_spans

SCANNERS = pattern_scanners()


def _found(text: str, kind: str) -> list[str]:
    return [text[f.start : f.end] for f in scan_text(text, SCANNERS) if f.type == kind]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("write to ivan@xn--e1afmkfd.xn--p1ai for the invoice", ["ivan@xn--e1afmkfd.xn--p1ai"]),
        ("mail: support@xn--bcher-kva.example", ["support@xn--bcher-kva.example"]),
    ],
)
def test_email_with_punycode_labels(text: str, want: list[str]) -> None:
    assert _found(text, "email") == want


def test_email_top_level_domain_still_needs_letters_or_punycode() -> None:
    assert _found("ping admin@host.xn-- now", "email") == []
    assert _found("ping admin@host.c0m now", "email") == []


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Passports: K31907246 and P2248815 were scanned.", ["K31907246", "P2248815"]),
        ("passport numbers 563821904, 771203958 or C4X77T912", ["563821904", "771203958", "C4X77T912"]),
        ("Passport nos. 120934875 & 449281736.", ["120934875", "449281736"]),
        ("passport no: 530094127, issued in 2019", ["530094127"]),
    ],
)
def test_passport_lists_and_plurals(text: str, want: list[str]) -> None:
    assert _found(text, "passport") == want


def test_a_list_does_not_run_past_the_passport_numbers() -> None:
    # "and 2024" is a year, not a passport number (no second digit run of 6-9 characters)
    assert _found("Passport: 530094127 and 2024 renewals", "passport") == ["530094127"]
    # words and order numbers after the first number are not passports
    assert _found("passport 530094127 and order ORD99881", "passport") == ["530094127"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("VERY_SECRET_TOO = 'q7Vb2LmX9sKe4TzN1wPa8RcY3uHd6GjF'", "q7Vb2LmX9sKe4TzN1wPa8RcY3uHd6GjF"),
        ("api_token_for_ci: R8t2Kq9Lm4Vx7Bn1Zp5Wc3Yd", "R8t2Kq9Lm4Vx7Bn1Zp5Wc3Yd"),
        ("real_secret_which_is_not_an_i_d = 0f9Xk2Lq8Vm3Nb7Pz1Rt6Yw4", "0f9Xk2Lq8Vm3Nb7Pz1Rt6Yw4"),
    ],
)
def test_secret_word_inside_a_key_with_a_generated_value(text: str, value: str) -> None:
    start = text.index(value)
    assert secret_spans(text) == [(start, start + len(value))]


@pytest.mark.parametrize(
    "text",
    [
        "token_type = 'Bearer'",
        "secret_name = 'payments-api-secret-2024'",
        "password_reset_url = 'https://accounts.example.org/reset'",
        "eos_token_id = 2",
        "SECRET_TOO = 'hunter2'",  # a short human value needs the secret word last
        "token_hash_algorithm = 'sha256'",
        "secret_version_id = 'a81f3e9c27b64d05b9e1c4f7d2a6b803'",  # "id": describes the secret
        "access_token_ttl_seconds = 3600",
    ],
)
def test_keys_that_describe_a_secret_are_not_secrets(text: str) -> None:
    assert secret_spans(text) == []


def test_a_constant_named_by_its_own_value_is_not_a_secret() -> None:
    assert secret_spans('    PG_PASSWORD_SCRAM_SHA_256 = "PG_PASSWORD_SCRAM_SHA_256"\n') == []
    assert secret_spans('    CHECK_VERDICT_PASS = "CHECK_VERDICT_PASS"\n') == []


# --- addresses: shapes from pyap's US and GB test addresses, written anew --------------------

ADDRESSES = [
    # PO boxes in any case, with their city line
    ("Ship it to po box 4471, Dayton, OH 45402 please.", "po box 4471, Dayton, OH 45402"),
    ("Mail: P.O. box 88, Reno, NV 89501", "P.O. box 88, Reno, NV 89501"),
    # all-caps records
    ("DELIVER TO 1845 MAPLEWOOD HWY WESTFIELD, NJ 07090", "1845 MAPLEWOOD HWY WESTFIELD, NJ 07090"),
    # the USPS suffixes that generated test data uses, with their city and state
    (
        "Send it to 512 Gordon Brooks Suite 310, Lake Tammy, MT 59801.",
        "512 Gordon Brooks Suite 310, Lake Tammy, MT 59801",
    ),
    ("Billing: 9 Ortiz Hollow, Jenkinsville, WA 98101", "9 Ortiz Hollow, Jenkinsville, WA 98101"),
    # the longest street line: "Ridge" and "Point" are street types too
    ("Deliver to 2740 Timber Ridge Lane, Austin, TX 78701.", "2740 Timber Ridge Lane, Austin, TX 78701"),
    # a state written in full, a space before the comma
    (
        "HQ: 420 Crompton Street Charlotte , North Carolina 28273",
        "420 Crompton Street Charlotte , North Carolina 28273",
    ),
    # UK lines that end in a postcode, with or without a house number, and a country after
    ("Write to Guildhall, Gresham Street, London, EC2V 7HH today.", "Guildhall, Gresham Street, London, EC2V 7HH"),
    ("SHEPPEY WAY, SITTINGBOURNE, ME9 8RZ", "SHEPPEY WAY, SITTINGBOURNE, ME9 8RZ"),
    ("Marlborough Rd, St. James's, London SW1A 1BQ", "Marlborough Rd, St. James's, London SW1A 1BQ"),
    ("Flat 05, Byrne shores, Howardshire, GL6 8EA, UK", "Flat 05, Byrne shores, Howardshire, GL6 8EA, UK"),
    ("77 Harper hollow, Northwick, TF4 2PQ", "77 Harper hollow, Northwick, TF4 2PQ"),
    # German streets: "Am Markt", hyphenated names
    ("Neue Adresse: Am Markt 12a, 04109 Leipzig", "Am Markt 12a, 04109 Leipzig"),
    ("Lieferung an Friedrich-Ebert-Straße 150b, 50968 Köln.", "Friedrich-Ebert-Straße 150b, 50968 Köln"),
]


@pytest.mark.parametrize(("text", "address"), ADDRESSES)
def test_addresses_in_the_shapes_other_projects_test(text: str, address: str) -> None:
    assert _found(text, "address") == [address]


@pytest.mark.parametrize(
    "text",
    [
        "I visited 3 Harper hollow spots last summer.",  # a lower-case type needs its city or postcode
        "in 3 Bear Creek parks we counted birds",  # a USPS-only type needs its city or postcode
        "in 2 Key Points of the talk",
        "at 4 Union Station today",
        "The Office for National Statistics, SW1A 2AA",  # a postcode line needs a street or number
        "Runs on Python 3 Way faster",
    ],
)
def test_near_misses_of_the_new_address_shapes(text: str) -> None:
    assert _found(text, "address") == []


# --- precision on documentation prose (docstrings of installed packages) ----------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Return the plugin identified by 'name', or None.", "secret"),  # "identified by" in prose
        ("sentiment 0.918273 4 The food was cold", "phone"),  # a decimal fraction, not a trunk 0
        ("Euler's constant 0.5772156 shows up again", "phone"),
        ("as described in Section 12.7.4.3 of the standard", "ip_address"),  # a section number
        ("see § 10.2.1.4 for details", "ip_address"),
    ],
)
def test_documentation_prose_near_misses(text: str, kind: str) -> None:
    assert _found(text, kind) == []


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("CREATE USER 'app'@'%' IDENTIFIED BY 'Tr0ub4dor&3';", "Tr0ub4dor&3", "secret"),
        ("ALTER USER reporting\n  IDENTIFIED BY 'S3cr3t!x';", "S3cr3t!x", "secret"),
        ("connected from 12.7.4.3 at noon", "12.7.4.3", "ip_address"),
        ("Appelez le 01.65.15.64.50", "01.65.15.64.50", "phone"),
    ],
)
def test_the_real_ones_next_to_those_near_misses_are_still_found(text: str, value: str, kind: str) -> None:
    assert _found(text, kind) == [value]


def test_inline_allow_markers_of_detect_secrets_and_gitleaks() -> None:
    text = (
        'API_TOKEN = "q7Vb2LmX9sKe4TzN1wPa8RcY3uHd6GjF"  # pragma: allowlist secret\n'
        'DB_PASSWORD = "Zx81nQm4LpW0cV7s"\n'
        "# pragma: allowlist nextline secret\n"
        'SECRET_KEY = "R8t2Kq9Lm4Vx7Bn1Zp5Wc3Yd"\n'
        'GH = "ghp_9f8e7d6c5b4a39281706f5e4d3c2b1a0Zz99"  # gitleaks:allow\n'
        'OTHER_SECRET = "Pq4Rs8Tu2Vw6Xy0Za3Bc7De"\n'
    )
    found = [text[a:b] for a, b in secret_spans(text)]
    assert found == ["Zx81nQm4LpW0cV7s", "Pq4Rs8Tu2Vw6Xy0Za3Bc7De"]


# --- phones as test-data generators write them: extensions glued on, reserved ranges ----------


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Call +1-503-867-2291x4410 after lunch", "+1-503-867-2291x4410"),
        ("Office: (212)736-0198x77 (front desk)", "(212)736-0198x77"),
        # libphonenumber calls these possible, not valid (unassigned or reserved ranges), but
        # they are written the way only phone numbers are written
        ("Phone: 653.211.3361", "653.211.3361"),
        ("cell (627) 258-9290", "(627) 258-9290"),
        ("call 1 (804) 181-1078 today", "1 (804) 181-1078"),  # the NANP trunk 1 written before it
        ("Rufen Sie (08481) 514151 an", "(08481) 514151"),
        ("Bel +31(0)90-4200323 voor info", "+31(0)90-4200323"),
        ("Ring +44(0)1632 960860 tonight", "+44(0)1632 960860"),  # Ofcom's range for fiction
        ("Tel: +44 115 496 0414", "+44 115 496 0414"),
    ],
)
def test_phones_written_as_phones_are_found_even_when_not_valid(text: str, phone: str) -> None:
    assert _found(text, "phone") == [phone]


@pytest.mark.parametrize(
    "text",
    [
        "Order 536-490-4200 shipped",  # a reference word before it
        "ZIP 98382-2926",
        "SSN 078-05-1120",
        "released 2023-11-01 12:30",
        "build 4826171827",  # ten digits alone must still be a valid number
        "ISBN 0-19-852663-6",
        "ratio 0.957075 3",
        "value: 0716900130494",  # an EAN-13 barcode (valid GS1 check digit), no phone word
        "code 087846743292",  # a UPC-A barcode
        "see 0-487-05086-X for details",  # an ISBN-10 whose check digit is X
        "routing number 024127312",  # an ABA routing number after its word
    ],
)
def test_numbers_that_are_not_written_as_phones_stay_out(text: str) -> None:
    assert _found(text, "phone") == []


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        # local numbers without their area code, and regions not configured: a phone word says it
        ("Phone: 9312 4470", "9312 4470"),
        ("mobile 471-2290 (after six)", "471-2290"),
        ("You can reach the front desk at 3904417 any day.", "3904417"),
        ("Call us on 0412 889 301.", "0412 889 301"),
        ("Fax no. 2264 0917", "2264 0917"),
        # a "+" number with dots is not an IPv4 address
        ("Tel +61.412.889.301", "+61.412.889.301"),
    ],
)
def test_numbers_after_a_phone_word_are_phones_whatever_their_range(text: str, phone: str) -> None:
    assert _found(text, "phone") == [phone]


@pytest.mark.parametrize(
    "text",
    [
        "Phone: 2023-11-01 was the call date",  # a date
        "call 4471 22 times",  # too few digits for a phone
        "We reach 4412 8890 users a day",  # "reach" without "on" or "at"
        "phone 10.2.33.41 is the gateway",  # a dotted quad without "+"
        "Build 4471 2290 passed",  # no phone word
    ],
)
def test_numbers_near_phone_words_that_are_not_phones(text: str) -> None:
    assert _found(text, "phone") == []


# --- multi-line and continental addresses as generated test data writes them ----------------

MORE_ADDRESSES = [
    ("Ship to:\n66 Kerr Roads\nPort Alison\nHR2 7QS\n", "66 Kerr Roads\nPort Alison\nHR2 7QS"),
    ("We moved to Studio 4\nMoss Unions\nNew Gavin\nW5 2XZ last year.", "Studio 4\nMoss Unions\nNew Gavin\nW5 2XZ"),
    ("Beatrix Okafor\nFlat 2B\n19 Mill Road\nLeeds LS6 2QT\n", "Flat 2B\n19 Mill Road\nLeeds LS6 2QT"),
    ("Acme Widgets Ltd\n40 Church Lane\nLondon N7 4QE\n", "40 Church Lane\nLondon N7 4QE"),
    ("Adres: Tulpstraat 28\n8921 TJ\nDe Blesse\n", "Tulpstraat 28\n8921 TJ\nDe Blesse"),
    ("Envoyez à avenue Gilles Lebrun\n58301 Sainte Hélène", "avenue Gilles Lebrun\n58301 Sainte Hélène"),
    ("rue Dupré, 24392 Vernon", "rue Dupré, 24392 Vernon"),
    ("Dirección: Calle de Alcalá 45, 28014 Madrid", "Calle de Alcalá 45, 28014 Madrid"),
    ("Camino Eva Ruiz 25 Piso 5\nLa Rioja, 50678", "Camino Eva Ruiz 25 Piso 5\nLa Rioja, 50678"),
    ("Indirizzo: Via Loretta, 216\n44037, Jolanda Di Savoia (FE)", "Via Loretta, 216\n44037, Jolanda Di Savoia (FE)"),
    ("PSC 7369, Box 2625\nAPO AE 34504", "PSC 7369, Box 2625\nAPO AE 34504"),
    ("USNS Harmon\nFPO AP 38768", "USNS Harmon\nFPO AP 38768"),
    ("8932 Soto Underpass Apt. 174\nNorth Amanda, FM 91391", "8932 Soto Underpass Apt. 174\nNorth Amanda, FM 91391"),
    (
        "Gülay-Seifert-Straße 77\n71565 Rothenburg ob der Tauber",
        "Gülay-Seifert-Straße 77\n71565 Rothenburg ob der Tauber",
    ),
]


@pytest.mark.parametrize(("text", "address"), MORE_ADDRESSES)
def test_multi_line_and_continental_addresses(text: str, address: str) -> None:
    assert _found(text, "address") == [address]


def test_a_phone_line_above_a_postcode_line_stays_a_phone() -> None:
    text = "Tel. +44 117 496 0142\nFlat 3A, 37A Albert Terrace, London NW1 9GY\n"
    assert _found(text, "phone") == ["+44 117 496 0142"]
    assert _found(text, "address") == ["Flat 3A, 37A Albert Terrace, London NW1 9GY"]


@pytest.mark.parametrize(
    "text",
    [
        "Plaza Mayor 3 was crowded.",  # a Spanish street word without its postcode
        "Via Appia 12 is a famous road",
        "the rue Royale was closed",
        "Welcome to Contact\nSW1A 1AA",  # no street, number or unit before the postcode
    ],
)
def test_continental_near_misses(text: str) -> None:
    assert _found(text, "address") == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Vial Belén Pomares 7 Apt. 58\nCórdoba, 16999", "Vial Belén Pomares 7 Apt. 58\nCórdoba, 16999"),
        ("C. de Cristina Díaz 91\nÁvila, 43906", "C. de Cristina Díaz 91\nÁvila, 43906"),
        ("Calle Mayor 4, 38001 Santa Cruz de Tenerife", "Calle Mayor 4, 38001 Santa Cruz de Tenerife"),
        ("902 Pearson Plain Suite 750\nNew Aaron, DE 97081", "902 Pearson Plain Suite 750\nNew Aaron, DE 97081"),
        ("USNV Stanton\nFPO AE 88241", "USNV Stanton\nFPO AE 88241"),
    ],
)
def test_more_spanish_and_us_shapes(text: str, address: str) -> None:
    assert _found(text, "address") == [address]


def test_dutch_pad_streets_need_their_postcode() -> None:
    assert _found("Adres:\nDionpad 717\n9398JE\nWirdum\n", "address") == ["Dionpad 717\n9398JE\nWirdum"]
    assert _found("Open Notepad 3 and type the key", "address") == []
    assert _found("Keypad 5\nthen press enter", "address") == []


# --- records serialised as JSON or key=value: keys name the value, line breaks are escaped ------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ('{"passport": "K31907246"}', "passport", "K31907246"),
        ('{"passport_number": "K31907246"}', "passport", "K31907246"),
        ("passportNumber=K31907246", "passport", "K31907246"),
        ('{"date_of_birth": "1980-01-02"}', "date_of_birth", "1980-01-02"),
        ("dateOfBirth: 02/01/1980", "date_of_birth", "02/01/1980"),
        ('{"ssn": "078051121"}', "national_id", "078051121"),
        ("user_ssn=078051121", "national_id", "078051121"),
        ('{"bsn": "123456782"}', "national_id", "123456782"),
        ('{"national_id": "X1234567L"}', "national_id", "X1234567L"),
        ('{"phone": "66787927"}', "phone", "66787927"),
        ("mobilePhone: 648-8594", "phone", "648-8594"),
        ('{"mobile_phone": "8754-0250"}', "phone", "8754-0250"),
        (
            '{"address": "197 Harbour Locks\\nLake Mary, UT 84101"}',
            "address",
            "197 Harbour Locks\\nLake Mary, UT 84101",
        ),
        ('{"address": "Waldweg 49\\n50128 Nördlingen"}', "address", "Waldweg 49\\n50128 Nördlingen"),
    ],
)
def test_values_under_record_keys_are_found(text: str, kind: str, value: str) -> None:
    assert _found(text, kind) == [value]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("the passporting rules K31907246", "passport"),  # a longer word, not the key
        ("bypassport K31907246", "passport"),
        ("the sin 130 692 544 was forgiven", "national_id"),  # "sin" in lower case is a word
        ("user_id: 123456782", "national_id"),  # a user id is not a national number
        ("autograph 12345678", "phone"),  # "ph" inside a word is no phone key
    ],
)
def test_words_that_only_look_like_keys_name_nothing(text: str, kind: str) -> None:
    assert _found(text, kind) == []


# --- generated passwords (Faker's password()): symbols anywhere, also first -------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("user=bparks passwd=#yiMGZOsG9id7l", "#yiMGZOsG9id7l"),  # "#" opens a value after "="
        ("DB_PASSWORD=2u3HDoEt(XfAyw", "2u3HDoEt(XfAyw"),  # a bracket inside is no call
        ("password: D(qWwL_S*k^q4n", "D(qWwL_S*k^q4n"),
        ("password: *NhHbMrsg&b80o", "*NhHbMrsg&b80o"),  # random, so no YAML alias
        ("webhook_secret: s5cN_lx=&jvsO0ZvC*9\nci:", "s5cN_lx=&jvsO0ZvC*9"),  # no annotation
        ('password: str = "Xk29fLq0pZ"', "Xk29fLq0pZ"),  # a Python annotation still is one
        ('{"password": "$4Pq+irB+hFdgU"}', "$4Pq+irB+hFdgU"),  # "$" then a digit: no variable
    ],
)
def test_generated_passwords_with_symbols_are_found_whole(text: str, secret: str) -> None:
    assert _found(text, "secret") == [secret]


@pytest.mark.parametrize(
    "text",
    [
        "base: &default\n  password: *default",  # a YAML alias of a word
        "password = hash(pw, salt)",  # a call, cut at the comma
        "secret = data[key]",  # a subscript
        'password = os.environ["PW"]',
        "password: #{user_pw}",  # Ruby interpolation
        "password: $DB_PASSWORD",  # a variable
        "password: $(cat pw.txt)",  # a command substitution
    ],
)
def test_code_and_yaml_references_are_not_passwords(text: str) -> None:
    assert _found(text, "secret") == []
