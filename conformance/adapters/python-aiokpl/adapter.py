"""kpl conformance adapter (protocol v1) for the PyPI package aiokpl.

encode: aiokpl.Aggregator (its per-shard reducer) fed through aiokpl.ShardMap, whose ListShards
        call is answered in process by a fake client: the request's "shards" when given, else one
        shard over [0, 2^128 - 1]; batches are read the way aiokpl's Sender builds PutRecords
        entries (to_blob, routing_*).
decode: aiokpl.decode_aggregated(bytes), called as is (it raises on anything not aggregated).
No network is used. See README.md.
"""
import base64
import json
import time

import anyio

import aiokpl
from aiokpl import Aggregator, ShardMap, UserRecord, decode_aggregated
from kpl_protocol import b64, serve  # conformance/adapters/python-protocol

UINT128_MAX = (1 << 128) - 1
FOREVER_MS = 1e12  # RecordMaxBufferedTime for the adapter: no deadline flush mid-request








def request_key(rec, name):
    """aiokpl takes str keys; a non-UTF-8 key (only _b64 given) is passed surrogate-escaped."""
    if rec.get(name) is not None:
        return rec[name]
    if rec.get(name + "_b64") is not None:
        return base64.b64decode(rec[name + "_b64"]).decode("utf-8", "surrogateescape")
    return None


def key_fields(name, key):
    try:
        key.encode("utf-8")
        return {name: key}
    except UnicodeEncodeError:
        return {name + "_b64": b64(key.encode("utf-8", "surrogateescape"))}


def fake_list_shards(req):
    """What ListShards answers for a fresh stream with the request's open shards (conformance
    PROTOCOL.md "shards"), or with one shard when the request gives none."""
    shards = req.get("shards") or [{"shard_id": "shardId-000000000000", "starting_hash_key": "0",
                                    "ending_hash_key": str(UINT128_MAX)}]
    answer = {"Shards": [{"ShardId": s["shard_id"],
                          "HashKeyRange": {"StartingHashKey": s["starting_hash_key"],
                                           "EndingHashKey": s["ending_hash_key"]},
                          "SequenceNumberRange": {"StartingSequenceNumber": "0"}}
                         for s in shards]}

    async def list_shards(**_kwargs):
        return answer
    return list_shards


async def encode_async(req):
    limits = req.get("limits") or {}
    kw = {}
    if limits.get("max_size") is not None:
        kw["aggregation_max_size"] = int(limits["max_size"])
    if limits.get("max_count") is not None:
        kw["aggregation_max_count"] = int(limits["max_count"])
    batches = []

    async def on_batch_ready(batch):
        batches.append(batch)

    async with ShardMap("kpl-conformance", fake_list_shards(req)) as shard_map:
        await shard_map.start()
        if shard_map.state is not aiokpl.ShardMapState.READY:
            raise RuntimeError("adapter: fake shard map did not become READY")
        async with Aggregator(shard_map, on_batch_ready=on_batch_ready,
                              record_max_buffered_time_ms=FOREVER_MS, **kw) as agg:
            for rec in req["records"]:
                await agg.put(UserRecord(partition_key=request_key(rec, "partition_key"),
                                         data=base64.b64decode(rec.get("data") or ""),
                                         explicit_hash_key=request_key(rec, "explicit_hash_key")))
            # Drain: each flush() trims once per reducer (like a deadline would); repeat until empty.
            while True:
                before = len(batches)
                await agg.flush()
                if len(batches) == before:
                    break
    out = []
    for b in batches:  # as aiokpl's Sender builds the PutRecords entries
        kr = {"data": b64(b.to_blob()), "explicit_hash_key": b.routing_explicit_hash_key()}
        kr.update(key_fields("partition_key", b.routing_partition_key()))
        out.append(kr)
    return {"ok": True, "kinesis_records": out}


def encode(req):
    return anyio.run(encode_async, req)


def decode(req):
    users = decode_aggregated(base64.b64decode(req["data"]))
    records = []
    for i, u in enumerate(users):
        r = {"explicit_hash_key": u.explicit_hash_key, "data": b64(u.data),
             "sub_sequence_number": i, "aggregated": True}
        r.update(key_fields("partition_key", u.partition_key))
        records.append(r)
    return {"ok": True, "records": records}


def bench(req):
    with open(req["file"]) as f:
        blobs = [base64.b64decode(json.loads(line)["data"]) for line in f if line.strip()]
    iterations = int(req.get("iterations", 1))
    n = errors = 0
    t0 = time.perf_counter()
    for _ in range(iterations):
        for blob in blobs:
            try:
                for _u in decode_aggregated(blob):
                    n += 1
            except ValueError:
                errors += 1
    seconds = time.perf_counter() - t0
    return {"ok": True, "seconds": seconds, "user_records": n, "errors": errors}


def hello(_req):
    return {"ok": True, "name": "aiokpl", "version": aiokpl.__version__, "language": "python",
            "encode": True, "decode": True, "policies": ["native"], "bench": True,
            "shard_layout": True,
            "shard_range": False, "limits": True, "limits_honoured": ["max_size", "max_count"],
            "verify_md5_optional": False}


OPS = {"hello": hello, "decode": decode, "encode": encode, "bench": bench}



if __name__ == "__main__":
    serve(OPS)
