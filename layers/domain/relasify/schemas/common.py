from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# Ids we issue: prefix + Crockford base32; anything else cannot name one of our items.
IdStr = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Input(BaseModel):
    """Request bodies: unknown fields are refused so typos do not silently do nothing."""

    # defer_build (here and below): a schema's validator is built on first use, not at import, so a
    # cold start pays only for the routes it serves.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)
