"""Opt-out keywords as customers type them (SPEC section 6: STOP, BERHENTI, UNSUBSCRIBE, the button).

WhatsApp does not act on "STOP" for Cloud API businesses; we must. Customers write `STOP.`, `Stop!`,
`stop 🙏`, `BERHENTI ya kak`, `stop kirim promo dong`, with fullwidth letters, zero-width characters
from copy-paste and repeated letters (`stoppp`). A message is an opt-out when, after normalising that
away, it is nothing but a keyword with courtesy around it and optionally what to stop:

    courtesy* KEYWORD (object | courtesy)*

Anything else before the keyword (`jangan berhenti`, `don't stop`, `kapan promo berhenti`) or after it
that is neither courtesy nor an object (`stop by the shop tomorrow`) is a sentence, not a request, and
a keyword inside another word (`stopwatch`, `STOPKONTAK`) is no keyword. When unsure we do not opt
out: the customer can still say it plainly, and Meta's own stop (user_preferences, error 131050) is
honoured separately. There are no resume keywords: resuming comes from Meta's `user_preferences`.
"""

from __future__ import annotations

import re
import unicodedata

# Removed outright: invisible characters that copy-paste and keyboards put inside words
# (zero-width space/joiners, word joiner, BOM, soft hyphen: Unicode category Cf) and apostrophes,
# so that "don't" stays one word ("dont") and is not read as "don" + "t".
_APOSTROPHES = frozenset("'\u2019\u02bc`\u00b4")
# Letters repeated for emphasis ("stoppp", "yaaa", "pleasee") count once; the vocabulary below is
# folded the same way, so "all" and "all" still meet.
_REPEATS = re.compile(r"(\w)\1+")

_KEYWORDS = ("stop", "berhenti", "unsubscribe", "unsub", "opt out", "optout")
# What the customer asks to stop: "stop kirim promo", "unsubscribe from all messages".
_OBJECTS = (
    "promo promosi iklan pesan pesannya chat kirim kirimin kirimkan ngirim dikirim mengirim mengirimi "
    "langganan berlangganan broadcast bc notif notifikasi wa whatsapp "
    "from all semua semuanya sending messages message messaging texting me saya aku"
)
# Courtesy and fillers around the request, in Indonesian and English.
_COURTESY = (
    "please pls plz plis pliss tolong mohon ya yah yuk dong donk deh aja saja dulu kak kakak ka min admin gan "
    "sis bro pak bu bang mas mbak om tante terima kasih makasih trims tq thanks thank you thx ty ok oke okay "
    "sekarang now aja skrg"
)

# Template quick-reply payloads that mean "no more marketing" (machine strings: matched exactly).
OPT_OUT_PAYLOADS = frozenset({"STOP", "STOP PROMO", "STOP PROMOTIONS", "UNSUBSCRIBE", "OPT OUT", "BERHENTI"})


def normalise(text: str | None) -> str:
    """Casefolded NFKC words separated by single spaces; punctuation, emoji, symbols and whitespace of
    any kind separate words; invisible characters and apostrophes disappear."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    kept = []
    for char in folded:
        if char in _APOSTROPHES or unicodedata.category(char) == "Cf":
            continue
        kept.append(char if char.isalnum() else " ")
    return " ".join(_REPEATS.sub(r"\1", "".join(kept)).split())


def _phrases(words: str | tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    items = words.split() if isinstance(words, str) else words
    return tuple(tuple(normalise(item).split()) for item in items)


_KEYWORD_PHRASES = _phrases(_KEYWORDS)
_OBJECT_WORDS = frozenset(word for (word,) in _phrases(_OBJECTS))
_COURTESY_WORDS = frozenset(word for (word,) in _phrases(_COURTESY))
_PAYLOADS = frozenset(normalise(payload) for payload in OPT_OUT_PAYLOADS)


def is_opt_out_text(text: str | None) -> bool:
    """Is this typed message a request to stop messages? See the module docstring for the rule."""
    words = normalise(text).split()
    start = 0
    while start < len(words) and words[start] in _COURTESY_WORDS:
        start += 1
    for phrase in _KEYWORD_PHRASES:
        end = start + len(phrase)
        if tuple(words[start:end]) == phrase:
            return all(word in _OBJECT_WORDS or word in _COURTESY_WORDS for word in words[end:])
    return False


def is_opt_out_button(payload: str | None, text: str | None) -> bool:
    """A template quick-reply: its payload is one of ours, or its visible text is an opt-out."""
    return normalise(payload) in _PAYLOADS or is_opt_out_text(text)
