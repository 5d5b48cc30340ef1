"""The workspace's WhatsApp connection and the phone-number routing item that gives a
phone_number_id to one workspace at a time (webhooks are routed by it).

`WhatsAppConnectionRepository` is the interface; `DynamoWhatsAppConnectionRepository` the single-table
implementation, part of the process-wide `relasify.data.identity.identity_repository()` and on its
own from `whatsapp_connection_repository()`: the webhook and media workers route and record number
health without loading identity's users, memberships and audit log.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from pynamodb.exceptions import TransactWriteError

from relasify.data import models as m
from relasify.data.base import query_all, transaction
from relasify.data.records import PhoneRoute, WhatsAppConnection
from relasify.data.tx import cancellation_codes, is_condition_failure
from relasify.errors import Conflict


class WhatsAppConnectionRepository(Protocol):
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


class DynamoWhatsAppConnectionRepository:
    """`WhatsAppConnectionRepository` on the single table."""

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


@lru_cache(maxsize=1)
def whatsapp_connection_repository() -> WhatsAppConnectionRepository:
    return DynamoWhatsAppConnectionRepository()
