"""Identity and tenancy repository: users, workspaces, memberships, invitations, the WhatsApp
connection with its phone-number routing item, and the audit and usage logs.

`IdentityRepository` is the interface services depend on; `DynamoIdentityRepository` is the
single-table implementation. Use `identity_repository()` for the process-wide instance.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from pynamodb.exceptions import TransactWriteError, UpdateError

from relasify import clock
from relasify.data import memberships
from relasify.data import models as m
from relasify.data.base import batch_get_raw, query_all, query_page, transaction
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.records import (
    AuditEntry,
    Invitation,
    Membership,
    Page,
    PhoneRoute,
    RoleName,
    UsageEntry,
    User,
    WhatsAppConnection,
    Workspace,
)
from relasify.data.tx import cancellation_codes, is_condition_failure
from relasify.errors import Conflict, NotFound

_RETRIES = 3  # optimistic retries when a concurrent write changed what we read
LAST_OWNER_DETAIL = "A workspace must keep at least one owner."
CLOSED_WORKSPACES_PK = "CLOSED#WORKSPACES"
SECURITY_COUNTER_SHARDS = 4  # items per minute and kind of a counted security event (count_security_event)


class IdentityRepository(Protocol):
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

    # WhatsApp connection and routing
    def put_whatsapp_connection(
        self,
        ws: str,
        *,
        waba_id: str,
        phone_number_id: str,
        encrypted_access_token: str,
        display_phone_number: str | None = None,
        connected_by: str | None = None,
        throughput_per_second: float | None = None,
        quality_rating: str | None = None,
        messaging_limit: str | None = None,
    ) -> WhatsAppConnection: ...
    def get_whatsapp_connection(self, ws: str) -> WhatsAppConnection | None: ...
    def delete_whatsapp_connection(self, ws: str) -> None: ...
    def update_whatsapp_health(
        self,
        ws: str,
        *,
        quality_rating: str | None = None,
        messaging_limit: str | None = None,
        restrictions: list[Any] | None = None,
        account_status: str | None = None,
        token_status: str | None = None,
        throughput_per_second: float | None = None,
    ) -> WhatsAppConnection | None: ...
    def route_by_phone_number_id(self, phone_number_id: str) -> PhoneRoute | None: ...
    def routes_by_waba_id(self, waba_id: str) -> list[PhoneRoute]: ...

    # logs
    def append_audit(
        self,
        ws: str | None,
        action: str,
        *,
        actor_id: str | None = None,
        target_ids: Iterable[str] = (),
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry: ...
    def count_security_event(
        self,
        action: str,
        kind: str,
        *,
        actor_id: str,
        details: dict[str, Any],
        ws: str | None = None,
        target_ids: Iterable[str] = (),
    ) -> None: ...
    def list_audit(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]: ...
    def list_security_log(self, day: str, *, limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]: ...
    def append_usage_batch(self, entries: Iterable[UsageEntry]) -> None: ...


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


def _connection(item: m.WhatsAppConnectionModel) -> WhatsAppConnection:
    return WhatsAppConnection(
        ws=item.ws_id,
        waba_id=item.waba_id,
        phone_number_id=item.phone_number_id,
        display_phone_number=item.display_phone_number,
        encrypted_access_token=item.encrypted_access_token,
        token_status=item.token_status,
        quality_rating=item.quality_rating,
        messaging_limit=item.messaging_limit,
        restrictions=list(item.restrictions or []),
        account_status=item.account_status,
        throughput_per_second=item.throughput_per_second,
        connected_by=item.connected_by,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _route(item: m.PhoneRouteModel) -> PhoneRoute:
    return PhoneRoute(
        phone_number_id=item.phone_number_id,
        ws=item.ws,
        waba_id=item.waba_id,
        display_phone_number=item.display_phone_number,
    )


def _audit(item: m.AuditLogModel) -> AuditEntry:
    return AuditEntry(
        id=item.entry_id,
        ws=item.ws_id,
        action=item.action,
        actor_id=item.actor_id,
        target_ids=list(item.target_ids or []),
        request_id=item.request_id,
        details=item.details.as_dict() if item.details is not None else {},
        at=item.at,
        occurrences=int(item.occurrences or 1),
    )


def _sortable(at: datetime) -> str:
    """Fixed-width UTC timestamp: sorts lexicographically in time order."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _member_key(ws: str, sub: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{m.MembershipModel.SK_PREFIX}{sub}"


