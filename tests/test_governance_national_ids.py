"""National numbers of other countries: found after their names with valid check digits only."""

from __future__ import annotations

import pytest

from polyadapt.governance.identity import NationalIdScanner
from polyadapt.governance.national_ids import FORMATS, national_id_spans


def _found(text: str) -> list[str]:
    return [text[start:end] for start, end in national_id_spans(text)]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Employee SIN: 130 692 544, start date Monday", "130 692 544"),
        ("Uw BSN is 1112.22.333 volgens de brief.", "1112.22.333"),
        ("burgerservicenummer 123456782", "123456782"),
        ("Numéro de sécurité sociale : 2 95 10 99 126 111 93", "2 95 10 99 126 111 93"),
        ("DNI 12345678Z, domicilio en Madrid", "12345678Z"),
        ("Mi NIE es X1234567L.", "X1234567L"),
        ("Steuer-ID: 86 095 742 719", "86 095 742 719"),
        ("Aadhaar number 2341 2341 2346 on file", "2341 2341 2346"),
        ("TFN 123 456 782", "123 456 782"),
        ("Codice fiscale: RSSMRA85T10A562S", "RSSMRA85T10A562S"),
        # a general name: whichever format validates there
        ("National ID number: 123456782", "123456782"),
        ("identity card no. X1234567L", "X1234567L"),
        # the codice fiscale needs no name: nothing else has its shape and check letter
        ("Intestatario RSSMRA85T10A562S, Roma", "RSSMRA85T10A562S"),
    ],
)
def test_named_numbers_with_valid_check_digits_are_found(text: str, number: str) -> None:
    assert _found(text) == [number]


@pytest.mark.parametrize(
    "text",
    [
        "SIN: 130 692 545",  # the Luhn check fails
        "BSN 111222334",  # the eleven test fails
        "DNI 12345678A",  # the wrong check letter
        "order 123456782 shipped",  # a valid BSN shape, but nothing names it
        "BASIN 123456782",  # the name inside a longer word
        "sin 130 692 544",  # "sin" in lower case is a word, not the acronym
        "Codice fiscale: RSSMRA85T10A562X",  # the wrong check letter
        "user id 123456782 logged in",  # "user id" is not a national number's name
    ],
)
def test_unnamed_or_invalid_numbers_are_not_found(text: str) -> None:
    assert _found(text) == []


def test_the_national_id_scanner_reports_them_as_national_ids() -> None:
    text = "Client: BSN 123456782, SSN 078-05-1121"
    findings = NationalIdScanner().scan(text)
    assert sorted(text[f.start : f.end] for f in findings) == ["078-05-1121", "123456782"]
    assert {f.type for f in findings} == {"national_id"}


def test_text_with_a_character_that_lowercases_longer_still_finds_names() -> None:
    text = "İstanbul ofisi: BSN 123456782"  # "İ" lower-cases to two characters
    assert _found(text) == ["123456782"]


def test_every_format_has_a_validator_that_imports() -> None:
    import importlib

    for fmt in FORMATS:
        assert callable(importlib.import_module(fmt.validator).is_valid), fmt.name
