"""The problem+json media type and `type` URIs, without Powertools: light enough for the API's
`$default` handler, which answers every unmatched request (cold starts there are most of its time)."""

from __future__ import annotations

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://relasify.id/problems/"


def problem_type(slug: str) -> str:
    """The stable `type` URI of a problem; clients match on its last path segment."""
    return PROBLEM_BASE + slug
