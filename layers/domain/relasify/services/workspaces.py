"""Identity and tenancy: users, workspaces, members, the WhatsApp connection and the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relasify.data import deleted_users, kms_tokens
from relasify.data.identity import identity_repository
from relasify.data.memberships import Membership, Role
from relasify.data.records import AuditEntry, Page, User, WhatsAppConnection, Workspace
from relasify.data.records import Membership as MembershipRecord
from relasify.errors import AccountDeleted, Conflict, Forbidden, NotFound
from relasify.observability import logger
from relasify.schemas.identity import MemberBrief, MemberOut, WhatsAppConnect
from relasify.services import audit, whatsapp_ownership
from relasify.services.access import Actor

if TYPE_CHECKING:
    from relasify.whatsapp.graph import GraphClient

# Users whose claims this warm container has already stored: (sub, email, name, picture).
_seen_claims: set[tuple[str, str, str | None, str | None]] = set()


def sign_in(actor: Actor, *, recheck_invitations: bool = False) -> list[str]:
    """Create or refresh the user record from the token's claims (first use on this container,
    or when they change), and turn pending invitations for the user's verified email into
    memberships. Returns the workspaces joined through invitations.

    A container that already signed the caller in skips all of it, unless `recheck_invitations`:
    then it looks for invitations made since (one index query). The role guard asks for that when
    a caller is not a member of the workspace they named, and the workspace list does, so an
    invitation reaches a warm container's user on their next request there.

    A token from a sign-in at or before the user deleted their account is refused (401) instead of
    re-creating them. That costs nothing on the usual path: the refresh is the same one UpdateItem,
    made conditional on the record existing, and the deletion marker is read only when it does not."""
    key = (actor.sub, actor.email, actor.name, actor.picture)
    if key in _seen_claims:
        return accept_invitations(actor) if recheck_invitations else []
    repo = identity_repository()
    if repo.refresh_user(actor.sub, actor.email, actor.name, actor.picture) is None:
        _refuse_if_deleted(actor)
        repo.upsert_user(actor.sub, actor.email, actor.name, actor.picture)
    joined = accept_invitations(actor)
    _seen_claims.add(key)
    return joined


def accept_invitations(actor: Actor) -> list[str]:
    """Turn the pending invitations to the caller's address into memberships; the workspaces joined.

    Only a verified address is matched (`Actor.email` is "" otherwise): a token that merely claims
    someone's address joins nothing and leaves their invitations pending."""
    if not actor.email:
        return []
    repo = identity_repository()
    joined: list[str] = []
    for invitation in repo.invitations_for_email(actor.email):
        try:
            repo.add_member(
                invitation.ws,
                actor.sub,
                invitation.role,
                email=actor.email,
                name=actor.name,
                added_by=invitation.invited_by,
            )
        except Conflict:
            pass  # already a member: the invitation is simply spent
        except NotFound:
            pass  # the workspace is gone
        repo.delete_invitation(invitation.ws, invitation.email)
        joined.append(invitation.ws)
        audit.record(invitation.ws, "member.joined", actor_id=actor.sub, target_ids=[actor.sub])
    return joined


def _refuse_if_deleted(actor: Actor) -> None:
    deleted_at = deleted_users.deleted_at(actor.sub)
    if deleted_at is not None and (actor.signed_in_at or 0) <= deleted_at:
        logger.info("token of a deleted account refused")  # no ids: the sub is personal data
        raise AccountDeleted("account deleted; sign in again")


def forget_signed_in(sub: str) -> None:
    """Drop this container's sign-in cache entries of a user, so their next request signs in again."""
    for key in [k for k in _seen_claims if k[0] == sub]:
        _seen_claims.discard(key)


def current_user(actor: Actor) -> User:
    """The caller's user record. A container that has seen the caller skips sign_in's write, so a
    record deleted through another container shows up here as missing: the caller then signs in
    afresh, which refuses a deleted account's old tokens (401) and re-creates nothing for them."""
    repo = identity_repository()
    user = repo.get_user(actor.sub)
    if user is None:
        forget_signed_in(actor.sub)
        sign_in(actor)
        user = repo.get_user(actor.sub)
        if user is None:  # pragma: no cover - sign_in just wrote it
            raise NotFound("User not found")
    return user


def me(actor: Actor) -> User:
    sign_in(actor)
    return current_user(actor)


