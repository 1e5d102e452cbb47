"""National identity and tax numbers of other countries, each checked by its own check digits.

:class:`~polyadapt.governance.identity.NationalIdScanner` finds US SSNs and UK NINOs by their
shape; the numbers here are plain digit runs (a Dutch BSN is any nine digits that pass the
eleven test) that only the word before them tells from an order or account number, so each is
reported only after a word that names it (``BSN: 111222333``, ``SIN 046 454 286``), and only
when its check digits, as `python-stdnum <https://arthurdejong.org/python-stdnum/>`_ computes
them, are right. The Italian codice fiscale is the exception: sixteen letters and digits in a
fixed pattern with a check letter are not anything else, so it needs no word.

A general word (``national ID``, ``identity number``, ``ID number``, ``SSN``) is followed by
whichever format's number validates there. Names are also found as record keys write them
(``"national_id": ...``, ``nationalId=``, ``"bsn": ...``: an acronym in lower case only as a key).

=====================  ====================================================  =================
country                words                                                 stdnum module
=====================  ====================================================  =================
Canada                 SIN, social insurance number, NAS                     ``stdnum.ca.sin``
Netherlands            BSN, burgerservicenummer, sofinummer                  ``stdnum.nl.bsn``
France                 NIR, INSEE, numéro de sécurité sociale                ``stdnum.fr.nir``
Spain                  DNI, NIE, NIF                                         ``stdnum.es.nif``
Germany                Steuer-ID, Steueridentifikationsnummer, IdNr          ``stdnum.de.idnr``
India                  Aadhaar                                               ``stdnum.in_.aadhaar``
Australia              TFN, tax file number                                  ``stdnum.au.tfn``
Italy                  codice fiscale (or none)                              ``stdnum.it.codicefiscale``
=====================  ====================================================  =================
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from polyadapt.governance.needles import NeedleSet
from polyadapt.governance.textfacts import lowered, plain_case


@dataclass(frozen=True)
class IdFormat:
    """One national number: the words that name it, the shape of its value, its validator."""

    #: A short name, also the regex group of its words (``ca_sin``).
    name: str
    #: Upper-case names, matched as written (``SIN``: "sin" is a word).
    acronyms: tuple[str, ...]
    #: Lower-case names, matched in any case (``social insurance number``).
    phrases: tuple[str, ...]
    #: A regex of the value as people write it (spaces, dots or dashes between digit groups).
    value: str
    #: The python-stdnum module whose ``is_valid`` checks the value.
    validator: str


_CF_DIGIT = "[0-9LMNPQRSTUV]"  # a codice fiscale's digits may be replaced by these letters (omocodia)
#: A codice fiscale after its six letters (surname and name): birth date, place, check letter.
_CF_AFTER_LETTERS = rf"{_CF_DIGIT}{{2}}[A-EHLMPR-T]{_CF_DIGIT}{{2}}[A-Z]{_CF_DIGIT}{{3}}[A-Z]"
_CODICE_FISCALE = rf"[A-Z]{{6}}{_CF_AFTER_LETTERS}"

FORMATS: tuple[IdFormat, ...] = (
    IdFormat(
        "ca_sin",
        ("SIN", "NAS"),
        ("social insurance number", "numéro d'assurance sociale", "numero d'assurance sociale"),
        r"\d{3}[ -]?\d{3}[ -]?\d{3}",
        "stdnum.ca.sin",
    ),
    IdFormat(
        "nl_bsn",
        ("BSN",),
        ("burgerservicenummer", "sofinummer", "sofi-nummer"),
        r"\d{4}\.\d{2}\.\d{3}|\d{3}[ .]\d{3}[ .]\d{3}|\d{8,9}",
        "stdnum.nl.bsn",
    ),
    IdFormat(
        "fr_nir",
        ("NIR", "INSEE"),
        ("numéro de sécurité sociale", "numero de securite sociale", "n° de sécurité sociale", "n° sécu"),
        r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}",
        "stdnum.fr.nir",
    ),
    IdFormat(
        "es_nif",
        ("DNI", "NIE", "NIF"),
        ("documento nacional de identidad",),
        r"\d{8}[ -]?[A-Za-z]|[XYZxyz][ -]?\d{7}[ -]?[A-Za-z]",
        "stdnum.es.nif",
    ),
    IdFormat(
        "de_idnr",
        ("IdNr", "Steuer-ID", "SteuerID"),
        ("steueridentifikationsnummer", "steuerliche identifikationsnummer"),
        r"\d{2} ?\d{3} ?\d{3} ?\d{3}",
        "stdnum.de.idnr",
    ),
    IdFormat("in_aadhaar", (), ("aadhaar", "aadhar"), r"\d{4}[ -]?\d{4}[ -]?\d{4}", "stdnum.in_.aadhaar"),
    IdFormat("au_tfn", ("TFN",), ("tax file number",), r"\d{3} ?\d{3} ?\d{2,3}", "stdnum.au.tfn"),
    IdFormat("it_cf", ("C.F.",), ("codice fiscale",), _CODICE_FISCALE, "stdnum.it.codicefiscale"),
)
#: Words that name a national number without saying which country's: whichever format's
#: number validates after them is reported (records of any country label theirs "SSN").
GENERAL = IdFormat(
    "general",
    (),
    (
        *("national id", "national identity", "national identification", "national insurance"),
        *("id number", "id no", "identity number", "identity card", "identification number"),
        *("personal id", "citizen id", "ssn", "social security number", "social security no"),
    ),
    "",
    "",
)


def _words(fmt: IdFormat) -> str:
    """``fmt``'s names as a regex alternation (phrases in any case, longest first; their words
    also joined by ``_`` or ``-`` or nothing, as record keys write them: ``national_id``,
    ``nationalId``)."""
    # an acronym in lower case is a word ("sin"), but a record key where ":" or "=" follows
    acronyms = [f"{re.escape(word)}|{re.escape(word.lower())}(?=[\"']?[ \t]*[:=])" for word in fmt.acronyms]
    phrases = [re.escape(word).replace("\\ ", "[ _-]?") for word in sorted(fmt.phrases, key=len, reverse=True)]
    return "|".join([*acronyms, *([f"(?i:{'|'.join(phrases)})"] if phrases else [])])


#: A name of a number, where an anchor was found: not followed by a lower-case letter or digit
#: (``_`` or a capital may follow in a record key: ``ssn_number``, ``bsnNummer``).
_WORD = re.compile(rf"(?:{'|'.join(f'(?P<{f.name}>{_words(f)})' for f in (*FORMATS, GENERAL))})(?![a-z0-9-])")
#: What may stand between the name and the number: ``no.``, ``number``, ``#``, ``:``, ``is`` (``es``, ``ist``, ...).
_BETWEEN = re.compile(
    r"(?:[^\n\w]|_){0,4}(?:(?i:numbers?|nos?|num|nr|n°|nº|numéro|número|numero|nummer)(?!\w)\.?(?:[^\n\w]|_){0,4})?"
    r"(?:(?:is|was|es|est|ist|è|:)[ \t]*)?"
)
_VALUES = {f.name: re.compile(rf"(?:{f.value})(?![\w-])") for f in FORMATS}
#: A codice fiscale anywhere, opened with its first capital (the regex engine skips to capitals).
_BARE_CODICE_FISCALE = re.compile(rf"[A-Z](?<![\w-].)[A-Z]{{5}}{_CF_AFTER_LETTERS}(?![\w-])")
_BY_NAME = {f.name: (f,) for f in FORMATS} | {GENERAL.name: FORMATS}
_CF_FORMAT = _BY_NAME["it_cf"][0]

_validators: dict[str, Callable[[str], bool]] = {}


def _is_valid(fmt: IdFormat, value: str) -> bool:
    """What ``fmt``'s python-stdnum module says of ``value`` (the module imported once)."""
    check = _validators.get(fmt.name)
    if check is None:
        check = _validators[fmt.name] = importlib.import_module(fmt.validator).is_valid
    return bool(check(value))


