"""Search words of a contact and the terms of a query (data/contact_search.py, services/contacts.py):
accent- and case-folding, word splitting, and every Indonesian phone form meeting the stored phone word."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relasify.data.contact_search import MAX_WORDS, contact_words, fold, words
from relasify.phones import normalize_phone
from relasify.services.contacts import search_terms


def test_fold_drops_accents_and_case() -> None:
    assert fold("Dédé ÁNGEL Müller") == "dede angel muller"
    assert words("Siti-Nur'aini  (Ibu)") == ["siti", "nur", "aini", "ibu"]


def test_contact_words_cover_name_email_and_phone() -> None:
    found = contact_words("Budi Santoso", "budi.santoso@Gmail.com", "+6281234567890")
    assert found == ["budi", "santoso", "gmail", "com", "6281234567890"]


def test_a_word_that_prefixes_another_is_left_out_and_words_are_bounded() -> None:
    assert contact_words("Budi Budiman", None, None) == ["budiman"]
    many = contact_words("a1 b2 c3 d4 e5 f6 g7 h8", "x9@y0.zz", "+6281234567890")
    assert len(many) == MAX_WORDS + 1
    assert many[-1] == "6281234567890"


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("Santoso budi", ("santoso", ["budi"])),
        ("DÉDÉ", ("dede", [])),
        ("0812-34", ("6281234", [])),
        ("+62 812", ("62812", [])),
        ("62812", ("62812", [])),
        ("!!!", ("", [])),
    ],
)
def test_search_terms(q: str, terms: tuple[str, list[str]]) -> None:
    assert search_terms(q) == terms


_FORMS = st.sampled_from(
    ["0{n}", "62{n}", "+62{n}", "+62 {a}-{b}-{c}", "0{a}-{b}-{c}", "0{a} {b} {c}", "62 {a} {b}{c}"]
)


@settings(max_examples=300, deadline=None)
@given(
    subscriber=st.text(alphabet="0123456789", min_size=7, max_size=9),
    operator=st.sampled_from(["811", "812", "813", "821", "852", "857", "877", "878", "895", "896"]),
    form=_FORMS,
    cut=st.integers(min_value=1, max_value=30),
)
def test_every_indonesian_form_and_prefix_of_a_phone_finds_its_word(
    subscriber: str, operator: str, form: str, cut: int
) -> None:
    national = operator + subscriber
    stored = normalize_phone("0" + national)
    phone_word = contact_words(None, None, stored)[-1]
    a, b, c = national[:3], national[3:7], national[7:]
    written = form.format(n=national, a=a, b=b, c=c)
    typed = written[: max(2, min(cut, len(written)))]  # what the agent typed so far (at least 2 characters)
    prefix, also = search_terms(typed)
    assert also == []
    assert phone_word.startswith(prefix), (written, typed, prefix)
    # the whole number, in any form, is exactly the stored word
    assert search_terms(written)[0] == phone_word
