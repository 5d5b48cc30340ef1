"""What the inbox and real-time add to each webhook event, from the items each one writes.

Counted in the same run as `bench.request_counts` (its scenarios, in a fresh in-process stack):
every DynamoDB item a request puts, updates or deletes, by the kind its key names
(`bench.capacity.item_kind`), with the write units of each. The inbox's own writes are the
conversation items (`CONV`); real-time's are the change-feed events (`CHG`), plus what putting an
event beside a status costs the message write (a transaction bills every item twice).

Targets (issue 17): at most one more item written per inbound message, none per status that does
not change the conversation's preview (a status of any message but the last). Real-time (issue
18) adds one event per change by design; its cost per 1M lifecycles is in the second table.
"""

from __future__ import annotations

from bench.cost_model import PRICES, PRICES_AS_OF
from bench.report import Section
from bench.request_counts import Operation, by_name, measure

ROWS = [  # (operation in request_counts, most conversation items it may write, why)
    ("status webhook: sent", 1, "a status of the conversation's last message: its ticks are the preview"),
    ("status webhook: delivered", 1, "as above"),
    ("status webhook: read", 1, "as above"),
    ("status webhook: delivered, not the last message", 0, "the preview does not change"),
    ("inbound message: known contact", 1, "the conversation: preview, unread count, reopening"),
    ("inbound message: new contact", 1, "as above (created)"),
]
# One lifecycle as in bench.cost_model: a send, its three statuses, one inbound message.
LIFECYCLE = [
    "send (API, template, known contact)",
    "status webhook: sent",
    "status webhook: delivered",
    "status webhook: read",
    "inbound message: known contact",
]
# Statuses that were one UpdateItem of the message before real-time put an event beside them (the
# `sent` status carries its billing record in a transaction anyway).
STATUS_UPDATES_NOW_IN_A_TRANSACTION = ["status webhook: delivered", "status webhook: read"]
# API Gateway WebSocket API, ap-southeast-3 list prices as remembered (same caveat as bench.cost_model):
# messages are metered in 32 KB increments; connection minutes.
WEBSOCKET_MESSAGE = 1.14 / 1_000_000
WEBSOCKET_CONNECTION_MINUTE = 0.285 / 1_000_000
AGENTS_CONNECTED = 5  # each event is pushed to every connected member of the workspace


def _written(op: Operation, kind: str) -> tuple[int, float]:
    assert op.usage is not None
    return op.usage.writes.get(kind, 0), float(op.usage.write_units.get(kind, 0))


def _transactions(op: Operation) -> int:
    assert op.usage is not None
    return op.usage.requests.get("dynamodb:TransactWriteItems", 0)


def _total(op: Operation) -> tuple[int, float]:
    assert op.usage is not None
    return sum(op.usage.writes.values()), float(sum(op.usage.write_units.values()))


