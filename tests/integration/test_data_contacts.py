"""Contacts repository against moto: uniqueness (also under concurrency), marker moves, tags,
listing and search with cursors, consent history, forward-only service window, expiry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from relasify import clock
from relasify.data import models as m
from relasify.data.base import TableModel
from relasify.data.contacts import MAX_TAGS, DynamoContactRepository
from relasify.data.records import ConsentEvent, ContactChanges, NewContact
from relasify.errors import BadCursor, DuplicateContact, NotFound, ValidationFailed
from relasify.settings import Settings

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def repo(ddb_tables: Settings) -> DynamoContactRepository:
    return DynamoContactRepository()


@pytest.fixture
def dynamodb_calls() -> Iterator[list[str]]:
    """Names of the DynamoDB operations the repositories send (botocore before-call hook)."""
    calls: list[str] = []

    def record(model: object, **_: object) -> None:
        calls.append(model.name)  # type: ignore[attr-defined]

    events = TableModel._get_connection().connection.client.meta.events
    events.register("before-call.dynamodb", record, unique_id="count-dynamodb-calls")
    yield calls
    events.unregister("before-call.dynamodb", unique_id="count-dynamodb-calls")


def test_create_get_and_find_by_each_identity(repo: DynamoContactRepository) -> None:
    created = repo.create(
        "ws1",
        NewContact(
            phone="+6281234567890",
            wa_id="6281234567890",
            user_id="ID.123",
            name="Budi Santoso",
            tags=["vip", "jakarta", "vip"],
            attributes={"tier": "gold", "points": 120, "active": True},
            consent=ConsentEvent(status="opted_in", source="api", at=T0, actor_id="u1"),
        ),
    )
    assert created.tags == ["vip", "jakarta"]
    assert created.attributes == {"tier": "gold", "points": 120, "active": True}
    assert created.consent.status == "opted_in"
    assert [e.status for e in created.consent.history] == ["opted_in"]
    assert repo.get("ws1", created.id) == created
    assert repo.find_by_phone("ws1", "+6281234567890") == created
    assert repo.find_by_wa_id("ws1", "6281234567890") == created
    assert repo.find_by_user_id("ws1", "ID.123") == created
    assert repo.find_by_phone("ws2", "+6281234567890") is None  # markers are per workspace
    assert repo.get("ws2", created.id) is None


def test_duplicate_phone_names_the_existing_contact_and_writes_nothing(repo: DynamoContactRepository) -> None:
    first = repo.create("ws1", NewContact(phone="+6281111111111"))
    with pytest.raises(DuplicateContact) as caught:
        repo.create("ws1", NewContact(phone="+6281111111111", wa_id="628999", tags=["x"]))
    assert caught.value.extra == {"existing_id": first.id, "field": "phone"}
    assert repo.find_by_wa_id("ws1", "628999") is None  # the transaction wrote nothing
    assert repo.list_by_tag("ws1", "x").items == []
    assert [c.id for c in repo.list_contacts("ws1").items] == [first.id]

    # Another workspace may hold the same phone.
    assert repo.create("ws2", NewContact(phone="+6281111111111")).ws == "ws2"

    # create_or_get returns the holder.
    contact, created = repo.create_or_get("ws1", NewContact(phone="+6281111111111"))
    assert (contact.id, created) == (first.id, False)


def test_concurrent_creates_of_one_phone_exactly_one_succeeds(repo: DynamoContactRepository) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    created: list[str] = []
    duplicates: list[str | None] = []

    def create() -> None:
        barrier.wait()
        try:
            created.append(repo.create("ws1", NewContact(phone="+6282222222222")).id)
        except DuplicateContact as dup:
            duplicates.append(dup.extra["existing_id"])

    threads = [threading.Thread(target=create) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(created) == 1
    assert duplicates == [created[0]] * (workers - 1)
    assert [c.id for c in repo.list_contacts("ws1").items] == created


def _search(repo: DynamoContactRepository, ws: str, prefix: str, **page: Any) -> Any:
    """The contact search `q` uses (word items): contacts are in no prefix index of their own."""
    return repo.search(ws, prefix, also=[], tag=None, **page)


def test_update_moves_markers_and_tags(repo: DynamoContactRepository) -> None:
    a = repo.create("ws1", NewContact(phone="+6281000000001", name="Ana", tags=["old", "keep"]))
    b = repo.create("ws1", NewContact(phone="+6281000000002"))

    updated = repo.update(
        "ws1", a.id, ContactChanges(phone="+6281000000003", name="Anita", tags=["keep", "new"], attributes={"k": 1})
    )
    assert updated.phone == "+6281000000003"
    assert updated.name == "Anita"
    assert updated.attributes == {"k": 1}
    assert repo.find_by_phone("ws1", "+6281000000001") is None  # old marker released
    assert repo.find_by_phone("ws1", "+6281000000003") == updated
    assert [c.id for c in repo.list_by_tag("ws1", "old").items] == []
    assert [c.id for c in repo.list_by_tag("ws1", "new").items] == [a.id]
    assert [c.id for c in _search(repo, "ws1", "anit").items] == [a.id]
    assert _search(repo, "ws1", "ana").items == []

    # The released phone can be reused; a taken one cannot, and nothing changes.
    repo.create("ws1", NewContact(phone="+6281000000001"))
    with pytest.raises(DuplicateContact) as caught:
        repo.update("ws1", a.id, ContactChanges(phone="+6281000000002", name="Changed"))
    assert caught.value.extra["existing_id"] == b.id
    unchanged = repo.get("ws1", a.id)
    assert unchanged is not None
    assert unchanged.name == "Anita"

    # Fields not in the change set stay; an explicit None clears.
    cleared = repo.update("ws1", a.id, ContactChanges(name=None))
    assert cleared.name is None
    assert cleared.phone == "+6281000000003"
    with pytest.raises(NotFound):
        repo.update("ws1", "missing", ContactChanges(name="x"))


def test_link_identity_claims_wa_id_and_user_id(repo: DynamoContactRepository) -> None:
    c = repo.create("ws1", NewContact(phone="+6281300000000"))
    other = repo.create("ws1", NewContact(wa_id="62999"))
    linked = repo.link_identity("ws1", c.id, wa_id="6281300000000", user_id="ID.9")
    assert (linked.wa_id, linked.user_id) == ("6281300000000", "ID.9")
    assert repo.find_by_user_id("ws1", "ID.9") == linked
    with pytest.raises(DuplicateContact) as caught:
        repo.link_identity("ws1", c.id, wa_id="62999")
    assert caught.value.extra == {"existing_id": other.id, "field": "wa_id"}


def test_delete_removes_contact_markers_and_tags(repo: DynamoContactRepository) -> None:
    c = repo.create("ws1", NewContact(phone="+6281400000000", wa_id="6281400000000", tags=["t"]))
    assert repo.delete("ws1", c.id) is True
    assert repo.get("ws1", c.id) is None
    assert repo.find_by_phone("ws1", "+6281400000000") is None
    assert m.ContactUniqueModel.get_live(m.contact_unique_pk("ws1", "wa_id", "6281400000000"), "UNIQ") is None
    assert list(m.ContactTagModel.query(m.contact_tag_pk("ws1", "t"))) == []
    assert repo.delete("ws1", c.id) is False
    # The phone is free again.
    repo.create("ws1", NewContact(phone="+6281400000000"))


def test_too_many_tags_is_a_validation_error(repo: DynamoContactRepository) -> None:
    with pytest.raises(ValidationFailed):
        repo.create("ws1", NewContact(tags=[f"t{i}" for i in range(MAX_TAGS + 1)]))


def test_consent_history_is_append_only(repo: DynamoContactRepository) -> None:
    c = repo.create("ws1", NewContact(phone="+6281500000000"))
    assert c.consent.status == "unknown"
    repo.set_consent("ws1", c.id, ConsentEvent(status="opted_in", source="api", at=T0))
    after = repo.set_consent(
        "ws1", c.id, ConsentEvent(status="opted_out", source="webhook_keyword", at=T0 + timedelta(1))
    )
    assert after.consent.status == "opted_out"
    assert after.consent.source == "webhook_keyword"
    assert [(e.status, e.source) for e in after.consent.history] == [
        ("opted_in", "api"),
        ("opted_out", "webhook_keyword"),
    ]
    assert repo.set_restricted("ws1", c.id, True).restricted is True
    assert repo.set_unreachable("ws1", c.id, True).unreachable is True
    with pytest.raises(NotFound):
        repo.set_restricted("ws1", "missing", True)


def test_last_inbound_only_moves_forward(repo: DynamoContactRepository) -> None:
    c = repo.create("ws1", NewContact(phone="+6281600000000"))
    assert repo.record_inbound("ws1", c.id, T0) is True
    assert repo.record_inbound("ws1", c.id, T0 - timedelta(minutes=5)) is False  # late webhook
    assert repo.record_inbound("ws1", c.id, T0 + timedelta(minutes=5)) is True
    stored = repo.get("ws1", c.id)
    assert stored is not None
    assert stored.last_inbound_at == T0 + timedelta(minutes=5)
    assert repo.record_inbound("ws1", "missing", T0) is False


def _index_keys(ws: str, contact_id: str) -> set[str]:
    raw = m.ContactModel._get_connection().get_item(m.ws_pk(ws), f"CONTACT#{contact_id}", consistent_read=True)
    return {name for name in raw["Item"] if name.startswith(("GSI", "Inbox"))}


def test_a_contact_is_in_no_index_and_an_inbound_message_sheds_the_old_entries(repo: DynamoContactRepository) -> None:
    """`last_inbound_at` changes with every inbound message: an index entry of the contact would be
    rewritten each time. Contacts written before carried GSI1/GSI2 keys; an inbound message drops them."""
    c = repo.create("ws1", NewContact(phone="+6281600000001", name="Ana"))
    updated = repo.update("ws1", c.id, ContactChanges(name="Anita", phone="+6281600000002"))
    assert _index_keys("ws1", c.id) == set()
    legacy = m.ContactModel.get(m.ws_pk("ws1"), f"CONTACT#{c.id}")
    legacy.update(
        actions=[
            m.ContactModel.gsi1pk.set("WS#ws1#PHONE"),
            m.ContactModel.gsi1sk.set(f"+6281600000002#{c.id}"),
            m.ContactModel.gsi2pk.set("WS#ws1#NAME"),
            m.ContactModel.gsi2sk.set(f"anita#{c.id}"),
        ]
    )
    assert repo.record_inbound("ws1", c.id, T0) is True
    assert _index_keys("ws1", c.id) == set()
    stored = repo.get("ws1", c.id)
    assert stored is not None
    assert (stored.name, stored.phone, stored.last_inbound_at) == (updated.name, updated.phone, T0)


def test_list_pages_with_cursor_one_query_per_page_and_no_scan(
    repo: DynamoContactRepository, dynamodb_calls: list[str]
) -> None:
    ids = [repo.create("ws1", NewContact(phone=f"+62817000000{i:02d}")).id for i in range(7)]
    repo.create("ws2", NewContact(phone="+6281700000000"))
    dynamodb_calls.clear()

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = repo.list_contacts("ws1", limit=3, cursor=cursor)
        pages += 1
        seen += [c.id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids  # creation order, no duplicates, nothing from ws2
    assert dynamodb_calls == ["Query"] * pages
    assert "Scan" not in dynamodb_calls

    first = repo.list_contacts("ws1", limit=3)
    with pytest.raises(BadCursor):
        repo.list_contacts("ws2", limit=3, cursor=first.next_cursor)
    with pytest.raises(BadCursor):
        _search(repo, "ws1", "a", cursor=first.next_cursor)
    with pytest.raises(BadCursor):
        repo.list_contacts("ws1", cursor=first.next_cursor[:-2] + "xx")  # type: ignore[index]


def test_tag_listing_is_one_query_and_one_batch_get(repo: DynamoContactRepository, dynamodb_calls: list[str]) -> None:
    tagged = [repo.create("ws1", NewContact(phone=f"+62818000000{i:02d}", tags=["vip"])).id for i in range(4)]
    repo.create("ws1", NewContact(phone="+6281899999999", tags=["other"]))
    dynamodb_calls.clear()
    page = repo.list_by_tag("ws1", "vip", limit=3)
    assert dynamodb_calls == ["Query", "BatchGetItem"]
    rest = repo.list_by_tag("ws1", "vip", limit=3, cursor=page.next_cursor)
    assert sorted(c.id for c in page.items + rest.items) == sorted(tagged)
    assert [c.id for c in repo.get_many("ws1", [tagged[2], "missing", tagged[0], tagged[2]])] == [tagged[2], tagged[0]]
    assert repo.get_many("ws2", tagged) == []


def test_search_by_name_and_phone_prefix_through_the_word_items(repo: DynamoContactRepository) -> None:
    budi = repo.create("ws1", NewContact(phone="+6281911111111", name="Budi"))
    bunga = repo.create("ws1", NewContact(phone="+6285722222222", name="bunga"))
    repo.create("ws1", NewContact(phone="+6281933333333", name="Citra"))
    repo.create("ws2", NewContact(phone="+6281944444444", name="Bu Other"))

    assert [c.id for c in _search(repo, "ws1", "bu").items] == [budi.id, bunga.id]
    assert [c.name for c in _search(repo, "ws1", "62819").items] == ["Budi", "Citra"]
    assert [c.id for c in _search(repo, "ws1", "62857").items] == [bunga.id]
    page = _search(repo, "ws1", "bu", limit=1)
    assert [c.id for c in page.items] == [budi.id]
    assert [c.id for c in _search(repo, "ws1", "bu", limit=1, cursor=page.next_cursor).items] == [bunga.id]


def test_expired_contacts_are_never_returned(repo: DynamoContactRepository) -> None:
    """Account data gets a TTL at workspace closure; once past it, nothing reads it back."""
    clock.set_clock(lambda: T0)
    c = repo.create("ws1", NewContact(phone="+6281800000000", name="Gone", tags=["t"]))
    live = repo.create("ws1", NewContact(phone="+6281800000001", name="Gonzo"))
    for item in [
        m.ContactModel.get(*(m.ws_pk("ws1"), f"CONTACT#{c.id}")),
        m.ContactUniqueModel.get(m.contact_unique_pk("ws1", "phone", "+6281800000000"), "UNIQ"),
    ]:
        item.update(actions=[type(item).expires_at.set(int((T0 + timedelta(days=1)).timestamp()))])

    clock.set_clock(lambda: T0 + timedelta(days=2))
    assert repo.get("ws1", c.id) is None
    assert repo.find_by_phone("ws1", "+6281800000000") is None
    assert [x.id for x in repo.list_contacts("ws1").items] == [live.id]
    assert [x.id for x in _search(repo, "ws1", "gon").items] == [live.id]
    assert [x.id for x in _search(repo, "ws1", "62818").items] == [live.id]
    assert repo.list_by_tag("ws1", "t").items == []
    assert [x.id for x in repo.iter_contacts("ws1")] == [live.id]
    # The expired marker no longer blocks the phone.
    assert repo.create("ws1", NewContact(phone="+6281800000000")).id != c.id


def test_a_page_that_lost_items_to_expiry_is_topped_up(repo: DynamoContactRepository) -> None:
    clock.set_clock(lambda: T0)
    ids = [repo.create("ws1", NewContact(name=f"n{i}")).id for i in range(6)]
    for cid in ids[:3]:
        item = m.ContactModel.get(m.ws_pk("ws1"), f"CONTACT#{cid}")
        item.update(actions=[m.ContactModel.expires_at.set(int((T0 + timedelta(hours=1)).timestamp()))])
    clock.set_clock(lambda: T0 + timedelta(days=1))
    page = repo.list_contacts("ws1", limit=2)
    assert [c.id for c in page.items] == ids[3:5]


def test_two_contacts_racing_for_one_new_phone_exactly_one_gets_it(repo: DynamoContactRepository) -> None:
    a = repo.create("ws1", NewContact(phone="+6281200000001"))
    b = repo.create("ws1", NewContact(phone="+6281200000002"))
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def move(contact_id: str) -> None:
        barrier.wait()
        try:
            repo.update("ws1", contact_id, ContactChanges(phone="+6281200000009"))
            outcomes[contact_id] = "moved"
        except DuplicateContact as dup:
            outcomes[contact_id] = f"duplicate-of:{dup.extra['existing_id']}"

    threads = [threading.Thread(target=move, args=(cid,)) for cid in (a.id, b.id)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    winner = next(cid for cid, outcome in outcomes.items() if outcome == "moved")
    loser = a.id if winner == b.id else b.id
    assert outcomes[loser] == f"duplicate-of:{winner}"
    holder = repo.find_by_phone("ws1", "+6281200000009")
    assert holder is not None
    assert holder.id == winner
    kept = repo.get("ws1", loser)
    assert kept is not None
    assert repo.find_by_phone("ws1", kept.phone or "") == kept  # the loser kept its phone and marker


def test_update_never_resurrects_a_deleted_contact(repo: DynamoContactRepository) -> None:
    c = repo.create("ws1", NewContact(phone="+6281200000003"))
    repo.delete("ws1", c.id)
    with pytest.raises(NotFound):
        repo.update("ws1", c.id, ContactChanges(name="ghost"))
    with pytest.raises(NotFound):
        repo.set_consent("ws1", c.id, ConsentEvent(status="opted_out", at=T0))
    assert repo.get("ws1", c.id) is None
