"""Opt-out keywords as customers really type them (SPEC section 6), and the sentences that only look like one."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from relasify.services.opt_out_keywords import is_opt_out_button, is_opt_out_text, normalise

MUST_OPT_OUT = [
    # the keywords as the SPEC spells them, and the old exact forms
    "STOP",
    "stop",
    "  Stop\n",
    "BERHENTI",
    "berhenti",
    "Unsubscribe",
    "UNSUBSCRIBE",
    "STOP PROMO",
    "stop  promo",
    "STOP_PROMO",
    "stop-promo",
    # punctuation, emoji, case
    "STOP.",
    "Stop!",
    "stop!!!",
    "Berhenti.",
    "BERHENTI!",
    "stop 🙏",
    "🙏 stop 🙏",
    "STOP 🛑",
    "stop 🙏🏽",  # skin tone modifier
    "❌ BERHENTI ❌",
    '"stop"',
    "'STOP'",
    "(stop)",
    "stop?",
    "*STOP*",
    "_stop_",
    "~berhenti~",
    "stop…",
    "Unsubscribe.",
    # Unicode: fullwidth, mathematical bold, zero-width characters, non-breaking space
    "\uff33\uff34\uff2f\uff30",  # fullwidth
    "\U0001d412\U0001d413\U0001d40e\U0001d40f",  # mathematical bold
    "s\u200btop",
    "\ufeffSTOP",
    "stop\u200d",
    "\u2060berhenti\u2060",
    "\u00a0STOP\u00a0",
    "\u3000stop",
    # repeated letters
    "stoppp",
    "STOOOP",
    "berhentiii",
    # short courtesy around the keyword (Indonesian)
    "BERHENTI ya",
    "berhenti ya kak",
    "Stop dong",
    "stop donk min",
    "stop aja",
    "stop dulu ya",
    "tolong berhenti",
    "mohon berhenti, terima kasih",
    "Berhenti kak 🙏",
    "stop ya, makasih",
    "ok stop",
    "stop sekarang",
    # what to stop
    "stop kirim promo",
    "Stop kirim pesan ya",
    "berhenti kirim promo",
    "berhenti langganan",
    "stop berlangganan",
    "stop promosi",
    "STOP PROMO dong kak",
    "mohon berhenti mengirim pesan",
    "stop broadcast",
    # English courtesy and objects
    "stop please",
    "please stop",
    "STOP PLS",
    "stop plz",
    "unsubscribe pls",
    "unsubscribe me",
    "please unsubscribe me",
    "unsubscribe from all messages",
    "stop sending me messages",
    "stop texting me",
    "stop, thank you",
    "thanks, stop",
    "opt out",
    "OPT-OUT",
    "optout",
    "unsub",
]

MUST_NOT_OPT_OUT = [
    # negated or questioned
    "jangan berhenti kirim promo",
    "jangan stop",
    "tidak berhenti",
    "belum berhenti",
    "kapan promo berhenti?",
    "kenapa berhenti?",
    "promo stop?",
    "don't stop",
    "dont stop",
    "don\u2019t stop",  # typographic apostrophe
    "do not stop",
    "never stop",
    "i can't stop",
    "didn't unsubscribe",
    # the keyword inside another word
    "stopwatch",
    "STOPKONTAK",
    "STOPS",
    "stopped",
    "stopper",
    "busstop",
    "unsubscribed",
    "berhentinya",
    "pemberhentian",
    # a sentence that merely contains the keyword
    "stop by the shop tomorrow",
    "stop it please",
    "please stop by later",
    "bus berhenti di halte mana?",
    "kalau mau berhenti langganan caranya gimana?",
    "stop dulu, mau tanya harga",
    "Stop 2 jam lagi ya",
    "unsubscribe link is broken",
    # nothing to do with it
    "halo",
    "Konfirmasi",
    "promo",
    "🙏",
    "",
    "   ",
    None,
]


@pytest.mark.parametrize("text", MUST_OPT_OUT)
def test_typed_opt_out_is_recognised(text: str) -> None:
    assert is_opt_out_text(text) is True


@pytest.mark.parametrize("text", MUST_NOT_OPT_OUT)
def test_false_friends_do_not_opt_out(text: str | None) -> None:
    assert is_opt_out_text(text) is False


def test_the_tables_are_real_world_sized() -> None:
    assert len(MUST_OPT_OUT) >= 40
    assert len(MUST_NOT_OPT_OUT) >= 20


@pytest.mark.parametrize(
    ("payload", "text", "expected"),
    [
        ("STOP_PROMO", "Berhenti promosi", True),
        ("stop-promo", None, True),
        ("UNSUBSCRIBE", None, True),
        ("Stop Promotions", None, True),
        ("opt_out", None, True),
        ("CONFIRM", "Stop", True),
        ("CONFIRM", "Berhenti promosi", True),
        ("CONFIRM", "Konfirmasi", False),
        ("STOPWATCH_OFFER", "Lihat stopwatch", False),
        (None, None, False),
    ],
)
def test_opt_out_button(payload: str | None, text: str | None, expected: bool) -> None:
    assert is_opt_out_button(payload, text) is expected


def test_normalise_folds_case_width_invisible_characters_and_separators() -> None:
    assert normalise("  \uff33\uff34\uff2f\uff30\u200b!! _ Promo 🙏 ") == "stop promo"
    assert normalise("Don\u2019t") == "dont"


# --- property: decoration around a keyword never hides it -----------------------------------------

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\ufe0f\ufe0e"
_DECORATION_CATEGORIES = ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc")


def _is_pure_decoration(char: str) -> bool:
    # NFKC turns some symbols into letters or digits ("™" -> "TM", "①" -> "1"): those are text, not decoration.
    return not any(c.isalnum() for c in unicodedata.normalize("NFKC", char))


decoration = st.text(
    alphabet=st.one_of(
        st.characters(categories=_DECORATION_CATEGORIES).filter(_is_pure_decoration),
        st.sampled_from(list(_ZERO_WIDTH + "🙏🛑❌😊👍🏽.!?,;:-_*~\"'()[] \t\n")),
    ),
    max_size=12,
)
keyword = st.sampled_from(["STOP", "stop", "Stop", "BERHENTI", "berhenti", "Berhenti", "UNSUBSCRIBE", "unsubscribe"])


@given(before=decoration, word=keyword, after=decoration)
def test_any_punctuation_emoji_or_whitespace_around_a_keyword_still_opts_out(
    before: str, word: str, after: str
) -> None:
    assert is_opt_out_text(before + word + after) is True


@given(before=decoration, word=keyword, tail=st.sampled_from(["ya", "dong", "kak", "please", "pls", "aja"]))
def test_decorated_keyword_with_a_courtesy_tail_still_opts_out(before: str, word: str, tail: str) -> None:
    assert is_opt_out_text(f"{before}{word}{before} {tail}{before}") is True


@given(prefix=st.sampled_from(["jangan", "don't", "dont", "tidak", "kapan", "never"]), decor=decoration, word=keyword)
def test_a_negated_keyword_never_opts_out_whatever_the_decoration(prefix: str, decor: str, word: str) -> None:
    assert is_opt_out_text(f"{decor}{prefix} {decor}{word}{decor}") is False
