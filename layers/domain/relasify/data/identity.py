"""Identity and tenancy repository: users, workspaces, memberships and invitations; with the
WhatsApp connection (relasify/data/whatsapp_connections.py) and the audit and usage logs
(relasify/data/audit_log.py) it makes the repository services depend on.

`IdentityRepository` is the interface services depend on; `DynamoIdentityRepository` is the
single-table implementation. Use `identity_repository()` for the process-wide instance.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Protocol

from pynamodb.exceptions import TransactWriteError, UpdateError

from relasify import clock
from relasify.data import memberships
from relasify.data import models as m
from relasify.data.audit_log import AuditLogRepository, DynamoAuditLogRepository
from relasify.data.base import batch_get_raw, query_all, query_page, sortable_time, transaction
from relasify.data.ids import new_id
from relasify.data.records import Invitation, Membership, RoleName, User, Workspace
from relasify.data.tx import cancellation_codes, is_condition_failure
from relasify.data.whatsapp_connections import DynamoWhatsAppConnectionRepository, WhatsAppConnectionRepository
from relasify.errors import Conflict, NotFound

_RETRIES = 3  # optimistic retries when a concurrent write changed what we read
LAST_OWNER_DETAIL = "A workspace must keep at least one owner."
CLOSED_WORKSPACES_PK = "CLOSED#WORKSPACES"


class IdentityRepository(WhatsAppConnectionRepository, AuditLogRepository, Protocol):
    # users
    def upsert_user(self, sub: str, email: str, name: str | None = None, picture: str | None = None) -> User: ...
    def refresh_user(
        self, sub: str, email: str, name: str | None = None, picture: str | None = None
    ) -> User | None: ...
    def get_user(self, sub: str) -> User | None: ...
    def get_user_by_email(self, email: str) -> User | None: ...
    def delete_user(self, sub: str) -> None: ...

    # workspaces and memberships
    def create_workspace(
        self, name: str, *, owner_sub: str, owner_email: str | None = None, owner_name: str | None = None
    ) -> tuple[Workspace, Membership]: ...
    def get_workspace(self, ws: str) -> Workspace | None: ...
    def close_workspace(self, ws: str, *, closed_at: datetime | None = None) -> Workspace: ...
    def list_closed_workspaces(self, *, closed_before: datetime) -> list[Workspace]: ...
    def get_membership(self, ws: str, sub: str) -> Membership | None: ...
    def get_workspace_and_membership(self, ws: str, sub: str) -> tuple[Workspace | None, Membership | None]: ...
    def list_members(self, ws: str) -> list[Membership]: ...
    def list_user_memberships(self, sub: str) -> list[Membership]: ...
    def add_member(
        self,
        ws: str,
        sub: str,
        role: RoleName,
        *,
        email: str | None = None,
        name: str | None = None,
        added_by: str | None = None,
    ) -> Membership: ...
    def change_role(self, ws: str, sub: str, role: RoleName) -> Membership: ...
    def remove_member(self, ws: str, sub: str) -> None: ...

    # invitations
    def put_invitation(self, ws: str, email: str, role: RoleName, *, invited_by: str | None = None) -> Invitation: ...
    def list_invitations(self, ws: str) -> list[Invitation]: ...
    def invitations_for_email(self, email: str) -> list[Invitation]: ...
    def delete_invitation(self, ws: str, email: str) -> None: ...


# ---------------------------------------------------------------------------------------------
# model <-> record


def _user(item: m.UserModel) -> User:
    return User(
        sub=item.sub,
        email=item.email,
        name=item.name,
        picture=item.picture,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _workspace(item: m.WorkspaceModel) -> Workspace:
    return Workspace(
        id=item.ws_id,
        name=item.name,
        status=item.status,  # type: ignore[arg-type]
        closed_at=item.closed_at,
        created_by=item.created_by,
        owner_count=int(item.owner_count or 0),
        expires_at=int(item.expires_at) if item.expires_at is not None else None,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _membership(item: m.MembershipModel) -> Membership:
    return Membership(
        ws=item.ws_id,
        sub=item.sub,
        role=item.role,  # type: ignore[arg-type]
        email=item.email,
        name=item.name,
        workspace_name=item.workspace_name,
        added_by=item.added_by,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _invitation(item: m.InvitationModel) -> Invitation:
    return Invitation(
        ws=item.ws_id,
        email=item.email,
        role=item.role,  # type: ignore[arg-type]
        invited_by=item.invited_by,
        workspace_name=item.workspace_name,
        created_at=item.created_at,
    )


def _member_key(ws: str, sub: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{m.MembershipModel.SK_PREFIX}{sub}"


class DynamoIdentityRepository(DynamoWhatsAppConnectionRepository, DynamoAuditLogRepository):
    """`IdentityRepository` on the single table: users, workspaces, memberships and invitations here,
    the WhatsApp connection and the logs from their own modules."""

    # --- users ---------------------------------------------------------------------------------
    def upsert_user(self, sub: str, email: str, name: str | None = None, picture: str | None = None) -> User:
        user = self._write_user(sub, email, name, picture, must_exist=False)
        assert user is not None  # an unconditional upsert always writes
        return user

    def refresh_user(self, sub: str, email: str, name: str | None = None, picture: str | None = None) -> User | None:
        """Update an EXISTING user record from the token's claims; None (nothing written) when there
        is none. Same single UpdateItem as an upsert, so callers learn that the user is new (and may
        check the deletion marker) at no extra cost."""
        return self._write_user(sub, email, name, picture, must_exist=True)

    def _write_user(
        self, sub: str, email: str, name: str | None, picture: str | None, *, must_exist: bool
    ) -> User | None:
        now = clock.now()
        email_key = email.strip().lower()
        item = m.UserModel(m.user_pk(sub), m.UserModel.SK_VALUE)
        actions = [
            m.UserModel.sub.set(sub),
            m.UserModel.email.set(email_key),
            m.UserModel.created_at.set(m.UserModel.created_at | now),
            m.UserModel.updated_at.set(now),
        ]
        # Only an address the caller proved to own is indexed (the service passes "" otherwise): a
        # user without one is in no `EMAIL#` partition, so no lookup by e-mail ever finds them.
        if email_key:
            actions += [m.UserModel.gsi1pk.set(f"EMAIL#{email_key}"), m.UserModel.gsi1sk.set("USER")]
        else:
            actions += [m.UserModel.gsi1pk.remove(), m.UserModel.gsi1sk.remove()]
        # Claims without a name/picture leave the stored ones alone.
        if name is not None:
            actions.append(m.UserModel.name.set(name))
        if picture is not None:
            actions.append(m.UserModel.picture.set(picture))
        try:
            # update() upserts: one request, created_at kept
            item.update(actions=actions, condition=m.UserModel.pk.exists() if must_exist else None)
        except UpdateError as exc:
            if must_exist and is_condition_failure(exc):
                return None
            raise
        return _user(item)

    def get_user(self, sub: str) -> User | None:
        item = m.UserModel.get_live(m.user_pk(sub), m.UserModel.SK_VALUE)
        return _user(item) if item else None

    def get_user_by_email(self, email: str) -> User | None:
        """The user whose VERIFIED address this is (only those are indexed); no route uses it to
        answer a caller (member invitations never look people up: no account enumeration)."""
        page = query_page(m.UserModel, f"EMAIL#{email.strip().lower()}", index=m.UserModel.gsi1, limit=1)
        return _user(page.items[0]) if page.items else None

    def delete_user(self, sub: str) -> None:
        m.UserModel(m.user_pk(sub), m.UserModel.SK_VALUE).delete()

    # --- workspaces ----------------------------------------------------------------------------
    def create_workspace(
        self, name: str, *, owner_sub: str, owner_email: str | None = None, owner_name: str | None = None
    ) -> tuple[Workspace, Membership]:
        ws = new_id("ws")
        workspace = m.WorkspaceModel(
            m.ws_pk(ws),
            m.WorkspaceModel.SK_VALUE,
            ws_id=ws,
            name=name,
            status="active",
            created_by=owner_sub,
            owner_count=1,
        )
        pk, sk = _member_key(ws, owner_sub)
        member = m.MembershipModel(
            pk,
            sk,
            ws_id=ws,
            sub=owner_sub,
            role="owner",
            email=owner_email,
            name=owner_name,
            workspace_name=name,
            added_by=owner_sub,
            gsi1pk=m.user_pk(owner_sub),
            gsi1sk=m.ws_pk(ws),
        )
        # Workspace and owner membership together or not at all: no owner-less workspace.
        try:
            with transaction() as tx:
                tx.save(workspace, condition=m.WorkspaceModel.pk.does_not_exist())
                tx.save(member, condition=m.MembershipModel.pk.does_not_exist())
        except TransactWriteError as exc:
            if "ConditionalCheckFailed" in cancellation_codes(exc):  # an id collision: nothing written
                raise Conflict("Workspace id collision; retry.") from exc
            raise
        return _workspace(workspace), _membership(member)

    def get_workspace(self, ws: str) -> Workspace | None:
        item = m.WorkspaceModel.get_live(m.ws_pk(ws), m.WorkspaceModel.SK_VALUE)
        return _workspace(item) if item else None

    def close_workspace(self, ws: str, *, closed_at: datetime | None = None) -> Workspace:
        """Mark closed; the retention sweep stamps the account-data TTL from `closed_at`. Closed
        workspaces enter a sparse GSI2 partition so the sweep finds them without a Scan."""
        at = closed_at or clock.now()
        item = m.WorkspaceModel(m.ws_pk(ws), m.WorkspaceModel.SK_VALUE)
        try:
            item.update(
                actions=[
                    m.WorkspaceModel.status.set("closed"),
                    m.WorkspaceModel.closed_at.set(at),
                    m.WorkspaceModel.gsi2pk.set(CLOSED_WORKSPACES_PK),
                    m.WorkspaceModel.gsi2sk.set(f"{sortable_time(at)}#{ws}"),
                    m.WorkspaceModel.touch(),
                ],
                condition=m.WorkspaceModel.pk.exists() & (m.WorkspaceModel.status == "active"),
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            current = self.get_workspace(ws)
            if current is None:
                raise NotFound("Workspace not found.") from exc
            return current  # already closed: closing is idempotent
        return _workspace(item)

    def list_closed_workspaces(self, *, closed_before: datetime) -> list[Workspace]:
        """Workspaces closed before an instant, oldest first (GSI2 `CLOSED#WORKSPACES`); the
        retention sweep stamps their account data. Already-expired ones are not returned."""
        items = query_all(
            m.WorkspaceModel,
            CLOSED_WORKSPACES_PK,
            m.WorkspaceModel.gsi2sk < sortable_time(closed_before),
            index=m.WorkspaceModel.gsi2,
        )
        return [_workspace(i) for i in items]

    # --- memberships ---------------------------------------------------------------------------
    def get_membership(self, ws: str, sub: str) -> Membership | None:
        item = m.MembershipModel.get_live(*_member_key(ws, sub))
        return _membership(item) if item else None

    def get_workspace_and_membership(self, ws: str, sub: str) -> tuple[Workspace | None, Membership | None]:
        """The workspace and the caller's membership in ONE BatchGetItem, read consistently: the role
        guard calls this on every request, so a removal, a demotion or a closure made through any
        container is seen by the very next request, at the cost of one request per API call."""
        workspace_key = (m.ws_pk(ws), m.WorkspaceModel.SK_VALUE)
        member_key = _member_key(ws, sub)
        found = batch_get_raw([workspace_key, member_key], consistent=True)
        raw_workspace, raw_member = found.get(workspace_key), found.get(member_key)
        workspace_item = m.WorkspaceModel.from_raw_data(raw_workspace) if raw_workspace else None
        member_item = m.MembershipModel.from_raw_data(raw_member) if raw_member else None
        workspace = _workspace(workspace_item) if workspace_item and not workspace_item.is_expired else None
        membership = _membership(member_item) if member_item and not member_item.is_expired else None
        return workspace, membership

    def list_members(self, ws: str) -> list[Membership]:
        items = query_all(m.MembershipModel, m.ws_pk(ws), m.MembershipModel.sk.startswith(m.MembershipModel.SK_PREFIX))
        return [_membership(i) for i in items]

    def list_user_memberships(self, sub: str) -> list[Membership]:
        items = query_all(
            m.MembershipModel,
            m.user_pk(sub),
            m.MembershipModel.gsi1sk.startswith("WS#"),
            index=m.MembershipModel.gsi1,
        )
        return [_membership(i) for i in items]

    def add_member(
        self,
        ws: str,
        sub: str,
        role: RoleName,
        *,
        email: str | None = None,
        name: str | None = None,
        added_by: str | None = None,
    ) -> Membership:
        workspace = self.get_workspace(ws)
        if workspace is None:
            raise NotFound("Workspace not found.")
        pk, sk = _member_key(ws, sub)
        member = m.MembershipModel(
            pk,
            sk,
            ws_id=ws,
            sub=sub,
            role=role,
            email=email,
            name=name,
            workspace_name=workspace.name,
            added_by=added_by,
            gsi1pk=m.user_pk(sub),
            gsi1sk=m.ws_pk(ws),
        )
        try:
            with transaction() as tx:
                tx.save(member, condition=m.MembershipModel.pk.does_not_exist())
                if role == "owner":
                    tx.update(
                        m.WorkspaceModel(m.ws_pk(ws), m.WorkspaceModel.SK_VALUE),
                        actions=[m.WorkspaceModel.owner_count.add(1)],
                        condition=m.WorkspaceModel.pk.exists(),
                    )
        except TransactWriteError as exc:
            if (pk, sk) in tx.failures(exc):
                raise Conflict("This user is already a member of the workspace.") from exc
            raise
        return _membership(member)

    def change_role(self, ws: str, sub: str, role: RoleName) -> Membership:
        """Change a member's role; demoting the last owner raises Conflict (checked atomically
        against the workspace's owner count in the same transaction)."""
        for _ in range(_RETRIES):
            current = m.MembershipModel.get_live(*_member_key(ws, sub), consistent_read=True)
            if current is None:
                raise NotFound("Member not found.")
            if current.role == role:
                return _membership(current)
            delta = (1 if role == "owner" else 0) - (1 if current.role == "owner" else 0)
            try:
                with transaction() as tx:
                    tx.update(
                        current,
                        actions=[m.MembershipModel.role.set(role), m.MembershipModel.touch()],
                        condition=m.MembershipModel.role == current.role,
                    )
                    if delta:
                        tx.update(
                            m.WorkspaceModel(m.ws_pk(ws), m.WorkspaceModel.SK_VALUE),
                            actions=[m.WorkspaceModel.owner_count.add(delta)],
                            condition=(m.WorkspaceModel.owner_count > 1) if delta < 0 else m.WorkspaceModel.pk.exists(),
                        )
            except TransactWriteError as exc:
                failed = tx.failures(exc)
                workspace_refusal = failed.get((m.ws_pk(ws), m.WorkspaceModel.SK_VALUE))
                if delta < 0 and workspace_refusal and workspace_refusal.code == "ConditionalCheckFailed":
                    raise Conflict(LAST_OWNER_DETAIL) from exc
                if failed:
                    continue  # the member changed under us (or a concurrent transaction): re-read
                raise
            return _membership(m.MembershipModel.get(*_member_key(ws, sub), consistent_read=True))
        raise Conflict("The membership changed concurrently; retry.")

    def remove_member(self, ws: str, sub: str) -> None:
        """Remove a member; removing the last owner raises Conflict (atomic with the owner count)."""
        for _ in range(_RETRIES):
            current = m.MembershipModel.get_live(*_member_key(ws, sub), consistent_read=True)
            if current is None:
                raise NotFound("Member not found.")
            is_owner = current.role == "owner"
            try:
                with transaction() as tx:
                    tx.delete(current, condition=m.MembershipModel.role == current.role)
                    if is_owner:
                        tx.update(
                            m.WorkspaceModel(m.ws_pk(ws), m.WorkspaceModel.SK_VALUE),
                            actions=[m.WorkspaceModel.owner_count.add(-1)],
                            condition=m.WorkspaceModel.owner_count > 1,
                        )
            except TransactWriteError as exc:
                failed = tx.failures(exc)
                workspace_refusal = failed.get((m.ws_pk(ws), m.WorkspaceModel.SK_VALUE))
                if is_owner and workspace_refusal and workspace_refusal.code == "ConditionalCheckFailed":
                    raise Conflict(LAST_OWNER_DETAIL) from exc
                if failed:
                    continue
                raise
            return
        raise Conflict("The membership changed concurrently; retry.")

    # --- invitations ---------------------------------------------------------------------------
    def put_invitation(self, ws: str, email: str, role: RoleName, *, invited_by: str | None = None) -> Invitation:
        email_key = email.strip().lower()
        workspace = self.get_workspace(ws)
        item = m.InvitationModel(
            m.ws_pk(ws),
            f"{m.InvitationModel.SK_PREFIX}{email_key}",
            ws_id=ws,
            email=email_key,
            role=role,
            invited_by=invited_by,
            workspace_name=workspace.name if workspace else None,
            gsi1pk=f"INVITE#{email_key}",
            gsi1sk=m.ws_pk(ws),
        )
        item.save()
        return _invitation(item)

    def list_invitations(self, ws: str) -> list[Invitation]:
        items = query_all(m.InvitationModel, m.ws_pk(ws), m.InvitationModel.sk.startswith(m.InvitationModel.SK_PREFIX))
        return [_invitation(i) for i in items]

    def invitations_for_email(self, email: str) -> list[Invitation]:
        items = query_all(m.InvitationModel, f"INVITE#{email.strip().lower()}", index=m.InvitationModel.gsi1)
        return [_invitation(i) for i in items]

    def delete_invitation(self, ws: str, email: str) -> None:
        m.InvitationModel(m.ws_pk(ws), f"{m.InvitationModel.SK_PREFIX}{email.strip().lower()}").delete()


@lru_cache(maxsize=1)
def identity_repository() -> IdentityRepository:
    return DynamoIdentityRepository()


def get_membership(ws: str, sub: str) -> memberships.Membership | None:
    """The caller's membership in the shape the role guard checks."""
    record = identity_repository().get_membership(ws, sub)
    if record is None:
        return None
    return memberships.Membership(ws=record.ws, sub=record.sub, role=memberships.Role.parse(record.role))


def get_active_membership(ws: str, sub: str) -> memberships.Membership | None:
    """The caller's membership of an ACTIVE workspace (closed, expired or missing: None), from one
    consistent BatchGetItem of both items."""
    workspace, record = identity_repository().get_workspace_and_membership(ws, sub)
    if workspace is None or workspace.status != "active" or record is None:
        return None
    return memberships.Membership(ws=record.ws, sub=record.sub, role=memberships.Role.parse(record.role))
