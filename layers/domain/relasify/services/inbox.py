"""The agents' inbox (SPEC section 5a): listing, assignment, status, snooze, read state and WhatsApp
read receipts, notes and the thread. The write path that keeps conversations current lives in
`relasify.data.conversations` (called by the webhook processor and the send path)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from relasify import clock
from relasify.data import contact_summaries, conversation_state, inbox_index
from relasify.data import conversations as store
from relasify.data import messages as message_store
from relasify.data.contacts import contact_repository
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.memberships import Membership, Role
from relasify.data.records import Page
from relasify.errors import Forbidden, NotFound, ValidationFailed
from relasify.schemas.inbox import (
    ConversationCounts,
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    ReadOut,
    ReadRequest,
    ThreadItem,
    ThreadPage,
    conversation_out,
    thread_item,
)
from relasify.services.access import get_membership

ListStatus = Literal["open", "pending", "snoozed", "resolved", "all"]
UNASSIGNED = "unassigned"


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"loc": ["body", field], "msg": message, "type": "value_error"}])


# --- listing -----------------------------------------------------------------------------------------


def _streams(ws: str, status: ListStatus, assignee: tuple[bool, str | None], now: datetime) -> list[inbox_index.Stream]:
    """The index partitions (and filters) a listing reads. `assignee`: (filter on it?, sub or None)."""
    by_assignee, sub = assignee

    def partition(name: str, extra: Any = None) -> inbox_index.Stream:
        return inbox_index.stream(ws, name, by_assignee=by_assignee, assignee=sub, filter_condition=extra)

    match status:
        case "open":  # a snooze that ended counts as open (evaluated on read; docs/INBOX.md)
            return [partition("open"), partition("snoozed", inbox_index.snooze_filter(over=True, now=now))]
        case "snoozed":
            return [partition("snoozed", inbox_index.snooze_filter(over=False, now=now))]
        case "all":
            return [partition(name) for name in conversation_state.STATUSES]
        case _:
            return [partition(status)]


def _with_unread(streams: list[inbox_index.Stream]) -> list[inbox_index.Stream]:
    unread = inbox_index.unread_filter()
    return [
        inbox_index.Stream(s.hash_key, unread if s.filter_condition is None else (s.filter_condition & unread))
        for s in streams
    ]


def _assignee(caller: Membership, value: str | None) -> tuple[bool, str | None]:
    if value is None:
        return False, None
    if value == "me":
        return True, caller.sub
    if value == UNASSIGNED:
        return True, None
    return True, value


def counts(caller: Membership, now: datetime) -> ConversationCounts:
    """`open`, `pending`, `snoozed`, and the open ones `mine` and `unassigned`: the open and snoozed
    partitions' index entries are read once each (their assignees give mine and unassigned; the
    snoozed ones split into still snoozed / snooze over), pending is a COUNT query."""
    ws = caller.ws
    snoozed = inbox_index.entries(ws, "snoozed")
    over = [c for c in snoozed if c.snooze_over(now)]
    open_now = inbox_index.entries(ws, "open") + over
    return ConversationCounts(
        open=len(open_now),
        pending=inbox_index.count(inbox_index.stream(ws, "pending")),
        snoozed=len(snoozed) - len(over),
        mine=sum(1 for c in open_now if c.assignee == caller.sub),
        unassigned=sum(1 for c in open_now if c.assignee is None),
    )


def list_conversations(
    caller: Membership,
    *,
    status: ListStatus = "open",
    assignee: str | None = None,
    unread: bool = False,
    limit: int = 25,
    cursor: str | None = None,
) -> ConversationPage:
    now = clock.now()
    who = _assignee(caller, assignee)
    streams = _streams(caller.ws, status, who, now)
    if unread:
        streams = _with_unread(streams)
    # The cursor is bound to the listing: "me" is bound to the caller, since it names them.
    scope = f"inbox:{status}:{int(who[0])}:{who[1] or '-'}:{int(unread)}"
    page = inbox_index.list_page(caller.ws, streams, limit=limit, cursor=cursor, scope=scope)
    return ConversationPage(
        items=_views(caller.ws, page.items, now), next_cursor=page.next_cursor, counts=counts(caller, now)
    )


def _views(ws: str, items: list[conversation_state.Conversation], now: datetime) -> list[ConversationOut]:
    contacts = contact_summaries.contact_summaries(ws, [c.id for c in items])
    # A conversation whose contact is gone (erased meanwhile) is not shown.
    return [conversation_out(c, contacts[c.id], now) for c in items if c.id in contacts]


# --- one conversation --------------------------------------------------------------------------------


def _view(ws: str, conversation: conversation_state.Conversation) -> ConversationOut:
    views = _views(ws, [conversation], clock.now())
    if not views:
        raise NotFound("Conversation not found")
    return views[0]


def conversation_view(ws: str, contact_id: str) -> ConversationOut | None:
    """The conversation as `GET .../conversations/{id}` answers it, or None when it (or its contact)
    is gone: the outgoing webhooks' `data` (no caller; the event's workspace)."""
    conversation = store.get(ws, contact_id, consistent=True)
    if conversation is None:
        return None
    views = _views(ws, [conversation], clock.now())
    return views[0] if views else None


def get_conversation(caller: Membership, contact_id: str) -> ConversationOut:
    conversation = store.get(caller.ws, contact_id, consistent=True)
    if conversation is None:
        raise NotFound("Conversation not found")
    return _view(caller.ws, conversation)


def update_conversation(caller: Membership, contact_id: str, patch: ConversationPatch) -> ConversationOut:
    """Status, assignee, snooze. Agents assign only themselves, and unassign only themselves."""
    given = patch.model_fields_set
    if not given:
        raise ValidationFailed("Give at least one of status, assignee, snoozed_until.")
    now = clock.now()
    if patch.status == "snoozed":
        if patch.snoozed_until is None or patch.snoozed_until <= now:
            raise _invalid("snoozed_until", "A snooze needs snoozed_until in the future.")
    elif "snoozed_until" in given and patch.snoozed_until is not None:
        raise _invalid("snoozed_until", 'snoozed_until goes with "status": "snoozed".')
    is_admin = caller.role >= Role.ADMIN
    if "assignee" in given and patch.assignee is not None:
        if not is_admin and patch.assignee != caller.sub:
            raise Forbidden("Agents may assign conversations to themselves only; assigning others needs admin")
        if get_membership(caller.ws, patch.assignee) is None:
            raise _invalid("assignee", "The assignee is not an active member of this workspace.")

    def change(current: conversation_state.Conversation | None) -> conversation_state.Conversation:
        if current is None:
            raise NotFound("Conversation not found")
        update: dict[str, Any] = {}
        if current.snooze_over(now):  # any write ends a snooze that is over
            update.update(status="open", snoozed_until=None, status_at=now)
        if patch.status is not None:
            snooze = patch.snoozed_until if patch.status == "snoozed" else None
            update.update(status=patch.status, snoozed_until=snooze, status_at=now)
        if "assignee" in given:
            if patch.assignee is None and not is_admin and current.assignee not in (None, caller.sub):
                raise Forbidden("Agents may unassign themselves only; unassigning others needs admin")
            update["assignee"] = patch.assignee
        return current.model_copy(update=update)

    conversation = store.update(caller.ws, contact_id, change)
    return _view(caller.ws, conversation)  # type: ignore[arg-type]


def mark_read(caller: Membership, contact_id: str, request: ReadRequest) -> ReadOut:
    """Unread becomes the count of inbound messages after `up_to_message_id` (0 by default); with
    `receipt` (or `typing`) the latest inbound message is marked read on WhatsApp."""
    ws = caller.ws
    if store.get(ws, contact_id) is None:
        raise NotFound("Conversation not found")
    up_to_key = None
    if request.up_to_message_id is not None:
        target = message_store.get_message(ws, request.up_to_message_id)
        if target is None or target.contact_id != contact_id or target.message_at is None:
            raise _invalid("up_to_message_id", "No message of this conversation has that id.")
        up_to_key = message_store.conversation_sort_key(target.message_at, target.id)
    conversation = store.mark_read(ws, contact_id, up_to_key)
    if conversation is None:
        raise NotFound("Conversation not found")
    sent = False
    if (request.receipt or request.typing) and conversation.last_inbound_key:
        latest = message_store.get_message(ws, conversation.last_inbound_key.rsplit("#", 1)[-1])
        if latest is not None and latest.wamid:
            sent = _send_read_receipt(ws, latest.wamid, typing=request.typing)
    return ReadOut(conversation=_view(ws, conversation), receipt_sent=sent)


def _send_read_receipt(ws: str, wamid: str, *, typing: bool) -> bool:
    from relasify.data.kms_tokens import decrypt_token
    from relasify.services.delivery import connection_for_sending
    from relasify.whatsapp.errors import GraphError
    from relasify.whatsapp.graph import get_graph_client

    connection = connection_for_sending(ws)
    token = decrypt_token(ws, connection.encrypted_access_token)
    try:
        return get_graph_client().mark_read(connection.phone_number_id, token, wamid, typing=typing)
    except GraphError as error:
        raise error.to_domain_error() from None


# --- notes and the thread ----------------------------------------------------------------------------


def _contact_exists(ws: str, contact_id: str) -> None:
    if contact_repository().get(ws, contact_id) is None:
        raise NotFound("Contact not found")


def add_note(caller: Membership, contact_id: str, body: str) -> ThreadItem:
    """An internal note (activity, not unread); never sent to WhatsApp."""
    _contact_exists(caller.ws, contact_id)
    return thread_item(store.add_note(caller.ws, contact_id, caller.sub, body))


def thread(ws: str, contact_id: str, *, limit: int, cursor: str | None, since: str | None) -> ThreadPage:
    """Inbound, outbound and notes, newest first. `since` (a page's `since_cursor`): only what is
    newer than that page, oldest of them first in the query, still returned newest first; call
    again with the new `since_cursor` until `items` is empty."""
    _contact_exists(ws, contact_id)
    since_scope = f"thread-since:{contact_id}"
    after = decode_cursor(since, ws=ws, scope=since_scope) if since else None
    if after is not None:
        messages = store.thread_after(ws, contact_id, str(after.get("key", "")), limit=limit)
        page: Page[message_store.Message] = Page(items=messages, next_cursor=None)
        newest = page.items[0] if page.items else None
        since_key = _sort_key(newest) if newest else str(after.get("key", ""))
    else:
        from relasify.data import outbox

        page = outbox.conversation_page(ws, contact_id, limit=limit, cursor=cursor)
        newest = page.items[0] if page.items else None
        since_key = _sort_key(newest) if newest else ""
    replies = _reply_ids(ws, page.items)
    return ThreadPage(
        items=[thread_item(msg, replies.get(msg.context_wamid or "")) for msg in page.items],
        next_cursor=page.next_cursor,
        since_cursor=encode_cursor({"key": since_key}, ws=ws, scope=since_scope),
    )


def _sort_key(message: message_store.Message) -> str:
    return message_store.conversation_sort_key(message.message_at or message.created_at or clock.now(), message.id)


def _reply_ids(ws: str, messages: list[message_store.Message]) -> dict[str, str]:
    """Our ids of the messages quoted by replies on a page (through wamid pointers or inbound ids)."""
    out: dict[str, str] = {}
    for wamid in {msg.context_wamid for msg in messages if msg.context_wamid}:
        location = message_store.locate_wamid(wamid)
        if location is not None and location.ws == ws:
            out[wamid] = location.message_id
        elif message_store.get_inbound(ws, wamid) is not None:
            out[wamid] = message_store.inbound_message_id(wamid)
    return out