def create_workspace(actor: Actor, name: str) -> tuple[Workspace, MembershipRecord]:
    sign_in(actor)
    workspace, membership = identity_repository().create_workspace(
        name, owner_sub=actor.sub, owner_email=actor.email or None, owner_name=actor.name
    )
    audit.record(workspace.id, "workspace.created", actor_id=actor.sub, target_ids=[workspace.id])
    logger.info("workspace created", extra={"ws": workspace.id})
    return workspace, membership


def list_workspaces(actor: Actor) -> list[tuple[Workspace, str]]:
    """The caller's workspaces with the caller's role in each; closed ones are not listed. Invitations
    made since this container signed the caller in are accepted first, so they show up here."""
    sign_in(actor, recheck_invitations=True)
    repo = identity_repository()
    memberships = repo.list_user_memberships(actor.sub)
    if not memberships:
        # A deleted user has none: make sure the caller still exists (this container's sign-in
        # cache may predate a deletion elsewhere). Costs a read only for users without workspaces.
        current_user(actor)
    out: list[tuple[Workspace, str]] = []
    for membership in memberships:
        workspace = repo.get_workspace(membership.ws)
        if workspace is not None and workspace.status == "active":
            out.append((workspace, membership.role))
    return out


def get_workspace(ws: str) -> Workspace:
    workspace = identity_repository().get_workspace(ws)
    if workspace is None:
        raise NotFound("Workspace not found")
    return workspace


def member_directory(ws: str) -> list[MemberBrief]:
    """Active members' id, name and role: what an agent needs to assign a conversation (SPEC section 3)."""
    return [MemberBrief(user_id=m.sub, name=m.name, role=m.role) for m in identity_repository().list_members(ws)]


def list_members(ws: str) -> list[MemberOut]:
    repo = identity_repository()
    members = [
        MemberOut(user_id=m.sub, email=m.email, name=m.name, role=m.role, status="active", created_at=m.created_at)
        for m in repo.list_members(ws)
    ]
    invited = [
        MemberOut(email=i.email, role=i.role, status="invited", created_at=i.created_at)
        for i in repo.list_invitations(ws)
    ]
    return members + invited


def _check_can_grant(caller: Membership, role: Role) -> None:
    # Nobody hands out a role above their own (an admin cannot make owners).
    if role > caller.role:
        raise Forbidden(f"Only an {role.label} or higher can grant the {role.label} role")


def add_member(caller: Membership, email: str, role_name: str) -> MemberOut:
    """Invite an address to the workspace. Always an invitation, answered the same whether or not the
    address has an account (no name, no user id, the same requests made either way), so the route
    cannot be used to learn who uses Relasify; the person joins with the invited role on their next
    request with a token whose verified email is this address (`accept_invitations`). Inviting an
    address that is already a member here is refused (409): the member list shows it anyway."""
    role = Role.parse(role_name)
    _check_can_grant(caller, role)
    repo = identity_repository()
    wanted = email.strip().lower()
    if any(member.email == wanted for member in repo.list_members(caller.ws)):
        raise Conflict("This address is already a member of the workspace")
    pending = next((i for i in repo.list_invitations(caller.ws) if i.email == wanted), None)
    if pending is not None and Role.parse(pending.role) > caller.role:
        # Re-inviting would overwrite it with a lower role: a revocation only its peers may make.
        raise Forbidden(f"Only an {pending.role} or higher can change an invitation as {pending.role}")
    invitation = repo.put_invitation(caller.ws, wanted, role.label, invited_by=caller.sub)
    audit.record(caller.ws, "member.invited", actor_id=caller.sub, details={"role": role.label})
    return MemberOut(email=invitation.email, role=invitation.role, status="invited", created_at=invitation.created_at)


def _target(ws: str, sub: str) -> MembershipRecord:
    target = identity_repository().get_membership(ws, sub)
    if target is None:
        raise NotFound("Member not found")
    return target


def change_role(caller: Membership, target_sub: str, role_name: str) -> MemberOut:
    role = Role.parse(role_name)
    target = _target(caller.ws, target_sub)
    _check_can_grant(caller, role)
    if Role.parse(target.role) > caller.role:
        raise Forbidden("Only an owner can change an owner's role")
    updated = identity_repository().change_role(caller.ws, target_sub, role.label)
    audit.record(
        caller.ws,
        "member.role_changed",
        actor_id=caller.sub,
        target_ids=[target_sub],
        details={"from": target.role, "to": role.label},
    )
    return MemberOut(
        user_id=updated.sub, email=updated.email, name=updated.name, role=updated.role, created_at=updated.created_at
    )


