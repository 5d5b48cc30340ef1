"""`GET .../contacts/{id}/messages` pages: newest first, every message exactly once, a last page
without `next_cursor`, and a cursor honoured only in the listing that issued it (SPEC section 5)."""

from __future__ import annotations

from datetime import timedelta

from relasify import clock
from relasify.data import messages as message_store
from relasify.data.contacts import contact_repository
from relasify.data.records import NewContact

from tests.support.api import ApiClient

OWNER = "owner@paging.test"
COUNT = 23
LIMIT = 5


def _conversation(ws: str, phone: str, count: int, tag: str) -> tuple[str, list[str]]:
    """A contact with `count` inbound messages a minute apart; returns its id and the ids newest first."""
    contact = contact_repository().create(ws, NewContact(phone=phone, wa_id=phone.lstrip("+")))
    base = clock.now() - timedelta(hours=1)
    stored = []
    for i in range(count):
        message = message_store.record_inbound(
            message_store.NewInboundMessage(
                ws=ws,
                contact_id=contact.id,
                wamid=f"wamid.{tag}{i}",
                type="text",
                content={"body": f"{tag} {i}"},
                message_at=base + timedelta(minutes=i),
            )
        )
        assert message is not None
        stored.append(message.id)
    return contact.id, stored[::-1]


def _page(api: ApiClient, ws: str, contact_id: str, cursor: str | None = None) -> tuple[int, dict]:
    query = f"?limit={LIMIT}" + (f"&cursor={cursor}" if cursor else "")
    response = api.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/messages{query}", as_user=OWNER)
    return response.status, response.json


def test_pages_walk_the_conversation_newest_first_once_each_and_end_without_a_cursor(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    contact_id, newest_first = _conversation(ws, "+6281200000001", COUNT, "A")
    _conversation(ws, "+6281200000002", 3, "B")  # another contact's messages stay out

    seen: list[str] = []
    sizes = []
    cursor = None
    for _ in range(COUNT):  # bounded: a cursor that never ends fails the test instead of hanging it
        status, body = _page(api, ws, contact_id, cursor)
        assert status == 200, body
        sizes.append(len(body["items"]))
        seen += [item["id"] for item in body["items"]]
        assert all(item["contact_id"] == contact_id for item in body["items"])
        times = [item["message_at"] for item in body["items"]]
        assert times == sorted(times, reverse=True)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first  # order, no duplicate, no gap
    assert sizes == [5, 5, 5, 5, 3]


def test_a_cursor_is_refused_in_another_contact_or_workspace(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    contact_id, _ = _conversation(ws, "+6281200000001", 7, "A")
    other_contact, _ = _conversation(ws, "+6281200000002", 7, "B")
    other_ws = api.create_workspace(OWNER, name="Toko Dua")
    foreign_contact, _ = _conversation(other_ws, "+6281200000001", 7, "C")
    status, first = _page(api, ws, contact_id)
    assert status == 200
    cursor = first["next_cursor"]
    assert cursor

    for target_ws, target_contact in ((ws, other_contact), (other_ws, foreign_contact)):
        status, problem = _page(api, target_ws, target_contact, cursor)
        assert status == 400, problem
        assert problem["type"].endswith("/invalid-cursor")
        assert problem["detail"] == "The cursor was issued for another workspace or listing."
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    status, problem = _page(api, ws, contact_id, tampered)
    assert status == 400, problem
    assert problem["type"].endswith("/invalid-cursor")
    # The cursor still works where it was issued.
    assert _page(api, ws, contact_id, cursor)[0] == 200
