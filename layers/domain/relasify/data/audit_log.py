"""The audit and security log (24 months) and the usage log.

`AuditLogRepository` is the interface; `DynamoAuditLogRepository` the single-table implementation,
part of the process-wide `relasify.data.identity.identity_repository()`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Protocol

from relasify import clock
from relasify.data import models as m
from relasify.data.base import query_page, sortable_time
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.records import AuditEntry, Page, UsageEntry

SECURITY_COUNTER_SHARDS = 4  # items per minute and kind of a counted security event (count_security_event)


class AuditLogRepository(Protocol):
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


class DynamoAuditLogRepository:
    """`AuditLogRepository` on the single table."""

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
            f"{sortable_time(at)}#{entry_id}",
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
        item = model(m.audit_pk(ws, at.strftime("%Y-%m-%d")), f"{sortable_time(minute)}#{action}#{kind}#{shard}")
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
        f"{sortable_time(entry.at)}#{entry.request_id}",
        request_id=entry.request_id,
        ws_id=entry.ws,
        route=entry.route,
        method=entry.method,
        status_code=entry.status_code,
        latency_ms=entry.latency_ms,
        actor_id=entry.actor_id,
        at=entry.at,
    )