def remove_member(caller: Membership, target_sub: str) -> None:
    target = _target(caller.ws, target_sub)
    if target_sub != caller.sub and Role.parse(target.role) > caller.role:
        raise Forbidden("Only an owner can remove an owner")
    identity_repository().remove_member(caller.ws, target_sub)
    audit.record(caller.ws, "member.removed", actor_id=caller.sub, target_ids=[target_sub])


def remove_member_or_invitation(caller: Membership, target: str) -> None:
    """`target` is a member's user id, or the e-mail of a pending invitation: invited people have
    no user id yet, and a mistaken invitation must not wait to grant access at their first sign-in."""
    if "@" in target:
        revoke_invitation(caller, target)
    else:
        remove_member(caller, target)


def revoke_invitation(caller: Membership, email: str) -> None:
    repo = identity_repository()
    wanted = email.strip().lower()
    invitation = next((i for i in repo.list_invitations(caller.ws) if i.email == wanted), None)
    if invitation is None:
        raise NotFound("Invitation not found")
    if Role.parse(invitation.role) > caller.role:
        raise Forbidden(f"Only an {invitation.role} or higher can revoke an invitation as {invitation.role}")
    repo.delete_invitation(caller.ws, wanted)
    audit.record(caller.ws, "member.invitation_revoked", actor_id=caller.sub, details={"role": invitation.role})


# --- WhatsApp connection ---------------------------------------------------------------------


def connect_whatsapp(
    caller: Membership, request: WhatsAppConnect, *, graph: GraphClient | None = None
) -> WhatsAppConnection:
    """Connect (or reconnect, e.g. to rotate the token) a number whose ownership Graph confirms.

    Order matters: nothing is stored, and the app is not subscribed, until Graph has confirmed
    with this token that the WABA lists the number (422 otherwise; 503 when Meta does not answer).
    A number connected to another workspace is refused (409) only after that proof, so the answer
    tells nothing about other workspaces to someone who does not own the number."""
    repo = identity_repository()
    proven = whatsapp_ownership.prove_ownership(
        request.waba_id, request.phone_number_id, request.access_token, graph=graph
    )
    route = repo.route_by_phone_number_id(request.phone_number_id)
    if route is not None and route.ws != caller.ws:
        raise Conflict(
            "This WhatsApp phone number is connected to another workspace.",
            phone_number_id=request.phone_number_id,
        )
    whatsapp_ownership.subscribe_to_webhooks(request.waba_id, request.access_token, graph=graph)
    ciphertext = kms_tokens.encrypt_token(caller.ws, request.access_token)
    connection = repo.put_whatsapp_connection(
        caller.ws,
        waba_id=request.waba_id,
        phone_number_id=request.phone_number_id,
        encrypted_access_token=ciphertext,
        # Meta's own display number: account-level webhooks are matched against it.
        display_phone_number=proven.display_phone_number or request.display_phone_number,
        connected_by=caller.sub,
        quality_rating=proven.quality_rating,
        messaging_limit=proven.messaging_limit,
    )
    audit.record(
        caller.ws,
        "whatsapp.token_changed",
        actor_id=caller.sub,
        target_ids=[request.phone_number_id],
    )
    return connection


def get_whatsapp(ws: str) -> WhatsAppConnection:
    connection = identity_repository().get_whatsapp_connection(ws)
    if connection is None:
        raise NotFound("No WhatsApp number is connected to this workspace")
    return connection


def set_send_rate(caller: Membership, throughput_per_second: int) -> WhatsAppConnection:
    """Set the number's send cap (the limiter of every sender reads it with the connection)."""
    connection = identity_repository().update_whatsapp_health(caller.ws, throughput_per_second=throughput_per_second)
    if connection is None:
        raise NotFound("No WhatsApp number is connected to this workspace")
    audit.record(
        caller.ws,
        "whatsapp.settings_changed",
        actor_id=caller.sub,
        target_ids=[connection.phone_number_id],
        details={"throughput_per_second": throughput_per_second},
    )
    return connection


def disconnect_whatsapp(caller: Membership) -> None:
    connection = get_whatsapp(caller.ws)
    identity_repository().delete_whatsapp_connection(caller.ws)
    audit.record(caller.ws, "whatsapp.disconnected", actor_id=caller.sub, target_ids=[connection.phone_number_id])


def list_audit(ws: str, limit: int, cursor: str | None) -> Page[AuditEntry]:
    return identity_repository().list_audit(ws, limit=limit, cursor=cursor)
