"""Phone input -> E.164, and E.164 <-> WhatsApp `wa_id`.

Indonesia is the default region (SPEC section 4). The pitfalls handled here are those found in
/work/shared/reference/peers-and-law.md section C.2: a bare leading "62" is ambiguous to
libphonenumber, a leading "0062" is not understood as an international prefix in region ID, and
"possible" numbers are not necessarily valid ones. Error messages never echo the input (it is
personal data).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from relasify.errors import ValidationFailed

if TYPE_CHECKING:
    import phonenumbers
    from phonenumbers import NumberParseException

# phonenumbers (~10 ms to import) is imported by the functions that parse, so a cold start that
# handles no phone number (status webhooks, most API routes) does not pay for it.

DEFAULT_REGION = "ID"
MAX_PHONE_INPUT_LENGTH = 64

_WA_ME_HOSTS = frozenset({"wa.me", "www.wa.me"})
_WA_API_HOSTS = frozenset({"api.whatsapp.com", "web.whatsapp.com", "whatsapp.com", "www.whatsapp.com"})
_SEPARATORS = re.compile(r"[\s\-.()/\u00a0\u2010-\u2015]+")
_DIGITS_ONLY = re.compile(r"[0-9]+")
_WA_ID = re.compile(r"[1-9][0-9]{6,14}")


class PhoneProblem(StrEnum):
    """Why an input is not a usable phone number; the value is the `errors[].type` of the 422."""

    EMPTY = "phone_empty"
    INPUT_TOO_LONG = "phone_input_too_long"
    NOT_A_NUMBER = "phone_not_a_number"
    TOO_SHORT = "phone_too_short"
    TOO_LONG = "phone_too_long"
    INVALID_COUNTRY_CODE = "phone_invalid_country_code"
    INVALID_FOR_REGION = "phone_invalid_for_region"
    HAS_EXTENSION = "phone_has_extension"


_MESSAGES: dict[PhoneProblem, str] = {
    PhoneProblem.EMPTY: "Phone number is empty",
    PhoneProblem.INPUT_TOO_LONG: f"Phone input is longer than {MAX_PHONE_INPUT_LENGTH} characters",
    PhoneProblem.NOT_A_NUMBER: "Not a phone number",
    PhoneProblem.TOO_SHORT: "Phone number is too short",
    PhoneProblem.TOO_LONG: "Phone number is too long",
    PhoneProblem.INVALID_COUNTRY_CODE: "Unknown country calling code",
    PhoneProblem.INVALID_FOR_REGION: "Not a valid phone number for its country",
    PhoneProblem.HAS_EXTENSION: "Phone extensions cannot receive WhatsApp messages",
}


class InvalidPhone(ValidationFailed):
    """A 422 whose `errors[]` names the field and the precise reason."""

    def __init__(self, problem: PhoneProblem, *, field: str = "phone") -> None:
        message = _MESSAGES[problem]
        super().__init__(
            message,
            errors=[{"location": field, "in": "body", "message": message, "type": problem.value}],
        )
        self.problem = problem


def normalize_phone(raw: str, *, region: str = DEFAULT_REGION, field: str = "phone") -> str:
    """Return the E.164 form (`+6281234567890`) of a phone typed by a person or taken from a wa.me link.

    Raises InvalidPhone (a ValidationFailed, HTTP 422) with a clear reason; nothing else.
    """
    if not isinstance(raw, str):
        raise InvalidPhone(PhoneProblem.NOT_A_NUMBER, field=field)
    # Bounded before any parsing so hostile input costs nothing.
    if len(raw) > MAX_PHONE_INPUT_LENGTH:
        raise InvalidPhone(PhoneProblem.INPUT_TOO_LONG, field=field)
    text = raw.strip()
    if not text:
        raise InvalidPhone(PhoneProblem.EMPTY, field=field)

    import phonenumbers
    from phonenumbers import NumberParseException, PhoneNumberFormat

    candidate = _candidate_from_text(text)
    try:
        number = phonenumbers.parse(candidate, region)
    except NumberParseException as exc:
        raise InvalidPhone(_parse_problem(exc), field=field) from None
    if number.extension:
        raise InvalidPhone(PhoneProblem.HAS_EXTENSION, field=field)
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(_invalidity_reason(number), field=field)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def try_normalize_phone(raw: str, *, region: str = DEFAULT_REGION) -> str | None:
    """normalize_phone for callers that only need yes/no (e.g. matching an inbound number)."""
    try:
        return normalize_phone(raw, region=region)
    except ValidationFailed:
        return None


def wa_id_for(e164: str) -> str:
    """The Cloud API's `wa_id` for a phone: the E.164 digits without the plus."""
    if not e164.startswith("+") or not _DIGITS_ONLY.fullmatch(e164[1:]):
        raise ValueError("expected an E.164 phone number")
    return e164[1:]


