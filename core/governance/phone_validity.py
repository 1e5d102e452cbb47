"""``phonenumbers.is_valid_number``, answered the same way two to three times faster.

libphonenumber decides validity in two steps, each of which tests a number against up to
eleven patterns of its region's metadata, one at a time, with a possible-length check and a
pattern lookup per test: which region of the calling code the number belongs to, then whether
it matches one of that region's number types (fixed line, mobile, toll free, ...). On text full
of numbers that was a fifth of the phone scanner's time. :func:`is_valid_number` follows the same
steps on the same metadata, but per region and number length it compiles the types' patterns
once into one alternation (a full match of ``A|B`` is a full match of ``A`` or of ``B``), so a
number costs two or three regex calls. Non-geographic calling codes (``+800``) are left to
``phonenumbers`` itself. ``tests/test_governance_fastpaths.py`` checks the answers against
``phonenumbers.is_valid_number`` on numbers of every calling code.

:func:`parse_international` likewise builds what ``phonenumbers.parse`` returns for a number
written in international form (``+44 (0)20 ...``, ``0049 30 ...``), about four times faster,
with the same metadata and the same steps (see its docs); the tests compare it with ``parse``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from phonenumbers import PhoneNumber

__all__ = ["is_valid_number", "parse_international"]

#: The number types libphonenumber's ``_number_type_helper`` tries after the general
#: description, in its order; ``mobile`` follows unless its pattern is the fixed-line one.
_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


def _pattern(desc: Any, length: int) -> str | None:
    """The pattern of a ``PhoneNumberDesc`` that a number of ``length`` digits is tested
    against, or None when the desc cannot match it (``_is_number_matching_desc``)."""
    if desc is None:
        return None
    if len(desc.possible_length) > 0 and length not in desc.possible_length:
        return None
    pattern = desc.national_number_pattern
    return pattern if pattern else None


class _Region:
    """One region's metadata, read for validity: its calling code, its leading-digits test
    and, per number length, the general pattern and the types' patterns compiled once."""

    def __init__(self, metadata: Any) -> None:
        self.country_code: int = metadata.country_code
        self.leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
        self._general = metadata.general_desc
        self._types = [getattr(metadata, name) for name in _TYPE_DESCS]
        if not metadata.same_mobile_and_fixed_line_pattern:
            self._types.append(metadata.mobile)
        self._by_length: dict[int, tuple[re.Pattern[str], list[re.Pattern[str]]] | None] = {}

    def _compile(self, length: int) -> tuple[re.Pattern[str], list[re.Pattern[str]]] | None:
        general = _pattern(self._general, length)
        types = [p for p in (_pattern(desc, length) for desc in self._types) if p is not None]
        if general is None or not types:
            return None
        try:
            combined = [re.compile("|".join(f"(?:{p})" for p in types))]
        except re.error:  # a pattern that cannot share one expression: test them one by one
            combined = [re.compile(p) for p in types]
        return re.compile(general), combined

    def has_type(self, nsn: str) -> bool:
        """True when ``_number_type_helper(nsn, metadata)`` is not ``UNKNOWN``."""
        length = len(nsn)
        if length in self._by_length:
            compiled = self._by_length[length]
        else:
            compiled = self._by_length[length] = self._compile(length)
        if compiled is None:
            return False
        general, types = compiled
        return general.fullmatch(nsn) is not None and any(p.fullmatch(nsn) is not None for p in types)


_REGIONS: dict[str, _Region | None] = {}


def _region(code: str) -> _Region | None:
    """The :class:`_Region` of a region code (None when phonenumbers has no metadata for it)."""
    if code not in _REGIONS:
        from phonenumbers.phonemetadata import PhoneMetadata

        metadata = PhoneMetadata.metadata_for_region(code.upper(), None)
        _REGIONS[code] = _Region(metadata) if metadata is not None else None
    return _REGIONS[code]


_PHONENUMBERS: tuple[Any, Any, Any] | None = None


def _load_phonenumbers() -> tuple[Any, Any, Any]:
    """``PhoneNumber``, ``PhoneMetadata`` and ``phonenumberutil``, imported on first use (an
    import statement in :func:`parse_international` would cost 4 us a call)."""
    global _PHONENUMBERS
    from phonenumbers import PhoneNumber, phonenumberutil
    from phonenumbers.phonemetadata import PhoneMetadata

    _PHONENUMBERS = (PhoneNumber, PhoneMetadata, phonenumberutil)
    return _PHONENUMBERS


def is_valid_number(number: PhoneNumber) -> bool:
    """What ``phonenumbers.is_valid_number(number)`` returns, computed with compiled metadata."""
    util = (_PHONENUMBERS or _load_phonenumbers())[2]  # phonenumberutil, imported once
    codes = util.COUNTRY_CODE_TO_REGION_CODE.get(number.country_code) if number.country_code is not None else None
    if codes is None:
        return False
    if util.REGION_CODE_FOR_NON_GEO_ENTITY in codes:
        return bool(util.is_valid_number(number))
    nsn = util.national_significant_number(number)
    # region_code_for_number: the only region, or the first whose leading digits or types fit
    found: str | None = codes[0] if len(codes) == 1 else None
    typed = False  # found because has_type(nsn) held for it (the NANP's US, say)
    if found is None:
        for code in codes:
            region = _region(code)
            if region is None:
                continue
            if region.leading is not None:
                if region.leading.match(nsn):
                    found = code
                    break
            elif region.has_type(nsn):
                found, typed = code, True
                break
    if found is None:
        return False
    # is_valid_number_for_region: the region's calling code must be the number's
    region = _region(found)
    if region is None or region.country_code != number.country_code:
        return False
    return typed or region.has_type(nsn)  # has_type is a pure test: no need to ask it twice


