"""Identity documents and facts: national ids, passport numbers, dates of birth.

- national_id: US SSNs written ``123-45-6789`` or ``123 45 6789`` (or 9 digits right after
  "SSN"/"social security"), never area 000, 666 or 9xx, group 00 or serial 0000; UK
  National Insurance numbers (``QQ 12 34 56 C`` shape with the official letter rules, in
  either case); the Canadian SIN, Dutch BSN, French NIR, Spanish DNI/NIE, German Steuer-ID,
  Indian Aadhaar and Australian TFN after a word that names them, and the Italian codice
  fiscale anywhere, each with valid check digits (:mod:`~polyadapt.governance.national_ids`).
- passport: a document number (6-9 letters and digits with at least 2 digits, as US, UK,
  DE, FR, ES, IT, NL and most ICAO passports are) only after a passport word
  (``passport no.``, ``Reisepass``, ``passeport``, ``pasaporte``): alone such a number is
  indistinguishable from any other id.
- date_of_birth: a date (``1985-03-14``, ``14/03/1985``, ``14.03.1985``, ``14 March 1985``,
  ``March 14, 1985``, ``14-Mar-1985``) only after a birth word (``DOB``, ``date of birth``,
  ``born on``, ``birthday``, ``geboren``, ``né le``); other dates are not personal data
  by themselves.
"""

from __future__ import annotations

import re

from polyadapt.governance.findings import Finding
from polyadapt.governance.national_ids import national_id_spans
from polyadapt.governance.textfacts import first_at, lowered, number_runs, plain_case, run_matches

_SSN_PATTERN = re.compile(r"(\d(?<![\w-]\d)\d{2})([- ])(\d{2})\2(\d{4})(?![\w]|-\d)")
#: A key or label word of a record, as prose, code and JSON write it: ``date of birth``,
#: ``date_of_birth``, ``dateOfBirth``, ``"passport": "...``: not inside a longer word, where
#: an underscore or a capital (camel case) may follow but not a lower-case letter.
_KEY_START = r"(?<![^\W_])"
_KEY_END = r"(?-i:(?![a-z0-9]))"
_SSN_COMPACT = re.compile(
    rf"(?i){_KEY_START}(?:ssn|social[ _-]?security(?:[ _-]?(?:number|no\.?))?){_KEY_END}"
    r"(?:[^\n\w]|_){0,4}(?:(?:#|no\.?|number)(?:[^\n\w]|_){0,4})?(?:is[ \t]+)?(\d{9})\b"
)
_NINO_PATTERN = re.compile(
    r"(?<![\w-])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![\w-])", re.IGNORECASE
)
_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}
#: What ``_SSN_COMPACT`` needs in the lower-cased text (a case-insensitive regex tried at
#: every position costs more than these substring tests).
_SSN_WORDS = ("ssn", "social security", "social_security", "socialsecurity", "social-security")


def _nino_matches(text: str) -> list[re.Match[str]]:
    """``list(_NINO_PATTERN.finditer(text))``, tried only where a match can start.

    A NINO's digits (``12 34 56``, 6 to 9 characters of digits and spaces) follow a letter
    or a space after a letter, so they open a :func:`number_runs` run (a run starts at a digit
    and holds no letter); its two letters and optional space start 2 or 3 characters before
    that run. Trying those two starts per run, left to right and past the last match, is
    what ``finditer`` finds (the same leftmost match at each start); a case-insensitive
    pattern tried at every letter of the text cost ~200 us on a text with NINO-like digits."""
    found: list[re.Match[str]] = []
    position = 0
    match = _NINO_PATTERN.match
    for start, _ in number_runs(text):
        for at in (start - 3, start - 2):
            if at >= position:
                m = match(text, at)
                if m is not None:
                    found.append(m)
                    position = m.end()
                    break
    return found


class NationalIdScanner:
    """US Social Security numbers (``stdnum.us.ssn`` rules), UK National Insurance numbers and
    the labelled national numbers of :mod:`~polyadapt.governance.national_ids`."""

    name = "national_id"
    types: tuple[str, ...] = ("national_id",)

    def scan(self, text: str) -> list[Finding]:
        from stdnum.us import ssn

        found = []
        for m in run_matches(_SSN_PATTERN, text, 11):  # ``123-45-6789``: 11 characters in one run
            if ssn.is_valid(m.group(1) + m.group(3) + m.group(4)):
                found.append(Finding("national_id", m.start(), m.end(), self.name))
        compact = not plain_case(text) or any(word in lowered(text) for word in _SSN_WORDS)
        for m in _SSN_COMPACT.finditer(text) if compact else ():
            if ssn.is_valid(m.group(1)):
                found.append(Finding("national_id", m.start(1), m.end(1), self.name))
        for m in _nino_matches(text):
            prefix, suffix = m.group(1), m.group(5)
            # mixed case ("Ab 12 34 56 c") is a word and digits, not a NINO
            if prefix.upper() not in _NINO_BAD_PREFIXES and (prefix + suffix).isupper() == prefix.isupper():
                found.append(Finding("national_id", m.start(), m.end(), self.name))
        found.extend(Finding("national_id", start, end, self.name) for start, end in national_id_spans(text))
        return found


