"""Logger and metrics created once and shared by every module (never log personal data)."""

from __future__ import annotations

import logging
import re

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

# API keys (SPEC 5c) are never logged: nothing logs them, and this masks any that a message, an
# extra field or a traceback would carry by mistake.
_API_KEY_TEXT = re.compile(r"rk_[A-Za-z0-9_-]{8,}")


class _KeyMaskingFormatter(LambdaPowertoolsFormatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return _API_KEY_TEXT.sub("rk_[redacted]", line) if "rk_" in line else line


logger = Logger(logger_formatter=_KeyMaskingFormatter())
metrics = Metrics()
