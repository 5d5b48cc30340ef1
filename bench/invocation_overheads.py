"""What AWS adds to each Lambda invocation beyond the handler's own requests and log lines, as the
cost model prices it: Lambda's START/END/REPORT lines (in the function's log format), the fields and
metadata CloudWatch Logs counts with every line, and the share of invocations X-Ray's sampling traces.
"""

from __future__ import annotations

import math

from bench.deployment import FunctionConfig

# --- log lines the handlers do not write themselves ---------------------------------------------
# CloudWatch Logs counts 26 bytes of metadata with each event (PutLogEvents' size rule, taken as the
# billed size too: the higher reading).
LOG_EVENT_OVERHEAD_BYTES = 26
# Powertools adds the invocation's X-Ray trace id to every line in Lambda (the bench has none).
TRACE_ID_FIELD_BYTES = len(',"xray_trace_id":"1-6752a3f1-3d5c8e0a7b9f1e2d4c6a8b0e"')
_REQUEST_ID = "0b2f4e7a-6b1d-4c53-9a3e-2f8d5c1e7a90"
_TIME = "2026-12-06T01:24:04.123Z"
_TRACE = "Root=1-6752a3f1-3d5c8e0a7b9f1e2d4c6a8b0e;Parent=5e1b4151a5c6c58f;Sampled=1"


def platform_lines(config: FunctionConfig, billed_ms: float, traced: bool) -> list[str]:
    """Lambda's own lines per invocation (START, END, REPORT) as the function's log format writes them."""
    if config.log_format == "JSON":
        tracing = f',"tracing":{{"type":"X-Amzn-Trace-Id","value":"{_TRACE}"}}' if traced else ""
        return [
            f'{{"time":"{_TIME}","type":"platform.start","record":{{"requestId":"{_REQUEST_ID}","version":"$LATEST"}}}}',
            f'{{"time":"{_TIME}","type":"platform.runtimeDone","record":{{"requestId":"{_REQUEST_ID}",'
            f'"status":"success","metrics":{{"durationMs":{billed_ms:.3f},"producedBytes":2}}}}}}',
            f'{{"time":"{_TIME}","type":"platform.report","record":{{"requestId":"{_REQUEST_ID}","metrics":'
            f'{{"durationMs":{billed_ms:.3f},"billedDurationMs":{math.ceil(billed_ms)},'
            f'"memorySizeMB":{config.memory_mb},"maxMemoryUsedMB":98}}{tracing},"status":"success"}}}}',
        ]
    xray = "XRAY TraceId: 1-6752a3f1-3d5c8e0a7b9f1e2d4c6a8b0e\tSegmentId: 5e1b4151a5c6c58f\tSampled: true\t"
    return [
        f"START RequestId: {_REQUEST_ID} Version: $LATEST",
        f"END RequestId: {_REQUEST_ID}",
        f"REPORT RequestId: {_REQUEST_ID}\tDuration: {billed_ms:.2f} ms\tBilled Duration: {math.ceil(billed_ms)} ms"
        f"\tMemory Size: {config.memory_mb} MB\tMax Memory Used: 98 MB\t" + (xray if traced else ""),
    ]


# --- X-Ray sampling -------------------------------------------------------------------------------
# Lambda's fixed sampling rule for Active tracing: the first request each second, then 5% of the rest
# (not configurable for Lambda). The reservoir makes the traced share depend on the traffic, so the
# model prices a month of MONTHLY_LIFECYCLES spread evenly.
XRAY_RESERVOIR_PER_SECOND = 1.0
XRAY_FIXED_RATE = 0.05
MONTHLY_LIFECYCLES = 1_000_000
SECONDS_PER_MONTH = 30 * 24 * 3600


def traced_share(config: FunctionConfig, invocations_per_lifecycle: float) -> float:
    """Share of a function's invocations that record a trace. PassThrough traces only a request that
    arrives with a sampled trace header: Meta's POSTs and the SQS messages of an untraced receiver
    carry none, so the hot path records nothing."""
    if config.tracing != "Active" or invocations_per_lifecycle <= 0:
        return 0.0
    rate = invocations_per_lifecycle * MONTHLY_LIFECYCLES / SECONDS_PER_MONTH
    sampled = min(rate, XRAY_RESERVOIR_PER_SECOND) + XRAY_FIXED_RATE * max(0.0, rate - XRAY_RESERVOIR_PER_SECOND)
    return sampled / rate
