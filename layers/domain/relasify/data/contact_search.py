"""Contact search without a Scan (SPEC section 4, `q`): one small item per search word of a contact.

Word item: PK `WS#<ws>#WORD#<first character>`, SK `<word>#<contact id>`; account data, like the
contact it indexes (written, moved and deleted in the same write as the contact; erased with it;
stamped at the workspace's closure through the contact's own fields). The words are:
- the words of the name and the e-mail address, folded (Unicode NFKD without combining marks, then
  case-folded: "Dédé" is "dede"), split on everything that is not a letter or digit; a word that is
  a prefix of another word of the same contact is left out (the longer one answers the same
  queries); at most `MAX_WORDS`, name words first;
- the phone's digits in E.164 without "+" (`6281234567890`): `08…`, `62…` and `+62…` queries are all
  turned into that form first.

A query is a prefix of one word: one Query on one partition (`begins_with(SK, <prefix>)`), then one
BatchGetItem of the contacts. Words are personal data: never logged, and a cursor (it holds the
last word read) is sealed by `data/cursor.py`'s HMAC, but readable by whoever holds it (the caller).

Cost: a contact write adds one put per word (create), or one put or delete per word that changed
(update); tags, attributes and consent changes touch no word item.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from pynamodb.attributes import UnicodeAttribute

from relasify.data.base import TableModel, connection
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.retention import DataClass
from relasify.settings import get_settings

MAX_WORDS = 5  # name and e-mail words; with the phone, six: an update moving all of them fits a transaction
MAX_WORD_LENGTH = 64
_WORD = re.compile(r"[^\W_]+")


class ContactWordModel(TableModel):
    """PK `WS#<ws>#WORD#<first character>`, SK `<word>#<contact id>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()


def fold(text: str) -> str:
    """Accent- and case-insensitive form: "Ádé Müller" -> "ade muller"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str | None) -> list[str]:
    """The folded words of a text, in order, each at most MAX_WORD_LENGTH characters."""
    return [w[:MAX_WORD_LENGTH] for w in _WORD.findall(fold(text or ""))]


def contact_words(name: str | None, email: str | None, phone: str | None) -> list[str]:
    """The search words of a contact (see the module docstring), phone last."""
    distinct = list(dict.fromkeys([*words(name), *words(email)]))
    kept = [w for w in distinct if not any(o != w and o.startswith(w) for o in distinct)][:MAX_WORDS]
    digits = (phone or "").lstrip("+")
    if digits.isdigit() and digits not in kept:
        kept.append(digits)
    return kept


def partition(ws: str, word: str) -> str:
    return f"WS#{ws}#WORD#{word[0]}"


def word_key(ws: str, word: str, contact_id: str) -> tuple[str, str]:
    return partition(ws, word), f"{word}#{contact_id}"


def word_item(ws: str, word: str, contact_id: str) -> ContactWordModel:
    return ContactWordModel(*word_key(ws, word, contact_id), ws_id=ws, contact_id=contact_id)


def word_keys(
    ws: str, contact_id: str, name: str | None, email: str | None, phone: str | None
) -> Iterator[tuple[str, str]]:
    """Every word item key of a contact with these fields (erasure, closure stamp)."""
    for word in contact_words(name, email, phone):
        yield word_key(ws, word, contact_id)


def put_words(ws: str, contact_id: str, new: Iterable[str]) -> None:
    """Batch-write word items (imports: outside a transaction, before the contact is written)."""
    with ContactWordModel.batch_write() as batch:
        for word in new:
            batch.save(word_item(ws, word, contact_id))


def delete_words(ws: str, contact_id: str, old: Iterable[str]) -> None:
    with ContactWordModel.batch_write() as batch:
        for word in old:
            batch.delete(ContactWordModel(*word_key(ws, word, contact_id)))


def matches(
    ws: str, prefix: str, *, limit: int, start: dict[str, Any] | None
) -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
    """Up to `limit` (word, contact id) of the words starting with `prefix`, in word order, from `start`
    (a key of this partition); and the key to continue from (None at the end). One Query."""
    response = connection().dispatch(
        "Query",
        {
            "TableName": get_settings().table_name,
            "KeyConditionExpression": "PK = :p AND begins_with(SK, :s)",
            "ExpressionAttributeValues": {":p": {"S": partition(ws, prefix)}, ":s": {"S": prefix}},
            "ProjectionExpression": "SK, contact_id",
            "Limit": limit,
            **({"ExclusiveStartKey": start} if start else {}),
        },
    )
    out = []
    for item in response.get("Items", []):
        word = item["SK"]["S"].rsplit("#", 1)[0]
        out.append((word, item["contact_id"]["S"]))
    return out, response.get("LastEvaluatedKey")


def resume_key(ws: str, prefix: str, word: str, contact_id: str) -> dict[str, Any]:
    pk, sk = word_key(ws, word, contact_id)
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def encode(key: dict[str, Any] | None, *, ws: str, scope: str) -> str | None:
    return encode_cursor(key, ws=ws, scope=scope)


def decode(cursor: str | None, *, ws: str, scope: str) -> dict[str, Any] | None:
    return decode_cursor(cursor, ws=ws, scope=scope)


def is_word_partition(pk: str, ws: str) -> bool:
    return pk.startswith(f"WS#{ws}#WORD#")
