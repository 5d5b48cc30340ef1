"""RetentionSweepFunction: the daily retention sweep (EventBridge Scheduler, 02:00 Asia/Jakarta).
Thin: the sweep stops before this invocation's deadline and the next run resumes from its checkpoint."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger, metrics
    from relasify.services import sweep


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return sweep.run(context.get_remaining_time_in_millis).as_dict()
