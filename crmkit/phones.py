"""Phone numbers: the region a customer's number is read in, and its normalised form."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber

from crmkit import defaults
from crmkit.hooks import Hooks


class Phones:
    """Reads phone numbers the way the CRM is configured: a default region, a region per branch, and the
    ``crmkit_normalize_phone`` hook deciding the normalised form."""

    def __init__(self, hooks: Hooks, region: str = "US", branch_regions: Mapping[str, str] | None = None) -> None:
        self._hooks = hooks
        #: The region (ISO 3166 alpha-2) phone numbers written without ``+`` are read in, unless the
        #: customer's ``country`` or their branch's region says otherwise.
        self.region = _region(region, "region")
        #: The region of each branch, for customers with a branch and no ``country``: ``{"bangkok": "TH"}``.
        self.branch_regions: dict[str, str] = {
            branch: _region(r, f"branch_regions[{branch!r}]") for branch, r in (branch_regions or {}).items()
        }

    def normalize(self, raw: str, region: str | None = None) -> str | None:
        """The normalised number, as decided by the ``crmkit_normalize_phone`` hook; ``ValueError`` with the
        reason when it is not a valid number in ``region`` (the default region when ``None``)."""
        region = (region or self.region).upper()
        if self._default_only():  # crmkit's own reading: its quicker form, the same answers
            return read_phone(raw, region)
        return self._hooks.normalize_phone(raw, region)

    def reader(self) -> Callable[[str, str | None], str | None]:
        """:meth:`normalize` for a batch of numbers: whether a plugin decides is asked once, not per number
        (a plugin registered meanwhile is not seen by this reader)."""
        if not self._default_only():
            return self.normalize
        default = self.region

        def read(raw: str, region: str | None = None) -> str | None:
            return read_phone(raw, (region or default).upper())

        return read

    def _default_only(self) -> bool:
        """Whether crmkit's own ``crmkit_normalize_phone`` is the only implementation (no plugin decides)."""
        impls = self._hooks._relay.crmkit_normalize_phone.get_hookimpls()
        return len(impls) == 1 and impls[0].function is defaults.crmkit_normalize_phone

    def region_of(self, country: str | None = None, branch: str | None = None) -> str:
        """The region a customer's phone is read in: their ``country``, else their branch's region, else
        the default region."""
        if country:
            return country.upper()
        if branch is not None and branch in self.branch_regions:
            return self.branch_regions[branch]
        return self.region


# -- crmkit's reading, quicker ----------------------------------------------------------------------
#
# ``phonenumbers.parse`` is most of the cost of reading a number (about 15 of 20 µs). For the numbers an
# import of a North American file is mostly made of, ten digits written as people write them (``(212)
# 200-0001``, ``212.200.0001``, ``+1 212-200-0001``), what it does comes down to taking the digits: no
# letters, extension or prefix to look at. So those are read here, and checked with ``phonenumbers``'
# own validity checks, in the order ``crmkit.defaults.crmkit_normalize_phone`` calls them; anything else,
# and any number those checks refuse (whose refusal must be worded as phonenumbers words it), goes to
# ``crmkit_normalize_phone`` itself. ``tests/test_phones_fast.py`` checks the answers are the same.

_AREA = r"(?:\(([2-9][0-9]{2})\)|([2-9][0-9]{2}))"
_REST = r"[ .-]?([0-9]{3})[ .-]?([0-9]{4})"
#: ``+1``, then ten digits whose first (the area code's) is 2 to 9; ASCII digits only.
_INTERNATIONAL = re.compile(rf"\+1[ .-]?{_AREA}{_REST}")
#: The same ten digits without ``+1``: read as national ones in the regions below.
_NATIONAL = re.compile(f"{_AREA}{_REST}")


def _national_regions() -> frozenset[str]:
    """The +1 regions where ten digits starting with 2 to 9 are read as they are: the national prefix to
    strip is ``1`` alone (no rule adding an area code), the international one ``011``; so neither applies
    to them, nor does the country code ``1``."""
    regions = set()
    for region in phonenumbers.region_codes_for_country_code(1):
        meta = PhoneMetadata.metadata_for_region(region)
        if (
            meta is not None
            and meta.national_prefix_for_parsing == "1"
            and meta.national_prefix_transform_rule is None
            and meta.international_prefix == "011"
        ):
            regions.add(region)
    return frozenset(regions)


