"""Contact details: email addresses and phone numbers.

- email: ``local@domain.tld`` with a letters-only top-level domain. Not reported: the user
  part of a URL (``postgres://user:pw@host``: the password is a secret, the host no
  mailbox) and git remotes (``git@github.com:org/repo.git``, ``ssh://git@host/...``).
- phone: numbers that libphonenumber (``phonenumbers``, Google's rules) calls *valid*, or
  *possible* when they are written the way only phone numbers are (``+44 (0)1632 960860``,
  ``(08481) 514151``, ``(627) 258-9290``, ``653.211.3361``: test data and fiction use reserved
  and unassigned ranges), with 8 to 15 digits: national numbers of the US, GB, DE, FR and NL
  (whose national form starts with a trunk 0), of ES and IT when a phone word stands
  before them (their national numbers have no trunk prefix, so a bare 9-digit run would
  too often be an order number), and any number in ``+international`` form or a ``tel:``
  URI. An extension (``x123``, ``ext. 12``) belongs to the span. Skipped: a candidate glued
  to a longer identifier (``ORD-2023-004512``, ``#48213377``) or named by a reference word
  (``order``, ``invoice``, ``policy no.``), ZIP+4 codes (``02110-1301``), regulation
  numbers (``252.227-7013``), and shapes of IPv4 addresses, dates, SSNs and grouped cards.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from polyadapt.governance.findings import Finding
from polyadapt.governance.phone_validity import is_valid_number, parse_international
from polyadapt.governance.textfacts import run_matches

if TYPE_CHECKING:  # pragma: no cover
    from phonenumbers import PhoneNumber

_EMAIL = re.compile(
    r"(?<![\w.%+-])"
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{1,59})"
    r"(?![\w-]|\.[A-Za-z0-9])"
)
#: ``scheme://`` in the same word before a match: the match is a URL's user part.
_URL_BEFORE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@]*$")
#: ``git@host:path`` and ``git@host/...``: a repository address, not a mailbox.
_GIT_REMOTE_AFTER = re.compile(r"[:/][\w~.-]")


class EmailScanner:
    """Email addresses (see the module docs for what is not one)."""

    name = "email"
    types: tuple[str, ...] = ("email",)

    def scan(self, text: str) -> list[Finding]:
        if "@" not in text:
            return []
        found = []
        urls = "://" in text  # what _URL_BEFORE needs
        for m in self._candidates(text):
            if ".." in m.group() or (urls and _URL_BEFORE.search(text[max(0, m.start() - 300) : m.start()])):
                continue
            if m.group().lower().startswith("git@") and _GIT_REMOTE_AFTER.match(text, m.end()):
                continue
            found.append(Finding("email", m.start(), m.end(), self.name))
        return found

    @staticmethod
    def _candidates(text: str) -> list[re.Match[str]]:
        """Pattern matches around each ``@`` only: scanning a long text from every letter costs
        more than all its addresses (a local part has at most 64 characters, a domain 253)."""
        matches: list[re.Match[str]] = []
        position = 0
        at = text.find("@")
        while at != -1:
            lo = max(position, at - 65)
            m = _EMAIL.search(text, lo, min(len(text), at + 260))
            if m is not None and m.start() <= at < m.end():
                matches.append(m)
                position = m.end()
            at = text.find("@", max(at + 1, position))
        return matches


#: Digit runs that may hold a phone number: the phone matcher only looks at these windows.
#: The same matches as ``\+?\(?\d[\d \t().\-/]{5,}\d``, written to open with a character
#: class (a ``+``, ``(`` or digit, the look-behinds then say which) so that the regex engine
#: skips to those characters instead of trying the pattern at every position: twice as fast.
_PHONE_WINDOW = re.compile(r"[+(\d](?:(?<=\+)\(?\d|(?<=\()\d|(?<=\d))[\d \t().\-/]{5,}\d")
_NOT_DIGITS = str.maketrans("", "", "0123456789")
#: The separators a phone window may hold besides digits: deleting them leaves its digits.
_WINDOW_SEPARATORS = str.maketrans("", "", " \t().-/+")
#: Where a window needs splitting into parts at all (see ``_PART_GAP``).
_GAP_CHARS = ("/", "\t", "  ")
_SEPARATOR_DIGIT = re.compile(r"[-.]\d")


def _digit_count(value: str) -> int:
    """How many ASCII digits ``value`` holds (``str.translate`` runs in C)."""
    return len(value) - len(value.translate(_NOT_DIGITS))


#: Shapes phone matches must not have: IPv4 addresses, dates, SSN-shaped ids, ZIP+4 codes,
#: grouped card numbers and regulation numbers such as ``252.227-7013``.
_NOT_PHONE = re.compile(
    r"\d{1,3}(?:\.\d{1,3}){3}"
    r"|\d{1,2}([./-])\d{1,2}\1(?:\d{2}|\d{4})"
    r"|\d{4}([./-])\d{1,2}\2\d{1,2}"
    r"|\d{3}-\d{2}-\d{4}"
    r"|\d{5}-\d{4}"
    r"|\d{3}\.\d{3}-\d{4}"
    r"|(?:19|20)\d{2}-\d{4,8}"
    r"|\d{4}([ -])\d{4}\3\d{4}\3\d{1,4}"  # card grouping 4-4-4-x
    r"|\d{15}"  # 15 digits in one run: an IMEI, not a number anyone dials
    r"|[1-9]\d{4}-\d{5}"  # a range of 5-digit numbers ("32768-65535"); national forms start with 0
)
#: Parcel labels and other 4-4-4 groupings: a phone only after a phone word.
_FOUR_FOUR_FOUR = re.compile(r"\d{4}([ -])\d{4}\1\d{4}")
_DOTTED_QUAD = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
#: A digit group that starts with 0, as national numbers in GB, DE, FR and NL do.
_TRUNK_ZERO = re.compile(r"(?<!\d)0")
#: Regions of the North American Numbering Plan: national numbers have no trunk 0.
_NANP = {"US", "CA", "PR", "GU", "VI", "AS", "MP"}
#: A match that starts with a date (``2023-11-01 12``) is a timestamp.
_DATE_START = re.compile(r"\(?(?:\d{4}([./-])\d{1,2}\1\d{1,2}|\d{1,2}([./-])\d{1,2}\2\d{4})\b")
#: An IBAN-shaped code right before a match: its digits continue that code.
_CODE_BEFORE = re.compile(r"(?:^|\s)[A-Za-z]{2}\d{2}(?: [A-Za-z0-9]{4})* $")
#: A word naming a phone close before a number, in the languages of the regions above.
_PHONE_WORD = re.compile(
    r"(?i)(?:(?:\b|_)(?:tel|tél|phone|telephone|téléphone|teléfono|telefono|telefoon|telefon|mobile|mobil|mobiel"
    r"|móvil|movil|cell|cellulare|cellphone|fax|call|ring|text|sms|whatsapp|llámame|llamar|chiamami|chiama"
    r"|bel|numero|número|nummer|my number|contact|line|office|desk|home|work|reach(?: me)?(?: on| at)?)\b"
    r"|\btel\.|☎)[^\n\d]{0,24}$"
)
#: Words after which a number is a phone number whatever its range (``Phone: 8751 7250``,
#: ``mobile 648-8594``, ``reach our office at 7787582``): a local number without its area code,
#: or one from a region not configured, which libphonenumber cannot call valid; also as record
#: keys write them (``"phone": "...``, ``phone_number=``, ``mobilePhone:``).
_SURE_PHONE_WORD = re.compile(
    r"(?i)(?:(?:(?<![^\W_])|(?-i:(?<=[a-z])(?=[A-Z])))(?:tel|phone|telephone|mobile|mob|cell|cellphone|fax|whatsapp|ph)"
    r"(?:[ _-]?(?:no\.?|number|nr\.?|#))?"
    r"|\b(?:call|ring|dial)\b(?:[ \t]+(?:me|us))?(?:[ \t]+(?:on|at))?"
    r"|\breach\b(?:[ \t]+[a-z]+){0,3}?[ \t]+(?:on|at))[\"' \t]*[:.=]?[\"' \t]*\(?$"
)
#: The fewest digits of a number after a :data:`_SURE_PHONE_WORD` (a local number in New Zealand).
_SURE_PHONE_DIGITS = 7
#: A reference word right before a number: ``order 4155550123``, ``policy no. 0201234567``.
_REFERENCE_WORD = re.compile(
    r"(?i)\b(?:order|invoice|ref|reference|ticket|tracking|case|account|acct|sku|serial|batch|lot|transaction"
    r"|txn|confirmation|booking|policy|claim|member|customer|item|part|model|build|version|isbn|issn|patent"
    r"|clause|section|id|routing|aba|ean|upc|gtin|barcode|sort code)"
    r"\b\s*(?:no\.?|number|num|id|#|nr\.?)?\s*(?:is|was|[:#=])?\s*$"
)
#: A window's text up to its last digit (or line break): no match of the two patterns above
#: holds one, so their search starts after it (see :func:`_phone_word_before`).
_TO_LAST_DIGIT = re.compile(r".*\d", re.DOTALL)
_TO_LAST_BREAK = re.compile(r".*[\n\d]", re.DOTALL)


def _phone_word_before(text: str, start: int) -> bool:
    """True when ``_PHONE_WORD`` matches the 40 characters before ``start``.

    A match holds no digit nor line break and ends at the end of those characters (or before
    a line break that ends them), so it lies after the last digit or line break before that
    end: the search starts there (the case-insensitive alternation costs ~10 us a window)."""
    window = text[max(0, start - 40) : start]
    skip = _TO_LAST_BREAK.match(window, 0, len(window) - 1 if window.endswith("\n") else len(window))
    return _PHONE_WORD.search(window, skip.end() if skip else 0) is not None


def _reference_word_before(text: str, start: int) -> bool:
    """True when ``_REFERENCE_WORD`` matches the 40 characters before ``start`` (a match holds
    no digit, so the search starts after the last one, as in :func:`_phone_word_before`)."""
    window = text[max(0, start - 40) : start]
    skip = _TO_LAST_DIGIT.match(window)
    return _REFERENCE_WORD.search(window, skip.end() if skip else 0) is not None


#: Where a window of digits splits into separate numbers: a slash with a space beside it
#: (``0172/7489068`` is one German number), a tab, two spaces.
_PART_GAP = re.compile(r"\s+/\s*|/\s+|\t+|  +")
#: One candidate number: from a digit, a + or an opening bracket to a digit.
_PART = re.compile(r"[+(]*\d(?:[^\t]*\d)?")
#: National groupings that only Spanish and Italian numbers have: such a number needs no
#: phone word before it (``662 401 109``, ``93 315 58 98``, ``342 9169680``).
_ES_GROUPED = re.compile(r"[6789]\d{2} \d{3} \d{3}|[6789]\d{2}(?: \d{2}){3}|[89]\d \d{3}(?: \d{2}){2}")
_IT_MOBILE = re.compile(r"3\d{2}[ -]?\d{6,7}")
#: Digit sequences that fill examples and character sets, never numbers anyone answers.
_SEQUENCES = ("0123456789", "1234567890", "9876543210")
#: How people write phone numbers: international (``+44 (0)28 9018 3411``, ``0044 7509 580642``),
#: national with the area code set apart (``(08481) 514151``, ``0172/7489068``, ``020 7946 0958``)
#: and the NANP's 3-3-4 (``(430) 549-4032``, ``653.211.3361``). A number written so that
#: libphonenumber calls merely *possible* is a phone too: test data and fiction use numbers from
#: unassigned and reserved ranges (Ofcom's 01632 960xxx, NANP 555-01xx), which are not *valid*.
_WRITTEN_AS_PHONE = re.compile(
    r"\(?\+\d{1,3}\)?(?:[ .-]?\(0\))?[ .-]?\(?\d[\d .()-]{5,}\d"
    r"|\(?00\d{1,3}\)?[ .-]\(?\d[\d .()-]{4,}\d"
    r"|\(0\d{1,5}\)[ ]?\d[\d .-]{3,}\d|0\d{1,5}(?:[ ]?/[ ]?|[ ])\d[\d .-]{3,}\d"
    r"|(?:1[ ]?)?\(\d{3}\)[ ]?\d{3}[-. ]\d{4}|\d{3}([-.])\d{3}\1\d{4}|1-\d{3}-\d{3}-\d{4}|001-\d{3}-\d{3}-\d{4}"
)
_EXTENSION = re.compile(r"(?i)\s*(?:,\s*)?(?:x|ext\.?|extn\.?|extension)\s*\d{1,6}\b")
_TEL_URI = re.compile(r"(?i)(?:tel|callto|sms):/{0,2}$")


def _parts(text: str, start: int, end: int) -> list[re.Match[str]]:
    """The candidate numbers in ``text[start:end]``, split at its gaps (see ``_PART_GAP``)."""
    window = text[start:end]
    if not any(gap in window for gap in _GAP_CHARS):
        match = _PART.search(text, start, end)  # no gap: the window is one part
        return [match] if match is not None else []
    parts = []
    position = start
    for gap in [*_PART_GAP.finditer(text, start, end), None]:
        stop = gap.start() if gap is not None else end
        match = _PART.search(text, position, stop)
        if match is not None:
            parts.append(match)
        if gap is not None:
            position = gap.end()
    return parts


def _is_isbn(raw: str) -> bool:
    """A hyphenated ISBN (``0-19-852663-6``, ``978-3-16-148410-0``) with a valid check digit."""
    if raw.count("-") not in (3, 4) or " " in raw:
        return False
    from stdnum import isbn

    return bool(isbn.is_valid(raw))


#: Lengths of the GS1 barcodes written as bare digits: EAN-8, UPC-A, EAN-13.
_BARCODE_LENGTHS = (8, 12, 13)


def _is_barcode(raw: str) -> bool:
    """Bare digits of a barcode's length with a valid GS1 check digit (``0716900130494``): a
    product code, not a phone, unless a phone word says so (one compact phone number in ten
    of these lengths passes the check by chance, and such lengths are rare for phones)."""
    if len(raw) not in _BARCODE_LENGTHS or not raw.isdigit():
        return False
    from stdnum import ean

    return bool(ean.is_valid(raw))


#: Country codes of the regions whose national numbers :func:`_national_number` reads itself.
_SIMPLE_TRUNK_REGIONS = {"US": 1, "CA": 1, "GB": 44, "DE": 49, "FR": 33, "NL": 31}


def _national_number(raw: str, region: str) -> PhoneNumber | None:
    """The ``PhoneNumber`` that ``phonenumbers.parse(raw, region)`` would return, built
    directly for the shapes whose reading is fixed: a NANP number of 10 digits (or 11 after
    a 1) and a trunk-0 national number of GB, DE, FR or NL (one 0, not the 00 of an
    international call). ``parse`` takes ~0.4 ms a number, half the phone scanner's time on
    contact-heavy text; None leaves every other shape (``+``, ES, IT, ...) to it."""
    country = _SIMPLE_TRUNK_REGIONS.get(region)
    if country is None or raw.lstrip("(").startswith("+"):
        return None
    digits = raw.translate(_WINDOW_SEPARATORS)
    if country == 1:
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        if len(digits) != 10 or digits[0] in "01":
            return None
    elif len(digits) < 9 or digits[0] != "0" or digits[1] == "0":
        return None
    else:
        digits = digits[1:]
    from phonenumbers import PhoneNumber

    return PhoneNumber(country_code=country, national_number=int(digits))


def _shape_fits(region: str, first: str, n: int) -> bool:
    """Whether a national number of ``n`` digits starting with ``first`` can be one of ``region``."""
    if region in _NANP:
        return (n == 10 and first in "23456789") or (n == 11 and first == "1")
    if region == "ES":
        return n == 9 and first in "6789"
    if region == "IT":
        return first in "03" and 6 <= n <= 11
    return first == "0"  # trunk-0 regions: national numbers start with 0


def _parsed(raw: str, region: str) -> PhoneNumber | None:
    """``phonenumbers.parse(raw, region)``, None where it raises; the fast paths build what
    ``parse`` would for the shapes they read (:func:`_national_number`, ``parse_international``)."""
    number = _national_number(raw, region) or parse_international(raw, region)
    if number is not None:
        return number
    import phonenumbers

    try:
        return phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None


def continues_code(text: str, start: int) -> bool:
    """True when ``text[start:]`` continues a spaced IBAN-shaped code (``NL80 ABNA 2346``)."""
    # the pattern ends with a space right before ``start``
    return start > 0 and text[start - 1] == " " and bool(_CODE_BEFORE.search(text[max(0, start - 40) : start]))


class PhoneScanner:
    """Phone numbers that libphonenumber calls valid (see the module docs)."""

    name = "phone"
    types: tuple[str, ...] = ("phone",)

    def __init__(
        self,
        regions: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL"),
        context_regions: tuple[str, ...] = ("ES", "IT"),
        min_digits: int = 8,
    ) -> None:
        self.regions = regions
        self.context_regions = context_regions
        self.min_digits = min_digits

    @property
    def fewest_digits(self) -> int:
        """The fewest digits a candidate may have: ``min_digits``, or fewer after a phone word."""
        return min(self.min_digits, _SURE_PHONE_DIGITS)

    def scan(self, text: str) -> list[Finding]:
        spans: set[tuple[int, int]] = set()
        # windows lie in runs of digits and separators (2 before: ``+(``; 7 characters or more)
        fewest = self.fewest_digits
        for window in run_matches(_PHONE_WINDOW, text, fewest, lead=2):
            raw = window.group()
            digits = _digit_count(raw)
            if digits < fewest:
                continue
            # a run of digits may hold several numbers split by a slash, a tab or a wide gap;
            # without one the window is its only part (it opens and ends where ``_PART`` does)
            gapped = "/" in raw or "\t" in raw or "  " in raw
            for part in _parts(text, window.start(), window.end()) if gapped else (window,):
                if part is not window:
                    raw = part.group()
                    digits = _digit_count(raw)
                if not fewest <= digits <= 15:  # E.164: at most 15
                    continue
                start, end = part.span()
                if self._rejected(text, start, end, raw, digits):
                    continue
                if digits < self.min_digits:
                    found = self._sure_phone_word_before(text, start)  # a short number needs its word
                else:
                    regions = self._plausible_regions(text, start, raw)
                    written = _WRITTEN_AS_PHONE.fullmatch(raw) is not None
                    found = (
                        self._valid_in_any(raw, regions)
                        or (written and self._possible_in_any(raw, regions or self.regions[:1]))
                        or self._sure_phone_word_before(text, start)  # the word is tested last: it costs most
                    )
                if found:
                    spans.add((start, self._with_extension(text, end)))
        return [Finding("phone", start, end, self.name) for start, end in sorted(spans)]

    @staticmethod
    def _sure_phone_word_before(text: str, start: int) -> bool:
        """True when a :data:`_SURE_PHONE_WORD` ends right before ``start`` (on the same line)."""
        if start == 0:
            return False
        window = text[max(0, start - 40) : start]
        return window[-1] in " \t:.(\"'=" and _SURE_PHONE_WORD.search(window) is not None

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _possible_in_any(raw: str, regions: tuple[str, ...]) -> bool:
        """True when ``raw`` has a length libphonenumber calls possible in one of ``regions``
        (for a ``+`` number, in its own country)."""
        import phonenumbers

        for region in regions[:1] if raw.lstrip("(").startswith("+") else regions:
            number = _parsed(raw, region)
            if number is None:
                return False  # not a number in any region's eyes
            if phonenumbers.is_possible_number(number):
                return True
        return False

    @staticmethod
    @functools.lru_cache(maxsize=4096)  # the same numbers recur across a dataset's records
    def _valid_in_any(raw: str, regions: tuple[str, ...]) -> bool:
        """True when ``raw`` is a valid number of one of ``regions`` (or a valid +international one)."""
        for region in regions[:1] if raw.lstrip("(").startswith("+") else regions:
            number = _parsed(raw, region)
            if number is None:
                return False  # not a number in any region's eyes
            if is_valid_number(number):
                return True
        return False

    def _plausible_regions(self, text: str, start: int, raw: str) -> tuple[str, ...]:
        """:meth:`_regions_for` narrowed by the shape of one candidate, so that a digit run
        is parsed once or twice, not once per region: a 10-digit run without a trunk 0
        can only be a NANP number, a trunk-0 number only one of a trunk-0 region, ...

        The phone-word look-back of :meth:`_regions_for` only adds context regions, so it is
        skipped (the same result, ~5 us less) where none of them can fit the candidate's shape,
        and for ``+international`` candidates, which keep the first base region only."""
        digits = raw.translate(_WINDOW_SEPARATORS)
        if raw.lstrip("(").startswith("+") or not digits:
            return self._base_regions(raw)[:1]
        first, n = digits[0], len(digits)
        if any(_shape_fits(region, first, n) for region in self.context_regions):
            regions = self._regions_for(text, start, raw)
        else:
            regions = self._base_regions(raw)
        return tuple(region for region in regions if _shape_fits(region, first, n))

    def _base_regions(self, chunk: str) -> tuple[str, ...]:
        """The regions :meth:`_regions_for` tries before any context region."""
        regions = self.regions if _TRUNK_ZERO.search(chunk) else tuple(r for r in self.regions if r in _NANP)
        return regions or self.regions[:1]

    def _regions_for(self, text: str, start: int, chunk: str) -> tuple[str, ...]:
        """The regions worth trying: numbers in national form outside the NANP (US, CA)
        start with a trunk prefix 0; ``+international`` numbers are found by any region;
        ES and IT national numbers only after a phone word."""
        regions = self._base_regions(chunk)
        if self.context_regions and _phone_word_before(text, start):
            regions = (*regions, *self.context_regions)
        elif "ES" in self.context_regions and _ES_GROUPED.fullmatch(chunk.strip("() ")):
            regions = (*regions, "ES")
        elif "IT" in self.context_regions and _IT_MOBILE.fullmatch(chunk.strip("() ")):
            regions = (*regions, "IT")
        return regions

    def _rejected(self, text: str, start: int, end: int, raw: str, digits: int | None = None) -> bool:
        """True for matches that are part of a longer identifier or have a non-phone shape
        (``digits``: how many ASCII digits ``raw`` holds, when the caller has counted them)."""
        if digits is None:
            digits = _digit_count(raw)
        if "#" in raw or not self.fewest_digits <= digits <= 15:  # E.164: at most 15
            return True
        # each test below rejects on its own: the cheap look at the neighbours goes first
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        if before == ":" and _TEL_URI.search(text[max(0, start - 8) : start]):
            before = " "
        if after in "xX" and _EXTENSION.match(text, end):
            after = " "  # "555-0132x204": an extension, not a longer token
        if before.isalnum() or before in "-/#_.:" or after.isalnum() or after in "_/:":
            return True
        opened = raw.lstrip("(")
        if opened.startswith("0.") and opened[2:3].isdigit():
            return True  # a decimal fraction ("0.957075 3", "0.5772157"), never a trunk prefix
        if _DATE_START.match(raw):
            return True
        if not opened.startswith("+") and (_NOT_PHONE.fullmatch(raw.strip("() ")) or _DOTTED_QUAD.search(raw)):
            return True  # an IPv4 address, a version, a date, ...; "+61.430.674.258" is a phone
        if _FOUR_FOUR_FOUR.fullmatch(raw) and not _phone_word_before(text, start):
            return True
        compact = raw.translate(_WINDOW_SEPARATORS)
        if _SEQUENCES[0] in compact or _SEQUENCES[1] in compact or _SEQUENCES[2] in compact or _is_isbn(raw):
            return True
        if text[end : end + 2] in ("-X", "-x") and raw.count("-") == 2:
            return True  # an ISBN-10 whose check digit is X ("0-487-05086-X")
        if _is_barcode(raw) and not _phone_word_before(text, start):
            return True
        if continues_code(text, start):
            return True
        if not opened.startswith("+") and _reference_word_before(text, start):
            return True
        # "... 12-34" right after: the number continues with a separator and digits
        return _SEPARATOR_DIGIT.match(text, end, end + 2) is not None

    @staticmethod
    def _with_extension(text: str, end: int) -> int:
        """``end`` moved past an extension written after the number (``x123``, ``ext. 12``)."""
        m = _EXTENSION.match(text, end)
        return m.end() if m else end
