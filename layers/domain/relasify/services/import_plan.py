"""Planning a batch of an import of contacts: its rows merged, in file order, into drafts of the
contacts they create or change, and each row's outcome (services/imports.py writes them).

Rows are matched to contacts by phone: a new phone creates a contact ("created"), a known phone is
merged into its contact ("updated", or "skipped" when the row changes nothing). A merge sets the
name and email when given, adds tags, sets attributes, and applies an opt-out; an opt-in from a file
only applies to a contact whose consent is unknown (a file never overrides a recorded opt-out).
Duplicates within the file are handled the same way (the first creates, later ones merge), so no
per-file state grows with the file. Bad rows are "failed" with their row number, column and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from relasify.data.ids import new_id
from relasify.data.import_contacts import ContactMerge, NewImportedContact
from relasify.data.imports import Counts, RowError
from relasify.data.records import ConsentEvent, Contact
from relasify.schemas.contacts import MAX_ATTRIBUTES, MAX_TAGS
from relasify.services.import_rows import ParsedRow


@dataclass
class Draft:
    """A contact as it will be after the rows of this batch (merged in file order)."""

    contact_id: str
    phone: str
    is_new: bool
    expected_updated_at: datetime | None
    name: str | None
    email: str | None
    tags: list[str]
    attributes: dict[str, Any]
    consent_status: str
    added_tags: list[str] = field(default_factory=list)
    name_changed: bool = False
    email_changed: bool = False
    attributes_changed: bool = False
    consent: ConsentEvent | None = None  # the event this batch appends

    @classmethod
    def of(cls, contact: Contact) -> Draft:
        return cls(
            contact_id=contact.id,
            phone=contact.phone or "",
            is_new=False,
            expected_updated_at=contact.updated_at,
            name=contact.name,
            email=contact.email,
            tags=list(contact.tags),
            attributes=dict(contact.attributes),
            consent_status=contact.consent.status,
        )

    @property
    def changed(self) -> bool:
        return (
            self.name_changed
            or self.email_changed
            or bool(self.added_tags)
            or self.attributes_changed
            or (self.consent is not None)
        )


def merge(draft: Draft, row: ParsedRow) -> bool | RowError:
    """Apply a row to a draft; whether it changed anything, or why it cannot be applied."""
    new_tags = [t for t in row.tags if t not in draft.tags]
    if len(draft.tags) + len(new_tags) > MAX_TAGS:
        return RowError(row=row.row, column="tags", reason=f"the contact would have more than {MAX_TAGS} tags")
    attribute_changes = {k: v for k, v in row.attributes.items() if draft.attributes.get(k) != v}
    if len(set(draft.attributes) | set(attribute_changes)) > MAX_ATTRIBUTES:
        return RowError(
            row=row.row, column=None, reason=f"the contact would have more than {MAX_ATTRIBUTES} attributes"
        )
    changed = False
    if row.name is not None and row.name != draft.name:
        draft.name, draft.name_changed, changed = row.name, True, True
    if row.email is not None and row.email != draft.email:
        draft.email, draft.email_changed, changed = row.email, True, True
    if new_tags:
        draft.tags += new_tags
        draft.added_tags += new_tags
        changed = True
    if attribute_changes:
        draft.attributes.update(attribute_changes)
        draft.attributes_changed, changed = True, True
    if row.consent is not None:
        opt_out = row.consent.status == "opted_out" and draft.consent_status != "opted_out"
        opt_in = row.consent.status == "opted_in" and draft.consent_status == "unknown"
        if opt_out or opt_in:
            draft.consent = row.consent
            draft.consent_status = row.consent.status
            changed = True
    return changed


Outcome = Literal["created", "updated", "skipped", "failed"]


def plan(
    rows: list[ParsedRow | RowError], existing: dict[str, Contact], orphans: dict[str, str] | None = None
) -> tuple[dict[str, Draft], dict[int, Outcome], list[RowError]]:
    """Drafts by phone, each row's outcome, and the row errors, merging rows in file order.
    `orphans` are phones claimed by an earlier, interrupted run: their contact is created under the
    claimed id."""
    orphans = orphans or {}
    drafts: dict[str, Draft] = {}
    outcomes: dict[int, Outcome] = {}
    errors: list[RowError] = []
    for row in rows:
        if isinstance(row, RowError):
            outcomes[row.row] = "failed"
            errors.append(row)
            continue
        draft = drafts.get(row.phone)
        if draft is None and row.phone in existing:
            draft = drafts[row.phone] = Draft.of(existing[row.phone])
        if draft is None:
            draft = Draft(orphans.get(row.phone) or new_id(), row.phone, True, None, None, None, [], {}, "unknown")
            result = merge(draft, row)
            if isinstance(result, RowError):
                outcomes[row.row] = "failed"
                errors.append(result)
                continue
            drafts[row.phone] = draft
            outcomes[row.row] = "created"
            continue
        result = merge(draft, row)
        if isinstance(result, RowError):
            outcomes[row.row] = "failed"
            errors.append(result)
        else:
            outcomes[row.row] = "updated" if result else "skipped"
    return drafts, outcomes, errors


def contact_writes(drafts: dict[str, Draft]) -> tuple[list[NewImportedContact], list[ContactMerge]]:
    creates: list[NewImportedContact] = []
    merges: list[ContactMerge] = []
    for d in drafts.values():
        if d.is_new:
            creates.append(
                NewImportedContact(
                    contact_id=d.contact_id,
                    phone=d.phone,
                    name=d.name,
                    email=d.email,
                    tags=d.tags,
                    attributes=d.attributes,
                    consent=d.consent,
                )
            )
        elif d.changed:
            merges.append(
                ContactMerge(
                    contact_id=d.contact_id,
                    phone=d.phone,
                    expected_updated_at=d.expected_updated_at,
                    name=d.name if d.name_changed else None,
                    email=d.email if d.email_changed else None,
                    tags=d.tags if d.added_tags else None,
                    added_tags=d.added_tags,
                    attributes=d.attributes if d.attributes_changed else None,
                    consent=d.consent,
                )
            )
    return creates, merges


def tally(outcomes: dict[int, Outcome]) -> Counts:
    values = list(outcomes.values())
    return Counts(
        created=values.count("created"),
        updated=values.count("updated"),
        skipped=values.count("skipped"),
        failed=values.count("failed"),
    )
