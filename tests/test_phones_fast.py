"""crmkit's quicker reading of phone numbers (:func:`crmkit.phones.read_phone`) gives exactly the answers of
``crmkit_normalize_phone`` with ``phonenumbers``: the same E.164 form, or a ``ValueError`` with the same
message; and the shapes it reads itself give the very ``PhoneNumber`` that ``phonenumbers.parse`` gives."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crmkit import CRM, hookimpl
from crmkit.defaults import crmkit_normalize_phone
from crmkit.phones import NATIONAL_REGIONS, _valid_for_region, read_fast, read_phone

NANP = sorted(phonenumbers.region_codes_for_country_code(1))
#: The +1 regions, the regions read nationally, and some others (a national prefix 0, 8, none; an IDD of 00).
REGIONS = sorted({*NANP, "GB", "DE", "TH", "RU", "IT", "FR", "AR", "MX", "BR", "IN", "AU", "JP", "HU", "SG"})


def outcome(read: object, raw: str, region: str) -> tuple[str, str | None]:
    try:
        return "ok", read(raw, region)  # type: ignore[operator]
    except ValueError as exc:
        return "error", str(exc)


def same(raw: str, region: str) -> None:
    assert outcome(read_phone, raw, region) == outcome(crmkit_normalize_phone, raw, region), (raw, region)
    fast = read_fast(raw, region)
    if fast is not None:
        parsed = phonenumbers.parse(raw, region)
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == fast
        assert parsed == phonenumbers.parse(fast, region)


digit = st.sampled_from("0123456789")
separator = st.sampled_from(["", " ", "-", ".", "  ", "/", "--", "_", "\t", "\u00a0"])
prefix = st.sampled_from(
    ["", "+1", "+1 ", "+1-", "+1.", "1", "1 ", "+", "+ 1 ", "011 ", "+44 ", "0", "+12", "\uff0b1 "]
)
groups = st.lists(st.text(digit, min_size=1, max_size=5), min_size=1, max_size=4)


@st.composite
def typed(draw: st.DrawFn) -> str:
    """Numbers as people type them: mostly ten digits in groups, with or without +1 and parentheses; some
    shorter or longer, with letters, an extension, odd separators or non-ASCII digits."""
    area = draw(st.text(digit, min_size=3, max_size=3))
    rest = [draw(st.text(digit, min_size=3, max_size=3)), draw(st.text(digit, min_size=4, max_size=4))]
    if draw(st.booleans()):
        rest = draw(groups)
    head = f"({area})" if draw(st.booleans()) else area
    number = draw(prefix) + head + "".join(draw(separator) + part for part in rest)
    tail = draw(st.sampled_from(["", "", "", " x12", " ext. 7", "#3", " ", "a", "abc", "/x9", ";ext=1"]))
    if draw(st.integers(0, 9)) == 0:
        position = draw(st.integers(0, len(number)))
        odd = draw(st.sampled_from(["٢", "A", "(", ")", " ", "-", "\x00", "+"]))
        number = number[:position] + odd + number[position:]
    return number + tail


TRICKY = [
    "(212) 200-0001", "+1 212-200-0002", "212.200.0001", "2122000001", "+12122000001", "+1(212)200-0001",
    "(212)200-0001", "(212 200-0001", "212) 200-0001", "(012) 200-0001", "(112) 200-0001", "(212) 100-0001",
    "(212) 000-0001", "(999) 200-0001", "(555) 555-5555", "(800) 555-0100", "(900) 200-0001",
    "+1 999 200 0001", "+1 112 200 0001", "1 212 200 0001", "1-212-200-0001", "011 1 212 200 0001",
    "212-200-000", "212-200-00011", "(212) 200-0001 x12", "(212) 200-0001 ext. 7", "(212) 200-0001#",
    "1-800-FLOWERS", "212-CALL-NOW", "", " ", "+", "x", "12", "+44 20 7946 0958", "020 7946 0958",
    "+66 81 234 5678", "081 234 5678", "+7 912 345 67 89", "+39 06 1234 5678", "(416) 555-0199",
    "(787) 200-0001", "(809) 200-0001", "(876) 200-0001", "(242) 357-1234", "(441) 295-1234",
    "+1 242 357 1234", "+1 441 295 1234", "+1 876 200 0001", "٢١٢٢٠٠٠٠٠١", "(212) ٢٠٠-0001",
    " (212) 200-0001", "(212) 200-0001 ", "+1  212 200 0001", "+1--212-200-0001", "\uff0b1 212 200 0001",
    "tel:+1-212-200-0001", "+1 212 200 0001;ext=3", "(212)-200-0001", "(212).200.0001",
]  # fmt: skip


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("raw", TRICKY)
def test_tricky_numbers_read_the_same(raw: str, region: str) -> None:
    same(raw, region)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=typed(), region=st.sampled_from(REGIONS))
@example(raw="(212) 200-0001", region="US")
def test_typed_numbers_read_the_same(raw: str, region: str) -> None:
    same(raw, region)


@settings(max_examples=1500, deadline=None)
@given(raw=st.text(st.sampled_from("0123456789 +-.()x#٢aA"), max_size=20), region=st.sampled_from(REGIONS))
def test_any_text_reads_the_same(raw: str, region: str) -> None:
    same(raw, region)


@settings(max_examples=1500, deadline=None)
@given(number=st.integers(2_000_000_000, 9_999_999_999), region=st.sampled_from(NANP), international=st.booleans())
def test_every_ten_digits_read_the_same(number: int, region: str, international: bool) -> None:
    """Valid and invalid area codes and exchanges, in each +1 region."""
    digits = str(number)
    same(f"{'+1 ' if international else ''}({digits[:3]}) {digits[3:6]}-{digits[6:]}", region)


def valid_as_phonenumbers_says(digits: str, region: str) -> bool:
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
    return phonenumbers.is_valid_number_for_region(number, region)


#: Every region phonenumbers knows, and a few it does not: the patterns are looked up per region.
ALL_REGIONS = sorted({*phonenumbers.SUPPORTED_REGIONS, "001", "ZZ", "XX"})


@pytest.mark.parametrize("region", ALL_REGIONS)
def test_the_validity_check_per_region_is_phonenumbers_own(region: str) -> None:
    """Each area code with a few exchanges and lines (valid and invalid ones), in every region."""
    for area in range(200, 1000):
        for rest in ("2000001", "5550100", "1000001", "9119999", "3571234", "2951234"):
            digits = f"{area}{rest}"
            assert _valid_for_region(digits, region) == valid_as_phonenumbers_says(digits, region), (digits, region)


@settings(max_examples=3000, deadline=None)
@given(number=st.integers(2_000_000_000, 9_999_999_999), region=st.sampled_from(REGIONS))
def test_the_validity_check_of_any_ten_digits_is_phonenumbers_own(number: int, region: str) -> None:
    assert _valid_for_region(str(number), region) == valid_as_phonenumbers_says(str(number), region)


def test_the_regions_read_nationally_are_the_plain_ones() -> None:
    assert {"US", "CA"} <= NATIONAL_REGIONS
    assert not {"BS", "BB", "AG", "GB"} & NATIONAL_REGIONS  # an area code added to seven digits, or not +1


class Keeps:
    """A plugin deciding the normalised form itself."""

    @hookimpl
    def crmkit_normalize_phone(self, raw: str, region: str) -> str | None:
        return f"{region}:{raw}"


def test_a_plugin_normalize_phone_is_still_asked() -> None:
    crm = CRM("sqlite://", plugins=[Keeps()], load_entry_points=False)
    assert crm.normalize_phone("(212) 200-0001") == "US:(212) 200-0001"
    assert CRM("sqlite://", load_entry_points=False).normalize_phone("(212) 200-0001") == "+12122000001"
