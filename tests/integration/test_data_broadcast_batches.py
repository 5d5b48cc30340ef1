"""The broadcast worker's batched writes against moto: a page of claims, a chunk's skips and a sent
message's record are each one transaction; when a condition refuses one, nothing of it is written and
the one-by-one path decides each item, so counts stay exact and nobody is claimed or settled twice."""

from __future__ import annotations

import pytest
from relasify import clock
from relasify.data import broadcast_counters as counter_store
from relasify.data import broadcast_recipients as recipient_store
from relasify.data import broadcasts as store
from relasify.data import message_statuses, outbox, status_changes
from relasify.data import messages as message_store
from relasify.settings import Settings

WS = "ws_batches"


@pytest.fixture
def broadcast_id(ddb_tables: Settings) -> str:
    created = store.create_broadcast(
        WS,
        template_name="promo",
        language="id",
        audience={"tags": ["vip"]},
        parameters=[],
        scheduled_at=None,
        created_by=None,
    )
    return created.id


def _status(broadcast_id: str, contact_id: str) -> str | None:
    recipient = recipient_store.get_recipient(WS, broadcast_id, contact_id)
    return recipient.status if recipient else None


def test_claim_many_claims_a_page_once_and_counts_its_sums(broadcast_id: str) -> None:
    page = [recipient_store.Settlement(f"c{i}", "queued") for i in range(150)] + [
        recipient_store.Settlement("s1", "skipped", skip_reason="contact-opted-out"),
        recipient_store.Settlement("s2", "skipped", skip_reason="contact-opted-out"),
        recipient_store.Settlement("s3", "skipped", skip_reason="no-phone"),
    ]
    claimed = recipient_store.claim_many(WS, broadcast_id, page)
    assert claimed == {c.contact_id: True for c in page}
    counts = counter_store.counts(WS, broadcast_id)
    assert (counts.queued, counts.skipped) == (150, 3)
    assert counts.skipped_reasons == {"contact-opted-out": 2, "no-phone": 1}
    assert _status(broadcast_id, "s3") == "skipped"

    # The page redelivered, plus new contacts in the same groups: only the new ones are claimed and counted.
    again = recipient_store.claim_many(WS, broadcast_id, [*page[:10], recipient_store.Settlement("new", "queued")])
    assert again == {**{c.contact_id: False for c in page[:10]}, "new": True}
    counts = counter_store.counts(WS, broadcast_id)
    assert (counts.queued, counts.skipped) == (151, 3)


def test_settle_many_settles_queued_recipients_once(broadcast_id: str) -> None:
    recipient_store.claim_many(WS, broadcast_id, [recipient_store.Settlement(f"c{i}", "queued") for i in range(4)])
    assert recipient_store.settle_and_count(WS, broadcast_id, "c0", "sent", message_id="msg_x", queued=-1, sent=1)
    outcome = recipient_store.settle_many(
        WS, broadcast_id, [recipient_store.Settlement(f"c{i}", "skipped", skip_reason="cancelled") for i in range(4)]
    )
    assert outcome == {"c0": False, "c1": True, "c2": True, "c3": True}  # c0 was sent: it stays sent
    assert _status(broadcast_id, "c0") == "sent"
    counts = counter_store.counts(WS, broadcast_id)
    assert (counts.queued, counts.sent, counts.skipped) == (0, 1, 3)
    assert counts.skipped_reasons == {"cancelled": 3}


def _accepted(broadcast_id: str, contact_id: str) -> str:
    message_id = outbox.derived_message_id(WS, "broadcast", broadcast_id, contact_id)
    outbox.put_accepted(
        outbox.NewOutbound(
            ws=WS,
            message_id=message_id,
            contact_id=contact_id,
            type="template",
            content={"name": "promo"},
            broadcast_id=broadcast_id,
        )
    )
    return message_id


def test_record_sent_writes_wamid_recipient_and_count_together(broadcast_id: str) -> None:
    recipient_store.claim_many(WS, broadcast_id, [recipient_store.Settlement("c1", "queued")])
    message_id = _accepted(broadcast_id, "c1")
    assert recipient_store.record_sent(WS, broadcast_id, "c1", message_id, "wamid.one")
    located = message_store.locate_wamid("wamid.one")
    assert located is not None
    assert located.message_id == message_id
    stored = message_store.get_message(WS, message_id, consistent=True)
    assert stored is not None
    assert stored.wamid == "wamid.one"
    recipient = recipient_store.get_recipient(WS, broadcast_id, "c1")
    assert recipient is not None
    assert (recipient.status, recipient.message_id) == ("sent", message_id)
    counts = counter_store.counts(WS, broadcast_id)
    assert (counts.queued, counts.sent) == (0, 1)
    # A second record (a retried run) is refused as a whole: nothing is counted twice.
    assert not recipient_store.record_sent(WS, broadcast_id, "c1", message_id, "wamid.one")
    assert counter_store.counts(WS, broadcast_id).sent == 1


def test_record_sent_is_refused_whole_when_a_status_is_waiting_for_the_wamid(broadcast_id: str) -> None:
    """The webhook processor kept a status for this wamid (it came before the pointer): the record must
    not hide it, so the transaction is refused and the general path applies it."""
    recipient_store.claim_many(WS, broadcast_id, [recipient_store.Settlement("c1", "queued")])
    message_id = _accepted(broadcast_id, "c1")
    change = status_changes.StatusChange(wamid="wamid.early", status="delivered", at=clock.now())
    assert message_statuses.put_pending_status(WS, change)

    assert not recipient_store.record_sent(WS, broadcast_id, "c1", message_id, "wamid.early")
    assert message_store.locate_wamid("wamid.early") is None  # nothing of the transaction was written
    assert _status(broadcast_id, "c1") == "queued"
    assert counter_store.counts(WS, broadcast_id).sent == 0
    assert [p.change.status for p in message_statuses.pending_statuses("wamid.early")] == ["delivered"]


def test_record_sent_for_a_message_erased_mid_send_settles_the_recipient_and_leaves_no_pointer(
    broadcast_id: str,
) -> None:
    """The message's wamid is written after the transaction: when the message is gone by then
    (erased while its send was in flight), the recipient stays settled and the pointer, which
    would keep the wamid, is taken back."""
    recipient_store.claim_many(WS, broadcast_id, [recipient_store.Settlement("c1", "queued")])
    message_id = outbox.derived_message_id(WS, "broadcast", broadcast_id, "c1")  # never written
    assert recipient_store.record_sent(WS, broadcast_id, "c1", message_id, "wamid.erased")
    assert message_store.locate_wamid("wamid.erased") is None
    assert message_store.get_message(WS, message_id, consistent=True) is None
    assert _status(broadcast_id, "c1") == "sent"
    assert counter_store.counts(WS, broadcast_id).sent == 1