NATIONAL_REGIONS = _national_regions()


def read_fast(raw: str, region: str) -> str | None:
    """The E.164 form of ``raw`` read in ``region`` (upper-case) when it is a number of the shape above that
    ``phonenumbers`` finds valid; ``None`` when it is not (then ``crmkit_normalize_phone`` decides)."""
    found = _INTERNATIONAL.fullmatch(raw)
    if found is None:
        if region not in NATIONAL_REGIONS:
            return None
        found = _NATIONAL.fullmatch(raw)
        if found is None:
            return None
    digits = (found[1] or found[2]) + found[3] + found[4]
    if _valid_for_region(digits, region):
        return "+1" + digits
    if phonenumbers.is_valid_number(PhoneNumber(country_code=1, national_number=int(digits))):
        return "+1" + digits
    return None


#: The patterns a +1 number is checked with, per region (see :func:`_type_patterns`): the general one, and
#: the number types' joined into one (a number of some type fully matches one of the alternatives).
_PATTERNS: dict[str, tuple[re.Pattern[str], re.Pattern[str]] | None] = {}


def _valid_for_region(digits: str, region: str) -> bool:
    """``phonenumbers.is_valid_number_for_region`` of the +1 number whose national number is ``digits`` (ten
    digits, the first 2 to 9): the same patterns, looked up once per region rather than once a number. It
    is most of what reading a number costs; ``tests/test_phones_fast.py`` compares the two."""
    if region not in _PATTERNS:
        found = _type_patterns(region)
        _PATTERNS[region] = None if found is None else (found[0], _any_of(found[1]))
    patterns = _PATTERNS[region]
    if patterns is None:
        return False
    general, types = patterns
    return general.fullmatch(digits) is not None and types.fullmatch(digits) is not None


def _any_of(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str]:
    """One pattern that fully matches what one of ``patterns`` fully matches (none: nothing)."""
    if not patterns:
        return re.compile(r"(?!)")
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns))


#: The number types ``phonenumbers``' ``_number_type_helper`` tries: a number that matches none is invalid.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")  # fmt: skip


def _type_patterns(region: str) -> tuple[re.Pattern[str], tuple[re.Pattern[str], ...]] | None:
    """For ten-digit national numbers of a region whose country code is 1: the general pattern, and those of
    the number types (in ``phonenumbers``' order) that allow ten digits; ``None`` when no such number can be
    valid there (another country code, no metadata, ten digits not a possible length).

    As ``phonenumbers``' ``_is_number_matching_desc``: a description with possible lengths that leave out
    ten never matches; one without a pattern never matches; otherwise its pattern must match in full."""
    meta = PhoneMetadata.metadata_for_region(region, None)
    if meta is None or phonenumbers.country_code_for_valid_region(region) != 1:
        return None

    def pattern(desc: phonenumbers.PhoneNumberDesc | None) -> re.Pattern[str] | None:
        if desc is None or not desc.national_number_pattern:
            return None
        if desc.possible_length and 10 not in desc.possible_length:
            return None
        return re.compile(desc.national_number_pattern)

    general = pattern(meta.general_desc)
    if general is None:
        return None
    types = (pattern(getattr(meta, name)) for name in _TYPES)
    return general, tuple(p for p in types if p is not None)


def read_phone(raw: str, region: str) -> str | None:
    """``crmkit_normalize_phone(raw, region)``: the same answer or the same ``ValueError``, quicker for the
    usual North American shapes (``region`` upper-case)."""
    if type(raw) is str:
        found = read_fast(raw, region)
        if found is not None:
            return found
    return defaults.crmkit_normalize_phone(raw, region)


def _region(value: object, what: str) -> str:
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{what}={value!r} is not an ISO 3166 alpha-2 region that phonenumbers knows")
    return value.upper()
