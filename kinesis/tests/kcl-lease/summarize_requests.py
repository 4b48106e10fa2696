#!/usr/bin/env python3
"""Groups the DynamoDB exchanges that log_proxy.py logged by their shape, for LEASES.md.

  summarize_requests.py LOG TABLE > requests.json
  summarize_requests.py --kinesis LOG > kinesis-requests.json
      (Kinesis: the Java SDK speaks CBOR, so only operations, answers and times: per
      operation the count, answers, slowest; every exchange slower than 5 s)

A shape is the operation, the table (TABLE is shown as "<lease table>"), the kind of item
(a shard's lease, or the fixed key of another item; worker ids are shown as "<worker>"), and
every part of the request that is not a value: condition, update, filter and key-condition
expressions with their names, the legacy Expected and AttributeUpdates maps (attribute ->
comparison or action, and the value's type), the attribute names and types of a PutItem item,
ReturnValues, IndexName, ConsistentRead. For each shape: how many were sent, the answers
(status and error type), the clients (first word of the User-Agent), the first and last time (seconds from the first request), and the
first exchange whole as an example (the last one too when it is an error's). Also, per lease
the renewals (an UpdateItem that only sets leaseCounter, and throughputKBps, on the condition
of the old counter) and their intervals.
"""
import json
import re
import sys
from collections import defaultdict

WORKER = re.compile(r"^worker-[a-z0-9]+$")


def vtype(v):
    return next(iter(v)) if isinstance(v, dict) and v else "?"


def key_kind(key):
    if not key:
        return None
    k = key.get("leaseKey", {}).get("S")
    if k is None:
        return {n: vtype(v) for n, v in key.items()}
    if k.startswith("shardId-"):
        return "<shard lease>"
    if WORKER.match(k):
        return "<worker>"
    return k


def expected_shape(exp):
    out = {}
    for name, cond in sorted(exp.items()):
        if "ComparisonOperator" in cond:
            vals = [vtype(v) for v in cond.get("AttributeValueList", [])]
            out[name] = f"{cond['ComparisonOperator']} {' '.join(vals)}".strip()
        elif "Exists" in cond and not cond["Exists"]:
            out[name] = "does not exist"
        else:
            out[name] = f"= {vtype(cond.get('Value'))}" + (" (Exists true)" if cond.get("Exists") else "")
    return out


def updates_shape(upd):
    return {
        name: f"{u.get('Action', 'PUT')} {vtype(u['Value']) if 'Value' in u else ''}".strip()
        for name, u in sorted(upd.items())
    }


def shape(entry, table):
    r = entry["request"] if isinstance(entry["request"], dict) else {}
    sh = {"op": entry["op"]}
    t = r.get("TableName")
    if t is not None:
        sh["table"] = "<lease table>" if t == table else t.replace(table, "<lease table>")
    kind = key_kind(r.get("Key"))
    if entry["op"] == "PutItem" and "Item" in r:
        kind = key_kind({"leaseKey": r["Item"].get("leaseKey", {})})
        sh["item"] = {n: vtype(v) for n, v in sorted(r["Item"].items())}
    if kind is not None:
        sh["key"] = kind
    for k in (
        "IndexName",
        "KeyConditionExpression",
        "FilterExpression",
        "ProjectionExpression",
        "ConditionExpression",
        "UpdateExpression",
        "ExpressionAttributeNames",
        "ReturnValues",
        "ReturnValuesOnConditionCheckFailure",
        "ConsistentRead",
        "Select",
        "Limit",
        "ScanIndexForward",
    ):
        if k in r:
            sh[k] = r[k]
    if "ExpressionAttributeValues" in r:
        sh["ExpressionAttributeValues"] = {n: vtype(v) for n, v in sorted(r["ExpressionAttributeValues"].items())}
    if "Expected" in r:
        sh["Expected"] = expected_shape(r["Expected"])
    if "AttributeUpdates" in r:
        sh["AttributeUpdates"] = updates_shape(r["AttributeUpdates"])
    if entry["op"] in ("CreateTable", "UpdateTable", "UpdateContinuousBackups", "UpdateTimeToLive", "TagResource"):
        sh["request"] = {k: v for k, v in r.items() if k != "TableName"}
    return sh


