"""Shared fixtures. Tiers: tests/unit (no AWS, no network), tests/integration (moto in-process),
tests/infrastructure (template assertions), tests/e2e (HTTP against the local stack)."""

from __future__ import annotations

import os

# Safe defaults so nothing can ever reach a real AWS account from the test suite.
os.environ.setdefault("AWS_DEFAULT_REGION", "ap-southeast-3")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "relasify-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "RelasifyTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
