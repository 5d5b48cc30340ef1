"""Phone normalisation: every way an Indonesian user writes a number maps to one E.164 key."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relasify.errors import ValidationFailed
from relasify.phones import (
    MAX_PHONE_INPUT_LENGTH,
    InvalidPhone,
    PhoneProblem,
    e164_from_wa_id,
    normalize_phone,
    try_normalize_phone,
    wa_id_for,
)

# Real Indonesian mobile prefixes (Telkomsel, Indosat, XL, Smartfren), see peers-and-law.md C.1.
MOBILE_PREFIXES = ["811", "812", "813", "821", "822", "852", "853", "814", "815", "816", "855", "857", "817", "818",
                   "819", "859", "877", "878", "881", "882"]  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        "081234567890",
        "0812-3456-7890",
        "0812 3456 7890",
        "0812.3456.7890",
        "(0812) 3456-7890",
        "+62 812 3456 7890",
        "+62 812-3456-7890",
        "+62 0812 3456 7890",
        "+6281234567890",
        "6281234567890",
        "62 812 3456 7890",
        "0062 812 3456 7890",
        "006281234567890",
        "81234567890",
        "  0812-3456-7890  ",
        "wa.me/6281234567890",
        "https://wa.me/6281234567890",
        "https://wa.me/6281234567890?text=Halo",
        "http://wa.me/+6281234567890/",
        "api.whatsapp.com/send?phone=6281234567890",
        "https://api.whatsapp.com/send?phone=6281234567890&text=Halo",
        "https://api.whatsapp.com/send/?phone=%2B6281234567890",
    ],
)
def test_accepted_formats_normalise_to_the_same_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+6281234567890"


def test_bare_62_prefix_is_the_country_code_not_national_digits() -> None:
    # libphonenumber alone turns this into +6262812345678 (reference C.2 pitfall 1).
    assert normalize_phone("62812345678") == "+62812345678"


def test_landline_and_foreign_numbers_are_accepted() -> None:
    assert normalize_phone("021-2345678") == "+62212345678"
    assert normalize_phone("+1 202-555-0100") == "+12025550100"
    assert normalize_phone("+65 9123 4567") == "+6591234567"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", PhoneProblem.EMPTY),
        ("   ", PhoneProblem.EMPTY),
        ("0812345", PhoneProblem.TOO_SHORT),  # possible, but not valid (pitfall 3)
        ("+6281234", PhoneProblem.TOO_SHORT),
        ("08123456789012", PhoneProblem.TOO_LONG),
        ("081234567890123456", PhoneProblem.TOO_LONG),
        ("hello", PhoneProblem.NOT_A_NUMBER),
        ("wa.me/message/ABCDEF", PhoneProblem.NOT_A_NUMBER),
        ("+999 1234 5678", PhoneProblem.INVALID_COUNTRY_CODE),
        ("+65 0000 0000", PhoneProblem.INVALID_FOR_REGION),
        ("0812-3456-7890 ext. 12", PhoneProblem.HAS_EXTENSION),
        ("0" * (MAX_PHONE_INPUT_LENGTH + 1), PhoneProblem.INPUT_TOO_LONG),
    ],
)
def test_invalid_numbers_raise_validation_failed_with_the_reason(raw: str, problem: PhoneProblem) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone(raw, field="to")
    exc = caught.value
    assert isinstance(exc, InvalidPhone)
    assert exc.problem is problem
    assert exc.status == 422
    assert exc.errors == [{"location": "to", "in": "body", "message": exc.detail, "type": problem.value}]


def test_error_never_echoes_the_input() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone("0812999")
    assert "0812999" not in str(caught.value)
    assert "0812999" not in repr(caught.value.errors)


def test_non_string_input_is_a_validation_failure() -> None:
    with pytest.raises(ValidationFailed):
        normalize_phone(6281234567890)  # type: ignore[arg-type]


def test_try_normalize_phone() -> None:
    assert try_normalize_phone("0812-3456-7890") == "+6281234567890"
    assert try_normalize_phone("nope") is None


def test_wa_id_conversions() -> None:
    assert wa_id_for("+6281234567890") == "6281234567890"
    assert e164_from_wa_id("6281234567890") == "+6281234567890"
    with pytest.raises(ValueError, match=r"E\.164"):
        wa_id_for("6281234567890")


@pytest.mark.parametrize("wa_id", ["ID.13491208655302741918", "US.ENT.123", "", "0812", "+6281234567890", "12345"])
def test_e164_from_wa_id_rejects_non_phone_ids(wa_id: str) -> None:
    assert e164_from_wa_id(wa_id) is None


indonesian_mobiles = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(MOBILE_PREFIXES),
    st.text(alphabet="0123456789", min_size=7, max_size=8),
)


def _spellings(national_significant: str) -> list[str]:
    """Ways people write one number (national significant digits like 81234567890)."""
    nsn = national_significant
    grouped = f"{nsn[:3]}-{nsn[3:7]}-{nsn[7:]}"
    return [
        "0" + nsn,
        "0" + grouped,
        "0" + grouped.replace("-", " "),
        "0" + grouped.replace("-", "."),
        f"(0{nsn[:3]}) {nsn[3:]}",
        "+62" + nsn,
        "+62 " + grouped,
        "+62 0" + grouped,
        "62" + nsn,
        "0062" + nsn,
        "00 62 " + grouped.replace("-", " "),
        nsn,
        "wa.me/62" + nsn,
        "https://wa.me/62" + nsn + "?text=hi",
        "https://api.whatsapp.com/send?phone=62" + nsn,
    ]


@settings(max_examples=150, deadline=None)
@given(indonesian_mobiles)
def test_every_accepted_format_of_a_valid_mobile_maps_to_one_e164(nsn: str) -> None:
    expected = "+62" + nsn
    results = {spelling: try_normalize_phone(spelling) for spelling in _spellings(nsn)}
    accepted = {spelling: e164 for spelling, e164 in results.items() if e164 is not None}
    if try_normalize_phone("+62" + nsn) is None:
        # Not a valid number in the metadata: then no spelling may be accepted as something else.
        assert not accepted
        return
    assert accepted == dict.fromkeys(results, expected)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.from_regex(r"[+0-9 ()./\-]{0,30}", fullmatch=True),
                 st.from_regex(r"(https?://)?(wa\.me|api\.whatsapp\.com)/[^\s]{0,40}", fullmatch=True)))  # fmt: skip
def test_arbitrary_input_only_ever_raises_validation_failed(raw: str) -> None:
    try:
        result = normalize_phone(raw)
    except ValidationFailed:
        return
    assert result.startswith("+")
    assert result[1:].isdigit()
    # Normalising is idempotent.
    assert normalize_phone(result) == result


@settings(max_examples=150, deadline=None)
@given(indonesian_mobiles)
def test_wa_id_round_trip(nsn: str) -> None:
    e164 = try_normalize_phone("0" + nsn)
    if e164 is None:
        return
    assert e164_from_wa_id(wa_id_for(e164)) == e164
    assert wa_id_for(e164_from_wa_id(wa_id_for(e164)) or "") == wa_id_for(e164)
