"""The conversations one processor invocation (an SQS batch of webhooks) reads ahead, in ONE consistent
BatchGetItem instead of a GetItem per event (same read units), and keeps current with its own writes.

Two users (docs/INBOX.md):
- a status touches the conversation only when it is about its last message: `apply_message_status`
  skips the conditional update when what was read says it cannot succeed. A status whose
  conversation was not read ahead (a batch with one status) is read as before. Never updated
  without a read: a refused conditional write is a write (1 WRU, ~5 reads) to a conversation whose
  preview does not change, which the inbox's write budget (docs/INBOX.md) does not allow;
- an inbound message's transaction (`conversations.record_inbound`) starts from the item read
  ahead instead of reading it; its write is conditional on the version read, so a stale item is
  refused and read again (the optimistic lock it always had).

What was read only ever saves a read or skips a write that cannot succeed; every write stays
conditional, so a stale item never writes a wrong state:
- an item that says the message is the last one at a lower rank, when it is not (any more), makes
  a refused update (the outcome `apply_message_status` gives after its read);
- an item that says it is not, or at a rank as high, cannot be stale within one invocation: a
  message becomes the last one only when it is recorded, before Meta can send its statuses (the
  outbox writes it with its conversation before calling Meta), and ranks only grow.
The invocation's own writes (a mirrored status, an inbound message) replace the item they wrote.
"""

from __future__ import annotations

from collections.abc import Iterable

from relasify.data import conversations
from relasify.data import models as m


class ConversationReads:
    """The conversation items one processor invocation read ahead (None: read, none stored), kept
    current with what the invocation writes to them (`conversations.StoredReads`)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], m.ConversationModel | None] = {}

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the conversations of these (workspace, contact id) keys: one consistent BatchGetItem
        per 100 keys (pynamodb splits them). Consistent: an eventually consistent read could miss
        the send that made a message the last one, and skip its mirror."""
        wanted = sorted(set(keys) - self._items.keys())
        if not wanted:
            return
        model = m.ConversationModel
        keys_read = [(m.conversation_pk(ws, contact_id), model.SK_VALUE) for ws, contact_id in wanted]
        found = {(item.ws_id, item.contact_id): item for item in model.batch_get(keys_read, consistent_read=True)}
        for key in wanted:
            self._items[key] = found.get(key)

    # --- conversations.StoredReads --------------------------------------------------------------

    def stored(self, ws: str, contact_id: str) -> tuple[m.ConversationModel | None] | None:
        key = (ws, contact_id)
        return (self._items[key],) if key in self._items else None

    def written(self, item: m.ConversationModel) -> None:
        self._items[(item.ws_id, item.contact_id)] = item

    def forget(self, ws: str, contact_id: str) -> None:
        """The conversation may have changed otherwise: read it again when needed."""
        self._items.pop((ws, contact_id), None)

    # --- statuses -----------------------------------------------------------------------------

    def apply_message_status(self, ws: str, contact_id: str, message_id: str, status: str, rank: int) -> bool:
        """`conversations.apply_message_status`, reading only what was not read ahead. True when the
        conversation was written."""
        read = self.stored(ws, contact_id)
        if read is None:
            return conversations.apply_message_status(ws, contact_id, message_id, status, rank)
        if not _behind(read[0], message_id, rank):
            return False
        written = conversations.mirror_message_status(ws, contact_id, message_id, status, rank)
        if written is not None:
            self.written(written)
        else:
            self.forget(ws, contact_id)  # refused: what was read is stale; read again when needed
        return written is not None


def _behind(item: m.ConversationModel | None, message_id: str, rank: int) -> bool:
    """Whether a live conversation's last message is `message_id` at a rank lower than `rank`."""
    if item is None or item.is_expired or item.last_message is None:
        return False
    return item.last_message.id == message_id and int(item.last_message.status_rank or 0) < rank