#: What :func:`parse_international` reads itself: an optional ``(``, then ``+`` or the digits
#: of an international call (``00``, ``011``), then ASCII digits and the separators a phone
#: window holds. No letters, ``#``, ``;`` nor ``,``: none of phonenumbers' extension patterns
#: can match, there is no ``phone-context`` and no vanity number to convert, so ``parse``'s
#: ``_normalize`` of it is just its digits.
_INTERNATIONAL_SHAPE = re.compile(r"\(?\+?[0-9][0-9 ().\-/]*")
_SEPARATORS = str.maketrans("", "", " ().-/+")
_METADATA_PATTERNS: dict[tuple[str, str], re.Pattern[str] | None] = {}


def _metadata_pattern(metadata: Any, field: str) -> re.Pattern[str] | None:
    """A region's regex field (``international_prefix``, ``national_prefix_for_parsing``),
    compiled once (None when the region has none)."""
    key = (metadata.id, field)
    if key not in _METADATA_PATTERNS:
        pattern = getattr(metadata, field)
        _METADATA_PATTERNS[key] = re.compile(pattern) if pattern else None
    return _METADATA_PATTERNS[key]


def _country_code(digits: str, codes: Any) -> tuple[int, str]:
    """``phonenumberutil._extract_country_code``: the first 1 to 3 digits that are a calling
    code and the rest, or ``(0, digits)`` (a calling code never starts with 0)."""
    if digits and digits[0] != "0":
        for size in (1, 2, 3):
            if size <= len(digits) and int(digits[:size]) in codes:
                return int(digits[:size]), digits[size:]
    return 0, digits


def parse_international(raw: str, region: str) -> PhoneNumber | None:
    """What ``phonenumbers.parse(raw, region)`` returns for a number in international form
    (``+44 (0)20 7946 0018``, ``0049 30 901820`` dialled from ``region``), built by the same
    steps without the ~50 us of ``parse``'s general handling (extensions, RFC 3966, letters,
    Unicode digits). None for any other input, and wherever ``parse`` would raise: the caller
    then asks ``parse`` itself. ``tests/test_governance_fastpaths.py`` checks the results
    against ``parse`` on numbers of every calling code, written in many ways.

    The steps, as ``parse`` takes them for such input: strip the ``+`` (or the region's
    international prefix when the digit after it is not 0), take the first 1 to 3 digits that
    are a known calling code, read the rest with the metadata of that code's main region:
    strip a national prefix (the ``(0)`` of ``+44 (0)20``) where the number keeps a possible
    length, then record the leading zeros Italian numbers keep."""
    if not raw.isascii() or _INTERNATIONAL_SHAPE.fullmatch(raw) is None:
        return None
    PhoneNumber, PhoneMetadata, phonenumberutil = _PHONENUMBERS or _load_phonenumbers()
    COUNTRY_CODE_TO_REGION_CODE = phonenumberutil.COUNTRY_CODE_TO_REGION_CODE

    digits = raw.translate(_SEPARATORS)
    if len(digits) < 3:
        return None  # parse's viability test: at least three digits
    if raw.lstrip("(").startswith("+"):
        full = digits
    else:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        idd = _metadata_pattern(metadata, "international_prefix") if metadata is not None else None
        match = idd.match(digits) if idd is not None else None
        if match is None or digits[match.end() : match.end() + 1] == "0":
            return None  # national form (or an IDD followed by 0, which parse keeps)
        full = digits[match.end() :]
    if len(full) <= 2:
        return None  # TOO_SHORT_AFTER_IDD
    country, national = _country_code(full, COUNTRY_CODE_TO_REGION_CODE)
    if country == 0:
        return None  # parse retries without the plus, or raises
    number_region = phonenumberutil.region_code_for_country_code(country)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country, number_region)
    if metadata is None or len(national) < 2:
        return None
    prefix = _metadata_pattern(metadata, "national_prefix_for_parsing")
    # no match of the national prefix: _maybe_strip_national_prefix_carrier_code keeps the number
    if prefix is not None and prefix.match(national):
        _, stripped, _ = phonenumberutil._maybe_strip_national_prefix_carrier_code(national, metadata)
        if stripped != national and phonenumberutil._test_number_length(stripped, metadata) not in (
            phonenumberutil.ValidationResult.TOO_SHORT,
            phonenumberutil.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
            phonenumberutil.ValidationResult.INVALID_LENGTH,
        ):
            national = stripped
    if not 2 <= len(national) <= 17:
        return None  # TOO_SHORT_NSN, TOO_LONG
    number = PhoneNumber(country_code=country)
    if national[0] == "0":  # _set_italian_leading_zeros_for_phone_number
        phonenumberutil._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number
