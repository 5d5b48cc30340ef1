"""A moto server alone, in its own process: `python -m bench.moto_process PORT`.

The local stack's server (`relasify_local.aws.MotoServer`: DynamoDB requests atomic, transactions
with an item-level undo log, table Queries over one partition, update expressions parsed once per
distinct string, attribute values copied into responses, backends found once per host), without a
log line per request, and with short collector pauses (`relasify_local.gc_pauses`). It runs until
its stdin closes or it is terminated, so a benchmark that dies does not leave it behind.
"""

from __future__ import annotations

import logging
import sys

from relasify_local.aws import MotoServer
from relasify_local.gc_pauses import freeze_long_lived_objects


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no log line per request
    freeze_long_lived_objects()  # full collections of moto's growing heap stalled requests for 0.3 s
    server = MotoServer("127.0.0.1", int(sys.argv[1]))
    server.start()
    try:
        sys.stdin.read()  # returns when the parent closes the pipe or exits
    finally:
        server.stop()


if __name__ == "__main__":
    main()