def e164_from_wa_id(wa_id: str) -> str | None:
    """E.164 for a phone-based `wa_id`, or None when the id is not a valid phone number
    (e.g. a business-scoped user id like `ID.1349...`, see peers-and-law.md C.3)."""
    if not isinstance(wa_id, str) or not _WA_ID.fullmatch(wa_id):
        return None
    import phonenumbers
    from phonenumbers import NumberParseException, PhoneNumberFormat

    try:
        number = phonenumbers.parse("+" + wa_id, None)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _candidate_from_text(text: str) -> str:
    """Reduce a link or a formatted number to something libphonenumber parses unambiguously."""
    link_digits = _digits_from_whatsapp_link(text)
    if link_digits is not None:
        # wa.me and api.whatsapp.com carry the full international number without "+".
        return "+" + link_digits if link_digits else text
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("0062"):
        # "0062..." means international; region ID metadata only knows "008"/"009" as IDD prefixes.
        return "+" + compact[2:]
    if _DIGITS_ONLY.fullmatch(compact) and compact.startswith("62"):
        # A bare leading 62 is the country code (libphonenumber would keep it as national digits).
        return "+" + compact
    return text


def _digits_from_whatsapp_link(text: str) -> str | None:
    """Digits of a wa.me / api.whatsapp.com link; "" for a link without a number; None when not a link."""
    lowered = text.lower()
    if "wa.me/" not in lowered and "whatsapp.com/" not in lowered:
        return None
    url = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return ""
    if host in _WA_ME_HOSTS:
        path = parts.path.strip("/").split("/", 1)[0]
        return _SEPARATORS.sub("", path).lstrip("+")
    if host in _WA_API_HOSTS:
        phone = parse_qs(parts.query).get("phone", [""])[0]
        return _SEPARATORS.sub("", phone).lstrip("+")
    return None


def _parse_problem(exc: NumberParseException) -> PhoneProblem:
    from phonenumbers import NumberParseException

    match exc.error_type:
        case NumberParseException.INVALID_COUNTRY_CODE:
            return PhoneProblem.INVALID_COUNTRY_CODE
        case NumberParseException.TOO_SHORT_NSN | NumberParseException.TOO_SHORT_AFTER_IDD:
            return PhoneProblem.TOO_SHORT
        case NumberParseException.TOO_LONG:
            return PhoneProblem.TOO_LONG
        case _:
            return PhoneProblem.NOT_A_NUMBER


def _invalidity_reason(number: phonenumbers.PhoneNumber) -> PhoneProblem:
    """Why a parsed number is not valid. Region ID accepts 7-17 digits as "possible", so the length
    is judged against mobile lengths (the numbers WhatsApp users have) when the general check is inconclusive."""
    import phonenumbers
    from phonenumbers import ValidationResult

    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason not in (ValidationResult.TOO_SHORT, ValidationResult.TOO_LONG, ValidationResult.INVALID_COUNTRY_CODE):
        reason = phonenumbers.is_possible_number_for_type_with_reason(number, phonenumbers.PhoneNumberType.MOBILE)
    match reason:
        case ValidationResult.TOO_SHORT:
            return PhoneProblem.TOO_SHORT
        case ValidationResult.TOO_LONG:
            return PhoneProblem.TOO_LONG
        case ValidationResult.INVALID_COUNTRY_CODE:
            return PhoneProblem.INVALID_COUNTRY_CODE
        case _:
            return PhoneProblem.INVALID_FOR_REGION