def run() -> Section:
    ops = by_name(measure())
    rows: list[list[str]] = []
    met = True
    for name, allowed, why in ROWS:
        op = ops[name]
        if op.usage is None:
            rows.append([name, "-", "-", "-", "-", f"not measured ({op.unavailable})"])
            met = False
            continue
        conv_items, conv_wcu = _written(op, "CONV")
        chg_items, chg_wcu = _written(op, "CHG")
        items, wcu = _total(op)
        ok = conv_items <= allowed
        met &= ok
        rows.append(
            [
                name,
                f"{items} ({wcu:g})",
                f"{conv_items} ({conv_wcu:g})",
                f"{chg_items} ({chg_wcu:g})",
                op.usage.writes_breakdown(),
                f"<= {allowed} conversation write ({why}): {'met' if ok else 'NOT met'}",
            ]
        )

    # Real-time's added cost per lifecycle: the events' own units, the message write of the
    # statuses that became transactions (billed twice now: half of it is the surcharge), and the
    # message read each status makes first to name the event's conversation (0.5 RRU).
    events = sum(_written(ops[n], "CHG")[0] for n in LIFECYCLE)
    event_wru = sum(_written(ops[n], "CHG")[1] for n in LIFECYCLE)
    # Only where the status still went through a transaction (and the message read before it): the
    # routed path (issue 19) writes the event beside the message update, outside a transaction.
    in_transaction = [n for n in STATUS_UPDATES_NOW_IN_A_TRANSACTION if _transactions(ops[n])]
    surcharge_wru = sum(_written(ops[n], "MSG")[1] / 2 for n in in_transaction)
    status_reads = 0.5 * sum(1 for n in LIFECYCLE if n.startswith("status webhook") and _transactions(ops[n]))
    dynamodb = (event_wru + surcharge_wru) * PRICES["dynamodb_write_request_unit"] + status_reads * PRICES[
        "dynamodb_read_request_unit"
    ]
    # The publisher: one Lambda invocation per stream batch (worst case one event each; 128 MB, ~20 ms),
    # stream reads by Lambda are free; then one management API POST per connected agent per event.
    publisher = events * (PRICES["lambda_request"] + 0.128 * 0.02 * PRICES["lambda_arm64_gb_second"])
    pushes = events * AGENTS_CONNECTED * WEBSOCKET_MESSAGE
    per_million = 1_000_000
    cost_rows = [
        [
            "change-feed events written",
            f"{events}",
            f"{event_wru:g} WRU",
            f"{event_wru * PRICES['dynamodb_write_request_unit'] * per_million:.2f}",
        ],
        [
            "message write of delivered/read statuses in a transaction (x2)",
            f"{len(in_transaction)}",
            f"{surcharge_wru:g} WRU",
            f"{surcharge_wru * PRICES['dynamodb_write_request_unit'] * per_million:.2f}",
        ],
        [
            "message read before each status",
            f"{int(status_reads / 0.5)}",
            f"{status_reads:g} RRU",
            f"{status_reads * PRICES['dynamodb_read_request_unit'] * per_million:.2f}",
        ],
        [
            "publisher invocations (stream batches of one)",
            f"{events}",
            "128 MB x 20 ms",
            f"{publisher * per_million:.2f}",
        ],
        [
            f"WebSocket pushes ({AGENTS_CONNECTED} agents connected)",
            f"{events * AGENTS_CONNECTED}",
            "messages",
            f"{pushes * per_million:.2f}",
        ],
        ["**total added by real-time**", "", "", f"**{(dynamodb + publisher + pushes) * per_million:.2f}**"],
    ]
    rows.append(["", "", "", "", "", ""])
    rows.append(["**real-time per 1M lifecycles**", "count per lifecycle", "units", "USD per 1M lifecycles", "", ""])
    rows.extend([*row, "", ""] for row in cost_rows)
    return Section(
        title="Inbox and real-time writes per webhook event",
        command="python -m bench inbox_writes",
        headers=[
            "operation",
            "items written (WCU)",
            "conversation items (WCU)",
            "change-feed events (WCU)",
            "items written by kind (WCU)",
            "target",
        ],
        rows=rows,
        notes=[
            "counted in-process against moto in request_counts' scenarios: every item each DynamoDB request writes, "
            "by the kind its key names (MSG message, CONV conversation, CHG change-feed event, WAMID pointer, "
            "BILLING, CONTACT, UNIQ, USAGE usage log, BUDGET request budget); WCU by DynamoDB's rules (x2 in "
            "transactions)",
            "two messages to one customer: statuses of the later one change the preview (its ticks), of the earlier "
            "one not; the inbound message is from the same customer",
            "a lifecycle is bench.cost_model's unit: one API template send, its sent/delivered/read statuses, one "
            "inbound message; real-time's Lambda and WebSocket prices as remembered: "
            f"{PRICES_AS_OF}; WebSocket messages USD {WEBSOCKET_MESSAGE * 1e6:.2f} per million, connection minutes "
            f"USD {WEBSOCKET_CONNECTION_MINUTE * 1e6:.3f} per million (an agent connected 8 h a day: "
            f"USD {480 * 30 * WEBSOCKET_CONNECTION_MINUTE:.4f} a month, not per message)",
        ],
        targets_met=met,
    )
