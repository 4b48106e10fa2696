"""kpl conformance adapter (protocol v1) for the PyPI package aws_kinesis_agg.

decode: aws_kinesis_agg.deaggregator.deaggregate_records([lambda-style record])
encode: aws_kinesis_agg.aggregator.RecordAggregator(max_size).add_user_record(...) + clear_and_get()
Reports exactly what the package hands back; see README.md.
"""
import base64
import importlib.metadata
import json
import time

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records
from kpl_protocol import b64, serve  # conformance/adapters/python-protocol








def key_fields(name, key):
    """Outer/inner key as the protocol wants it: *name* or *name*_b64 for non-UTF-8 bytes."""
    if isinstance(key, bytes):
        try:
            return {name: key.decode("utf-8")}
        except UnicodeDecodeError:
            return {name + "_b64": b64(key)}
    return {name: key}


def request_key(rec, name):
    """Key from the request: str, or bytes when only the _b64 form is given (the API takes bytes)."""
    if rec.get(name) is not None:
        return rec[name]
    if rec.get(name + "_b64") is not None:
        return base64.b64decode(rec[name + "_b64"])
    return None


def kinesis_record(data_b64, partition_key, seq="49590338271490256608559692538361571095921575989136588898"):
    # The shape Lambda hands to the function (the package's primary input format).
    return {"eventSource": "aws:kinesis",
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key,
                        "sequenceNumber": seq, "data": data_b64,
                        "approximateArrivalTimestamp": 1545084650.987}}


def user_record_json(position, u):
    k = u["kinesis"]
    aggregated = bool(k.get("aggregated", False))  # absent on a passed-through record
    data = k["data"]  # base64 (bytes for user records, the input str for a passthrough)
    if isinstance(data, bytes):
        data = data.decode("ascii")
    sub = k.get("subSequenceNumber")
    ehk = k.get("explicitHashKey")
    if isinstance(ehk, bytes):  # the package hands out raw bytes for a key that is not UTF-8
        ehk = ehk.decode("utf-8", "replace")
    out = {"data": data, "explicit_hash_key": ehk,
           "sub_sequence_number": position if sub is None else sub,
           "aggregated": aggregated}
    out.update(key_fields("partition_key", k.get("partitionKey")))
    return out


def decode(req):
    pk = req.get("partition_key")
    if pk is None and req.get("partition_key_b64") is not None:
        pk = base64.b64decode(req["partition_key_b64"]).decode("utf-8", "surrogateescape")
    users = deaggregate_records([kinesis_record(req["data"], pk)])
    records = [user_record_json(i, u) for i, u in enumerate(users)]
    for r in records:  # a passthrough hands back our (possibly surrogate-escaped) key
        pkv = r.get("partition_key")
        if isinstance(pkv, str):
            try:
                pkv.encode("utf-8")
            except UnicodeEncodeError:
                del r["partition_key"]
                r["partition_key_b64"] = b64(pkv.encode("utf-8", "surrogateescape"))
    return {"ok": True, "records": records}


def encode(req):
    limits = req.get("limits") or {}
    max_size = limits.get("max_size")
    agg = RecordAggregator() if max_size is None else RecordAggregator(max_size=max_size)
    outs = []
    for rec in req["records"]:
        full = agg.add_user_record(request_key(rec, "partition_key"),
                                   base64.b64decode(rec.get("data") or ""),
                                   request_key(rec, "explicit_hash_key"))
        if full is not None:
            outs.append(full)
    last = agg.clear_and_get()
    if last is not None:
        outs.append(last)
    krs = []
    for o in outs:
        pk, ehk, data = o.get_contents()
        kr = {"data": b64(data)}
        kr.update(key_fields("partition_key", pk))
        if isinstance(ehk, bytes):
            ehk = ehk.decode("utf-8", "replace")
        kr["explicit_hash_key"] = ehk
        krs.append(kr)
    return {"ok": True, "kinesis_records": krs}


def bench(req):
    with open(req["file"]) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    inputs = [kinesis_record(r["data"], r.get("partition_key", "a")) for r in recs]
    iterations = int(req.get("iterations", 1))
    n = 0
    t0 = time.perf_counter()
    for _ in range(iterations):
        for kr in inputs:
            for u in deaggregate_records([kr]):
                n += 1
    seconds = time.perf_counter() - t0
    return {"ok": True, "seconds": seconds, "user_records": n}


def hello(_req):
    return {"ok": True, "name": "aws_kinesis_agg",
            "version": importlib.metadata.version("aws_kinesis_agg"), "language": "python",
            "encode": True, "decode": True, "policies": ["native"], "bench": True,
            "shard_range": False, "limits": True, "limits_honoured": ["max_size"],
            "verify_md5_optional": False,
            "deps": {"six": importlib.metadata.version("six"),
                     "protobuf": importlib.metadata.version("protobuf")}}


OPS = {"hello": hello, "decode": decode, "encode": encode, "bench": bench}



if __name__ == "__main__":
    serve(OPS)