def answer(entry):
    if entry["status"] == 200:
        return "200"
    resp = entry["response"]
    kind = resp.get("__type", "?").split("#")[-1] if isinstance(resp, dict) else "?"
    return f"{entry['status']} {kind}"


def is_renewal(r):
    """A renewal: leaseCounter (and throughputKBps) PUT, on the condition of the old counter."""
    upd = r.get("AttributeUpdates")
    return (
        upd is not None
        and "leaseCounter" in upd
        and set(upd) <= {"leaseCounter", "throughputKBps"}
        and upd["leaseCounter"].get("Action") == "PUT"
        and "Value" in r.get("Expected", {}).get("leaseCounter", {})
    )


def intervals(ts):
    """Min, median and max of the gaps between renewals, and the gaps over 5 s (a pause:
    no owner, a stopped worker) with when they started."""
    gaps = sorted(b - a for a, b in zip(ts, ts[1:]))
    if not gaps:
        return None
    return {"min": gaps[0], "median": gaps[len(gaps) // 2], "max": gaps[-1],
            "over_5s": sum(g > 5000 for g in gaps)}


def kinesis_summary(entries):
    t0 = entries[0]["ms"] if entries else 0
    ops = {}
    for e in entries:
        o = ops.setdefault(e["op"], {"count": 0, "answers": {}, "max_elapsed_ms": 0})
        o["count"] += 1
        o["answers"][str(e["status"])] = o["answers"].get(str(e["status"]), 0) + 1
        o["max_elapsed_ms"] = max(o["max_elapsed_ms"], e["elapsed_ms"])
    slow = [
        {"op": e["op"], "at_s": round((e["ms"] - t0) / 1000, 1), "elapsed_ms": e["elapsed_ms"], "status": e["status"]}
        for e in entries
        if e["elapsed_ms"] > 5000
    ]
    return {"requests": len(entries), "operations": ops, "slower_than_5s": slow}


def main(argv):
    if len(argv) == 3 and argv[1] == "--kinesis":
        entries = [json.loads(line) for line in open(argv[2], encoding="utf-8")]
        json.dump(kinesis_summary(entries), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    entries = [json.loads(line) for line in open(argv[1], encoding="utf-8")]
    table = argv[2]
    t0 = entries[0]["ms"] if entries else 0
    groups = {}
    renewals = defaultdict(list)
    for e in entries:
        sh = shape(e, table)
        key = json.dumps(sh, sort_keys=True)
        g = groups.setdefault(
            key, {"shape": sh, "count": 0, "answers": {}, "first_s": None, "last_s": None, "example": e}
        )
        g["count"] += 1
        agent = e.get("agent", "?")
        g.setdefault("agents", {})
        g["agents"][agent] = g["agents"].get(agent, 0) + 1
        a = answer(e)
        g["answers"][a] = g["answers"].get(a, 0) + 1
        at = round((e["ms"] - t0) / 1000, 1)
        g["first_s"] = at if g["first_s"] is None else g["first_s"]
        g["last_s"] = at
        if e["status"] != 200 and "error_example" not in g:
            g["error_example"] = e
        r = e["request"] if isinstance(e["request"], dict) else {}
        if e["op"] == "UpdateItem" and is_renewal(r) and e["status"] == 200:
            renewals[r["Key"]["leaseKey"]["S"]].append(e["ms"])
    out = {
        "requests": len(entries),
        "span_s": round((entries[-1]["ms"] - t0) / 1000, 1) if entries else 0,
        "shapes": sorted(groups.values(), key=lambda g: (g["shape"]["op"], g["first_s"])),
        "renewals": [
            {
                "lease": k,
                "count": len(ts),
                "first_s": round((ts[0] - t0) / 1000, 1),
                "last_s": round((ts[-1] - t0) / 1000, 1),
                "mean_interval_ms": round((ts[-1] - ts[0]) / (len(ts) - 1)) if len(ts) > 1 else None,
                "intervals_ms": intervals(ts),
            }
            for k, ts in sorted(renewals.items())
        ],
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
