"""Mirroring the statuses of one processor invocation on their conversations' last message, with as
few reads as the invocation allows (docs/INBOX.md: a status touches the conversation only when it is
about its last message).

`apply_message_status` reads the conversation (consistent GetItem) before its conditional update.
For an SQS batch of statuses the processor instead reads the conversations their routes name in ONE
consistent BatchGetItem (`ConversationPeeks.prefetch`, same read units as the GetItems). A lone
status skips the read (`blind`): its conditional update decides. Break-even of the blind update:
it saves a read (1 RRU) when the status is about the last message at a lower rank, and costs a
refused write (1 WRU, ~5 RRU) when it is not; the lifecycle priced by `bench cost_model` (a send
and its statuses) is the first case.

What was read is used only to skip a write that cannot succeed; every write stays conditional
(`conversations.mirror_message_status`), so a stale entry never writes a wrong state:
- an entry that says the message is the last one at a lower rank, when it is not (any more), makes
  a refused update (the outcome `apply_message_status` gives after its read);
- an entry that says it is not, or at a rank as high, cannot be stale within one invocation: a
  message becomes the last one only when it is recorded, before Meta can send its statuses (the
  statuses follow the send, the send follows the record), and ranks only grow. The invocation's own
  writes keep entries current: a mirrored status raises the entry's rank, a write this invocation
  makes to the conversation otherwise (an inbound message) forgets it (read again when needed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relasify.data import conversations
from relasify.data import models as m


@dataclass(frozen=True, slots=True)
class LastMessageMark:
    """The conversation's last message as read: its id and status rank."""

    message_id: str
    rank: int


_NONE = LastMessageMark("", 0)  # no live conversation (or no last message): nothing to mirror on


class ConversationPeeks:
    """The last-message marks of the conversations one processor invocation's statuses refer to."""

    def __init__(self, *, blind: bool = False) -> None:
        self._marks: dict[tuple[str, str], LastMessageMark] = {}
        # No read for a conversation not prefetched: the conditional update alone decides.
        self.blind = blind

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the conversations of these (workspace, contact id) keys: one consistent BatchGetItem
        per 100 keys (pynamodb splits them). Consistent: an eventually consistent read could miss
        the send that made a message the last one, and skip its mirror."""
        wanted = sorted(set(keys) - self._marks.keys())
        if not wanted:
            return
        model = m.ConversationModel
        found: dict[tuple[str, str], LastMessageMark] = {}
        for item in model.batch_get(
            [conversations.delete_key(ws, contact_id) for ws, contact_id in wanted], consistent_read=True
        ):
            last = item.last_message
            if item.is_expired or last is None:
                continue
            found[(item.ws_id, item.contact_id)] = LastMessageMark(last.id, int(last.status_rank or 0))
        for key in wanted:
            self._marks[key] = found.get(key, _NONE)

    def forget(self, ws: str, contact_id: str) -> None:
        """This invocation changed the conversation otherwise (e.g. an inbound message): read it again."""
        self._marks.pop((ws, contact_id), None)

    def apply_message_status(self, ws: str, contact_id: str, message_id: str, status: str, rank: int) -> bool:
        """`conversations.apply_message_status`, reading only what was not prefetched (and not even
        that when blind). True when the conversation was written."""
        mark = self._marks.get((ws, contact_id))
        if mark is None and not self.blind:
            return conversations.apply_message_status(ws, contact_id, message_id, status, rank)
        if mark is not None and (mark.message_id != message_id or mark.rank >= rank):
            return False
        mirrored = conversations.mirror_message_status(ws, contact_id, message_id, status, rank)
        if mirrored:
            self._marks[(ws, contact_id)] = LastMessageMark(message_id, rank)
        elif mark is not None:
            self.forget(ws, contact_id)  # refused: the entry was stale; read again when needed
        return mirrored