class DynamoIdentityRepository:
    """`IdentityRepository` on the single table."""

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
                    m.WorkspaceModel.gsi2sk.set(f"{_sortable(at)}#{ws}"),
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
            m.WorkspaceModel.gsi2sk < _sortable(closed_before),
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

    # --- WhatsApp connection and routing -------------------------------------------------------
    def put_whatsapp_connection(
        self,
        ws: str,
        *,
        waba_id: str,
        phone_number_id: str,
        encrypted_access_token: str,
        display_phone_number: str | None = None,
        connected_by: str | None = None,
        throughput_per_second: float | None = None,
        quality_rating: str | None = None,
        messaging_limit: str | None = None,
    ) -> WhatsAppConnection:
        """Connect (or reconnect) a number. The connection and the routing item are written in
        one transaction; the routing item is conditional, so a phone_number_id belongs to one
        workspace at a time even when two workspaces race for it (the loser gets Conflict).

        Reconnecting the same phone_number_id (e.g. rotating the token) keeps its send cap
        (`throughput_per_second`) unless one is given; another number starts from the default,
        because Meta's throughput tier belongs to the number, not to the workspace. Quality rating and
        messaging limit, when given (read from Meta while connecting), replace what was known."""
        previous = m.WhatsAppConnectionModel.get_live(m.ws_pk(ws), m.WhatsAppConnectionModel.SK_VALUE)
        connection = m.WhatsAppConnectionModel(
            m.ws_pk(ws),
            m.WhatsAppConnectionModel.SK_VALUE,
            ws_id=ws,
            waba_id=waba_id,
            phone_number_id=phone_number_id,
            display_phone_number=display_phone_number,
            encrypted_access_token=encrypted_access_token,
            token_status="valid",  # noqa: S106 - a status, not a secret
            throughput_per_second=throughput_per_second,
            connected_by=connected_by,
            quality_rating=quality_rating,
            messaging_limit=messaging_limit,
        )
        if previous is not None and previous.phone_number_id == phone_number_id:
            # Same number: keep what Meta last reported about it, unless just read afresh.
            connection.quality_rating = quality_rating or previous.quality_rating
            connection.messaging_limit = messaging_limit or previous.messaging_limit
            connection.restrictions = previous.restrictions
            connection.account_status = previous.account_status
            connection.created_at = previous.created_at
            if throughput_per_second is None:
                connection.throughput_per_second = previous.throughput_per_second
        route = m.PhoneRouteModel(
            m.phone_route_pk(phone_number_id),
            m.PhoneRouteModel.SK_VALUE,
            ws=ws,
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            display_phone_number=display_phone_number,
            gsi1pk=f"WABA#{waba_id}",
            gsi1sk=m.phone_route_pk(phone_number_id),
        )
        try:
            with transaction() as tx:
                tx.save(route, condition=m.PhoneRouteModel.pk.does_not_exist() | (m.PhoneRouteModel.ws == ws))
                tx.save(connection)
                if previous is not None and previous.phone_number_id != phone_number_id:
                    tx.delete(
                        m.PhoneRouteModel(m.phone_route_pk(previous.phone_number_id), m.PhoneRouteModel.SK_VALUE),
                        condition=m.PhoneRouteModel.ws == ws,
                    )
        except TransactWriteError as exc:
            if (route.pk, route.sk) in tx.failures(exc):
                raise Conflict(
                    "This WhatsApp phone number is connected to another workspace.",
                    phone_number_id=phone_number_id,
                ) from exc
            raise
        return _connection(connection)

    def get_whatsapp_connection(self, ws: str) -> WhatsAppConnection | None:
        item = m.WhatsAppConnectionModel.get_live(m.ws_pk(ws), m.WhatsAppConnectionModel.SK_VALUE)
        return _connection(item) if item else None

    def delete_whatsapp_connection(self, ws: str) -> None:
        current = m.WhatsAppConnectionModel.get_live(m.ws_pk(ws), m.WhatsAppConnectionModel.SK_VALUE)
        if current is None:
            return
        try:
            with transaction() as tx:
                tx.delete(current)
                tx.delete(
                    m.PhoneRouteModel(m.phone_route_pk(current.phone_number_id), m.PhoneRouteModel.SK_VALUE),
                    condition=m.PhoneRouteModel.pk.does_not_exist() | (m.PhoneRouteModel.ws == ws),
                )
        except TransactWriteError as exc:
            if "ConditionalCheckFailed" not in cancellation_codes(exc):
                raise
            # The route already belongs to another workspace: only drop our connection.
            current.delete()

    def update_whatsapp_health(
        self,
        ws: str,
        *,
        quality_rating: str | None = None,
        messaging_limit: str | None = None,
        restrictions: list[Any] | None = None,
        account_status: str | None = None,
        token_status: str | None = None,
        throughput_per_second: float | None = None,
    ) -> WhatsAppConnection | None:
        """Apply what Meta reported (quality, limits, restrictions); None when not connected."""
        model = m.WhatsAppConnectionModel
        changes = [
            (model.quality_rating, quality_rating),
            (model.messaging_limit, messaging_limit),
            (model.restrictions, restrictions),
            (model.account_status, account_status),
            (model.token_status, token_status),
            (model.throughput_per_second, throughput_per_second),
        ]
        actions = [attr.set(value) for attr, value in changes if value is not None]
        item = model(m.ws_pk(ws), model.SK_VALUE)
        try:
            item.update(actions=[*actions, model.touch()], condition=model.pk.exists())
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return _connection(item)

    def route_by_phone_number_id(self, phone_number_id: str) -> PhoneRoute | None:
        item = m.PhoneRouteModel.get_live(m.phone_route_pk(phone_number_id), m.PhoneRouteModel.SK_VALUE)
        return _route(item) if item else None

    def routes_by_waba_id(self, waba_id: str) -> list[PhoneRoute]:
        return [_route(i) for i in query_all(m.PhoneRouteModel, f"WABA#{waba_id}", index=m.PhoneRouteModel.gsi1)]

    # --- audit and usage logs ------------------------------------------------------------------
    def append_audit(
        self,
        ws: str | None,
        action: str,
        *,
        actor_id: str | None = None,
        target_ids: Iterable[str] = (),
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        at = clock.now()
        entry_id = new_id()
        item = m.AuditLogModel(
            m.audit_pk(ws, at.strftime("%Y-%m-%d")),
            f"{_sortable(at)}#{entry_id}",
            entry_id=entry_id,
            ws_id=ws,
            action=action,
            actor_id=actor_id,
            target_ids=list(target_ids),
            request_id=request_id,
            details=details or {},
            at=at,
        )
        item.save()
        return _audit(item)

    def count_security_event(
        self,
        action: str,
        kind: str,
        *,
        actor_id: str,
        details: dict[str, Any],
        ws: str | None = None,
        target_ids: Iterable[str] = (),
    ) -> None:
        """Count one occurrence of an event that can come in floods (a rejected webhook signature, a
        refused request) in its minute's security-log entry of `kind` (the caller puts in it whatever
        the count is per, e.g. actor and reason): one UpdateItem, and at most SECURITY_COUNTER_SHARDS
        stored items per minute and kind however many requests arrive, where an entry per request would
        let a flood fill 24 months of security log. In the workspace's audit partition when `ws` is
        given, else in the day's global one. The first occurrence's details and target ids are kept.
        The shards spread a flood's writes: one item cannot take more than 1,000 writes a second, nor
        be split by DynamoDB's adaptive capacity."""
        at = clock.now()
        minute = at.replace(second=0, microsecond=0)
        model = m.AuditLogModel
        shard = random.randrange(SECURITY_COUNTER_SHARDS)  # noqa: S311 - load spreading, not security
        item = model(m.audit_pk(ws, at.strftime("%Y-%m-%d")), f"{_sortable(minute)}#{action}#{kind}#{shard}")
        first_only = [model.target_ids.set(model.target_ids | list(target_ids))] if target_ids else []
        if ws:
            first_only.append(model.ws_id.set(ws))
        item.update(
            actions=[
                model.entry_id.set(model.entry_id | f"{minute.strftime('%Y%m%dT%H%M')}-{kind}-{shard}"),
                model.action.set(action),
                model.actor_id.set(actor_id),
                model.details.set(model.details | details),
                model.at.set(model.at | minute),
                model.occurrences.add(1),
                *first_only,
                *model.stamps_for_upsert(item.pk, item.sk),
            ]
        )

    def list_audit(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]:
        return self._audit_page(m.audit_pk(ws, ""), ws=ws, limit=limit, cursor=cursor)

    def list_security_log(self, day: str, *, limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]:
        """Security entries without a workspace (e.g. rejected webhook signatures) of one UTC day."""
        return self._audit_page(m.audit_pk(None, day), ws="-", limit=limit, cursor=cursor)

    def _audit_page(self, pk: str, *, ws: str, limit: int, cursor: str | None) -> Page[AuditEntry]:
        start = decode_cursor(cursor, ws=ws, scope=f"audit:{pk}")
        page = query_page(m.AuditLogModel, pk, limit=limit, exclusive_start_key=start, newest_first=True)
        return Page(
            items=[_audit(i) for i in page.items],
            next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=f"audit:{pk}"),
        )

    def append_usage_batch(self, entries: Iterable[UsageEntry]) -> None:
        """Many entries with BatchWriteItem (25 per request; unprocessed items retried). The API no
        longer writes usage items (the usage log is log lines, relasify/web/usage.py); items written
        before live out their 12 months, and benches and tests seed them to exercise the sweep."""
        with m.UsageLogModel.batch_write() as batch:
            for entry in entries:
                batch.save(_usage_item(entry))


def _usage_item(entry: UsageEntry) -> m.UsageLogModel:
    return m.UsageLogModel(
        m.usage_pk(entry.ws, entry.at.strftime("%Y-%m-%d")),
        f"{_sortable(entry.at)}#{entry.request_id}",
        request_id=entry.request_id,
        ws_id=entry.ws,
        route=entry.route,
        method=entry.method,
        status_code=entry.status_code,
        latency_ms=entry.latency_ms,
        actor_id=entry.actor_id,
        at=entry.at,
    )


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
