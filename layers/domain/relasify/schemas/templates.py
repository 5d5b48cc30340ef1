"""Template requests (Meta's definition) and views."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from relasify.schemas.common import Input, Output

TemplateCategory = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]


class TemplateCreate(Input):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z_]+$")
    category: TemplateCategory
    components: list[dict[str, Any]] = Field(min_length=1, max_length=10)

    @field_validator("category", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("components")
    @classmethod
    def _component_fields(cls, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Meta validates the rest of a component; these two are read by us (header kind, placeholders).
        for index, component in enumerate(components):
            if not isinstance(component.get("type"), str) or not component["type"]:
                raise ValueError(f"components[{index}].type must be a component type, e.g. BODY")
            if "text" in component and not isinstance(component["text"], str):
                raise ValueError(f"components[{index}].text must be a string")
        return components


class TemplateOut(Output):
    name: str
    language: str
    category: str | None = None
    components: list[dict[str, Any]] = Field(default_factory=list)
    status: str
    meta_template_id: str | None = None
    reason: str | None = None
    quality_score: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class TemplateList(Output):
    items: list[TemplateOut]


class TemplateSyncOut(Output):
    synced: int
    items: list[TemplateOut]


class TemplateDeleted(Output):
    name: str
    deleted: int