_PASSPORT_WORD = re.compile(
    rf"(?i){_KEY_START}(?:passports?|pass(?:port)?\s*(?:no|nr|#)|passnummer|reisepass(?:nummer|nr)?|passeport|pasaporte"
    rf"|passaporto|paspoort(?:nummer|nr)?|travel[ _-]?document){_KEY_END}"
)
#: What follows a passport word: an optional "number:" label, then the number itself.
_PASSPORT_NUMBER = re.compile(
    r"(?:[^\n\w]|_){0,4}(?:(?:numbers?|nos?|num|nr|n|n°|nº|#|numéros?|números?|numero|nummer|ids?)(?!\w)\.?º?"
    r"(?:[^\n\w]|_){0,4})?"
    r"(?:(?:is|was|:)\s*)?"
    r"(?P<value>(?=(?:[A-Z]*\d){2})(?=[A-Z0-9]*[0-9])[A-Z0-9]{6,9})(?![\w-])",
    re.IGNORECASE,
)

#: A further number in a list after the first (``passports: AB1234567 and XY9876543``).
_PASSPORT_NEXT = re.compile(
    r"[ \t]*(?:,|;|/|&|\band\b|\bor\b)[ \t]*(?:(?:and|or)[ \t]+)?"
    r"(?P<value>(?=(?:[A-Z]*\d){2})(?=[A-Z0-9]*[0-9])[A-Z0-9]{6,9})(?![\w-])",
    re.IGNORECASE,
)

#: German passport numbers use an alphabet without vowels, so they may hold no digit at all
#: (``CJTPN5TJ2``, ``JYMMNKTXW``); upper case, nine characters, right after the label.
_GERMAN_PASSPORT = re.compile(
    r"(?:[^\n\w]|_){0,4}(?:(?i:number|num|no|nr|n|nummer)(?!\w)\.?(?:[^\n\w]|_){0,4})?(?:(?:is|was|:)\s*)?"
    r"(?P<value>[CFGHJKLMNPRTVWXYZ0-9]{9})(?![\w-])"
)


class PassportScanner:
    """Passport numbers after a passport word (see the module docs)."""

    name = "passport"
    types: tuple[str, ...] = ("passport",)

    def scan(self, text: str) -> list[Finding]:
        lower = lowered(text)
        first = first_at(lower, ("pas", "travel"))
        if first < 0:
            return []
        # every passport word starts at "pas" or "travel", or 5 before ("reisepass")
        found = []
        for word in _PASSPORT_WORD.finditer(text, max(0, first - 5) if plain_case(text) else 0):
            m = _PASSPORT_NUMBER.match(text, word.end(), word.end() + 48) or _GERMAN_PASSPORT.match(
                text, word.end(), word.end() + 48
            )
            while m:
                found.append(Finding("passport", m.start("value"), m.end("value"), self.name))
                m = _PASSPORT_NEXT.match(text, m.end(), m.end() + 24)
        return found


_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|januar|februar|märz|mai|juni|juli|oktober|dezember"
    r"|janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre"
    r"|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
    r"|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre"
    r"|januari|februari|maart|mei|augustus)\.?"
)
_DATE = (
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # 1985-03-14
    r"|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"  # 14/03/1985, 03-14-85
    rf"|\d{{1,2}}(?:st|nd|rd|th|\.)?[ -]{_MONTHS}[-, ]*\d{{4}}"  # 14 March 1985, 14-Mar-1985, 1. Juli 2006
    rf"|{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})"  # March 14, 1985
)
#: Substrings of every birth word below: a text without one has no date of birth to find.
_BIRTH_HINTS = (
    *("birth", "born", "dob", "d.o.b", "geb", "naiss", "nacid", "nacim", "nascit", "nato", "nata", "né", "geboort"),
)
_BIRTH_DATE = re.compile(
    rf"(?i){_KEY_START}(?:d\.?o\.?b\.?|date[ _-]?of[ _-]?birth|birth[ _-]?date|birthday|born(?: on)?|geburtsdatum|geb\."
    r"|geboren(?: am)?|né(?:e)? le|date de naissance|fecha de nacimiento|nacid[oa] el|data di nascita|nato il|nata il"
    rf"|geboortedatum|geboren op){_KEY_END}"
    rf"[^\n\d]{{0,20}}?(?P<value>(?<![\w]){_DATE})(?![\w])"
)


class DateOfBirthScanner:
    """Dates of birth: a date after a birth word (see the module docs)."""

    name = "date_of_birth"
    types: tuple[str, ...] = ("date_of_birth",)

    def scan(self, text: str) -> list[Finding]:
        lower = lowered(text)
        if not any(word in lower for word in _BIRTH_HINTS):
            return []
        return [
            Finding("date_of_birth", m.start("value"), m.end("value"), self.name) for m in _BIRTH_DATE.finditer(text)
        ]
