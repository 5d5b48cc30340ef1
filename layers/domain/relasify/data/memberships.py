"""A member's role and the membership shape the role guard checks.

They live in the data layer so that `relasify.data.identity` can build them without importing
services. Pure stdlib: importing this module loads neither pynamodb nor pydantic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.IntEnum):
    """Ordered so that a higher role includes every permission of a lower one."""

    AGENT = 1
    ADMIN = 2
    OWNER = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        return cls[value.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Membership:
    """The caller's membership as the guard checks it (`relasify.data.records.Membership` is the
    stored record, with the member's e-mail, name and timestamps)."""

    ws: str
    sub: str
    role: Role
