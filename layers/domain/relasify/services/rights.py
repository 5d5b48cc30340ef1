"""Data-subject rights (SPEC section 8, privacy policy section 9, UU PDP): export, restriction,
erasure of contacts; a user's own export and deletion; closing a workspace. Each takes effect in
the request itself, well inside UU PDP's 3 x 24 hours. Every export and erasure is written to the
security log, with ids and counts only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relasify import clock, retention
from relasify.data import conversation_state, deleted_users, identity_provider, tombstones
from relasify.data import conversations as conversation_store
from relasify.data import erasure as erasure_store
from relasify.data import media as media_store
from relasify.data import messages as message_store
from relasify.data import sweep as sweep_store
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.memberships import Membership
from relasify.data.records import Contact, Workspace
from relasify.errors import Conflict, NotFound
from relasify.observability import logger
from relasify.services import audit, dead_letters, workspaces
from relasify.services.access import Actor

# A contact's conversation holds at most 90 days of messages; this bounds one export response.
MAX_EXPORT_MESSAGES = 10_000


def _contact(ws: str, contact_id: str) -> Contact:
    contact = contact_repository().get(ws, contact_id)
    if contact is None:
        raise NotFound("Contact not found")
    return contact


# --- contacts ----------------------------------------------------------------------------------------


def export_contact(caller: Membership, contact_id: str) -> dict[str, Any]:
    """Access and portability: the contact, its consent history and its messages, as JSON."""
    contact = _contact(caller.ws, contact_id)
    messages = message_store.list_conversation(caller.ws, contact_id, limit=MAX_EXPORT_MESSAGES + 1)
    truncated = len(messages) > MAX_EXPORT_MESSAGES
    audit.record(
        caller.ws,
        "contact.exported",
        actor_id=caller.sub,
        target_ids=[contact_id],
        details={"messages": min(len(messages), MAX_EXPORT_MESSAGES)},
    )
    return {
        "exported_at": clock.now().isoformat(),
        "contact": contact.model_dump(mode="json", exclude={"ws"}),
        "consent_history": [e.model_dump(mode="json") for e in contact.consent.history],
        "conversation": _conversation_out(conversation_store.get(caller.ws, contact_id, consistent=True)),
        "messages": [_message_out(msg) for msg in messages[:MAX_EXPORT_MESSAGES]],  # notes included
        "messages_truncated": truncated,
    }


def _message_out(message: message_store.Message) -> dict[str, Any]:
    return message.model_dump(
        mode="json", exclude={"ws", "status_rank", "biz_opaque_callback_data", "expires_at", "media_id"}
    )


def _conversation_out(conversation: conversation_state.Conversation | None) -> dict[str, Any] | None:
    if conversation is None:
        return None
    return conversation.model_dump(mode="json", exclude={"ws", "version", "expires_at", "read_up_to"})


def set_restricted(caller: Membership, contact_id: str, restricted: bool) -> Contact:
    """Restriction: the contact is kept but never messaged (the send path refuses restricted contacts)."""
    _contact(caller.ws, contact_id)
    contact = contact_repository().set_restricted(caller.ws, contact_id, restricted)
    audit.record(
        caller.ws,
        "contact.restricted" if restricted else "contact.unrestricted",
        actor_id=caller.sub,
        target_ids=[contact_id],
    )
    return contact


def erase_contact(caller: Membership, contact_id: str, *, audit_action: str = "contact.erased") -> dict[str, int]:
    """Erasure, at once: the conversation's messages, their wamid pointers and early statuses, the
    contact's reaction items (found through the reactions on those messages), media objects,
    broadcast recipient items, the change-feed events naming the conversation, the dead-letter
    queues' messages naming the person (`relasify.services.dead_letters`), then the contact with its
    uniqueness markers and tag items (one transaction), and the workspace's export files and finished
    imports' CSV files (bulk copies that may hold the person). Billing records (category, pricing,
    keyed by the wamid's SHA-256: no content, no wamid) are kept.
    Messages go first, so an interrupted erasure can simply be repeated. Deleting a contact does the
    same, audited as `contact.deleted` (deleted alone, its conversation would stay out of reach).

    Before anything is deleted, erasure tombstones (keyed hashes of the person's WhatsApp ids and of
    their messages' wamids, no personal data; `relasify.data.tombstones`) are written, so a webhook
    about them sent before now and redelivered later (Meta retries for 7 days) is dropped instead of
    re-creating them."""
    ws = caller.ws
    contact = _contact(ws, contact_id)
    phone_wa_id = contact.phone.lstrip("+") if contact.phone else None  # a never-linked contact's wa_id
    tombstones.put(ws, [("wa_id", contact.wa_id), ("wa_id", phone_wa_id), ("user_id", contact.user_id)])
    conversation = erasure_store.conversation_items(ws, contact_id)
    # Its messages' wamids too: their statuses may still come (a read days later) after this.
    tombstones.put(ws, [(tombstones.MESSAGE_KIND, item.wamid) for item in conversation if item.wamid])
    keys: list[sweep_store.Key] = [item.key for item in conversation]
    for item in conversation:
        if item.wamid:
            keys += erasure_store.wamid_partition_keys(item.wamid)
        for reaction_wamid in item.reaction_wamids:
            keys += erasure_store.reaction_message_keys(ws, reaction_wamid)
    recipients = erasure_store.broadcast_recipient_keys(ws, contact_id)
    # Change-feed events name the conversation (the contact's id) for 48 h: they go too. Live clients
    # then get 404 for the conversation, as for any contact deleted before they fetched it.
    events = erasure_store.change_event_keys(ws, contact_id)
    keys.append(conversation_store.delete_key(ws, contact_id))  # the conversation item (its preview)
    erasure_store.delete_items(keys + recipients + events)
    media = [erasure_store.message_media_key(ws, item.message_id) for item in conversation]
    media += [item.media_s3_key for item in conversation if item.media_s3_key]
    objects = erasure_store.delete_objects(media) if media else 0
    # A file uploaded to send (POST .../media) went to this contact only: its upload item goes too.
    for key in media:
        upload_id = media_store.upload_id_of_key(ws, key)
        if upload_id is not None:
            media_store.delete_upload(ws, upload_id)
    # Export files and finished imports' CSVs are copies of many contacts, this one among them.
    bulk_files = erasure_store.delete_bulk_copies(ws)
    # Failed webhooks and jobs waiting in the dead-letter queues (before the contact goes, so a
    # failure here leaves an erasure that can be repeated).
    dead = dead_letters.purge(
        dead_letters.ErasedPerson(
            ws=ws,
            contact_id=contact_id,
            whatsapp_ids=frozenset(i for i in (contact.wa_id, phone_wa_id, contact.user_id) if i),
            wamids=frozenset(w for item in conversation for w in (item.wamid, *item.reaction_wamids) if w),
            message_ids=frozenset(item.message_id for item in conversation),
        )
    )
    contact_repository().delete(ws, contact_id)
    counts = {
        "messages": len(conversation),
        "media_objects": len(set(media)),
        "broadcast_recipients": len(recipients),
        "bulk_files": bulk_files,
    }
    dead_letter_counts = {"dead_letters_deleted": dead.deleted, "dead_letters_rewritten": dead.rewritten}
    audit.record(
        ws, audit_action, actor_id=caller.sub, target_ids=[contact_id], details={**counts, **dead_letter_counts}
    )
    logger.info(
        "contact erased",
        extra={
            "ws": ws,
            "objects": objects,
            **counts,
            **dead_letter_counts,
        },
    )
    return counts


# --- workspaces -----------------------------------------------------------------------------------------


def close_workspace(caller: Membership) -> tuple[Workspace, datetime]:
    """Close a workspace (owner): its data is unreadable through the API at once and deleted 90 days
    later (the sweep stamps the TTL). Returns the workspace and when its data will be deleted."""
    ws = caller.ws
    repo = identity_repository()
    closed_at = clock.now()
    sweep_store.register_closure(ws, closed_at)  # first: a closed workspace is never left unstamped
    workspace = repo.close_workspace(ws, closed_at=closed_at)
    connection = repo.get_whatsapp_connection(ws)
    if connection is not None:
        sweep_store.delete_phone_route(connection.phone_number_id, ws=ws)
    delete_after = datetime.fromtimestamp(
        retention.closure_expires_at(workspace.closed_at or closed_at), tz=closed_at.tzinfo
    )
    audit.record(ws, "workspace.closed", actor_id=caller.sub, target_ids=[ws])
    return workspace, delete_after


# --- the caller's own account -----------------------------------------------------------------------------


def export_me(actor: Actor) -> dict[str, Any]:
    """A user's own account data: profile, memberships and invitations to their email."""
    repo = identity_repository()
    user = workspaces.current_user(actor)  # a deleted account's old token: 401
    memberships = repo.list_user_memberships(actor.sub)
    # The token's verified address, not the stored one: only an owner of the address sees its invitations.
    invitations = repo.invitations_for_email(actor.email) if actor.email else []
    audit.record(None, "user.exported", actor_id=actor.sub, target_ids=[actor.sub])
    return {
        "exported_at": clock.now().isoformat(),
        "profile": user.model_dump(mode="json"),
        "memberships": [
            {
                "workspace_id": ms.ws,
                "workspace_name": ms.workspace_name,
                "role": ms.role,
                "joined_at": _iso(ms.created_at),
            }
            for ms in memberships
        ],
        "invitations": [
            {"workspace_id": i.ws, "workspace_name": i.workspace_name, "role": i.role, "invited_at": _iso(i.created_at)}
            for i in invitations
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def delete_me(actor: Actor) -> None:
    """Remove the user record, their memberships, invitations to their email and their Cognito user.
    Refused (409) while the user is the last owner of an active workspace: close it or hand
    ownership over first.

    A deletion marker (a keyed hash of the `sub`, `relasify.data.deleted_users`) is written before
    anything is deleted, so the user's still-valid tokens, on any container, are refused from then on
    instead of re-creating the user; an interrupted deletion can be repeated with the same token
    (this route does not sign in). The Cognito user goes next, so a failure there leaves the
    data in place for that retry."""
    repo = identity_repository()
    memberships = repo.list_user_memberships(actor.sub)
    active: dict[str, bool] = {}
    for ms in memberships:
        workspace = repo.get_workspace(ms.ws)
        active[ms.ws] = workspace is not None and workspace.status == "active"
        if ms.role == "owner" and workspace is not None and active[ms.ws] and workspace.owner_count <= 1:
            raise Conflict(
                "You are the last owner of an active workspace: close it or make someone else owner first.",
                workspace_id=ms.ws,
            )
    deleted_users.mark_deleted(actor.sub)
    identity_provider_account = identity_provider.delete_account(actor.sub)
    for ms in memberships:
        if active[ms.ws]:
            repo.remove_member(ms.ws, actor.sub)  # atomic with the owner count: a race still gets 409
        else:
            erasure_store.delete_items([sweep_store.membership_key(ms.ws, actor.sub)])
    # Invitations to the caller's address, only if their token proves they own it (`Actor.email` is
    # the verified address or ""): a stored address may predate that rule, and a token that merely
    # claims someone's address must not wipe their pending invitations.
    if actor.email:
        for invitation in repo.invitations_for_email(actor.email):
            repo.delete_invitation(invitation.ws, invitation.email)
    repo.delete_user(actor.sub)
    workspaces.forget_signed_in(actor.sub)
    audit.record(
        None,
        "user.deleted",
        actor_id=actor.sub,
        target_ids=[actor.sub],
        details={"memberships": len(memberships), "identity_provider_account": identity_provider_account},
    )