def _shortest_heads(words: list[str]) -> tuple[str, ...]:
    """``words`` without those that start with another of them (``id`` finds ``idnr`` too)."""
    unique = sorted(set(words), key=len)
    return tuple(w for i, w in enumerate(unique) if not any(w.startswith(u) for u in unique[:i]))


#: Every name starts with one of these, lower-cased: the acronyms, and the first five characters
#: of each phrase's first word (``natio`` for the ``national ...`` names); one that starts
#: with another is left out. They are looked for in :func:`lowered` text only, and the name
#: regex then decides at each place (``SIN`` as written, ``"sin":`` as a record key).
_HEADS = _shortest_heads(
    [
        *(word.lower() for f in FORMATS for word in f.acronyms),
        *(word.split()[0][:5] for f in (*FORMATS, GENERAL) for word in f.phrases),
    ]
)


_HEAD_SET = NeedleSet((head, None) for head in _HEADS)


def _names(text: str) -> list[re.Match[str]]:
    """Every name of a number in ``text`` (:data:`_WORD` matches), tried only where one of
    :data:`_HEADS` stands in :func:`lowered` text (at the same offsets when :func:`plain_case`;
    otherwise the regex is tried everywhere): the heads are found in one pass, which costs less
    than the regex tried at every letter."""
    if not plain_case(text):
        return [m for m in _WORD.finditer(text) if not _glued(text, m.start())]
    found = (_WORD.match(text, at) for at in _HEAD_SET.starts_in(lowered(text)) if not _glued(text, at))
    return [m for m in found if m is not None]


def national_id_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of every national number in ``text`` (see the module docs)."""
    spans = []
    for word in _names(text):
        at = _BETWEEN.match(text, word.end()).end()  # type: ignore[union-attr]  # it can match nothing
        for fmt in _BY_NAME[word.lastgroup or ""]:
            m = _VALUES[fmt.name].match(text, at)
            if m is not None and _is_valid(fmt, m.group()):
                spans.append(m.span())
                break
    spans.extend(m.span() for m in _BARE_CODICE_FISCALE.finditer(text) if _is_valid(_CF_FORMAT, m.group()))
    return sorted(set(spans))


def _glued(text: str, at: int) -> bool:
    """True when the name at ``at`` continues a word (``BASIN``, ``unidentity``)."""
    return at > 0 and text[at - 1].isalnum()  # "user_ssn" is a key, "BASIN" a word
