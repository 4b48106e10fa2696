#!/usr/bin/env python3
"""Turn one capture run (.tools/kpl-capture-run) into encode vectors (FORMAT.md, kpl-vector/1).

Mechanical only: every expected field comes from what the real KPL sent (the PutRecords
requests logged by proxy.js: partition key, explicit hash key, data) cross-checked against
what kinesis-mock stored (GetRecords: data, partition key, sequence number). user_records is
counted from the captured aggregate's protobuf (records = top-level field 3)."""
import base64, datetime, hashlib, json, os, sys

MAGIC = b"\xf3\x89\x9a\xc2"

def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1; v |= (c & 0x7F) << s; s += 7
        if c < 0x80: return v, i

def count_user_records(data):
    if len(data) <= 20 or data[:4] != MAGIC: return 1
    pb, md5 = data[4:-16], data[-16:]
    if hashlib.md5(pb).digest() != md5: return 1
    i = n = 0
    while i < len(pb):
        tag, i = varint(pb, i)
        assert tag & 7 == 2, "unexpected wire type in captured aggregate"
        ln, i = varint(pb, i); i += ln
        n += (tag >> 3) == 3
    return n

def main():
    run, outdir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    here = os.path.dirname(os.path.abspath(__file__))
    kpl_version = os.environ.get("KPL_VERSION", "0.15.12")
    mock_version = os.environ.get("MOCK_VERSION", "0.6.2")
    log = [json.loads(l) for l in open(os.path.join(run, "proxy.jsonl")) if l.strip()]
    os.makedirs(outdir, exist_ok=True)
    for name in names:
        sc = json.load(open(os.path.join(here, "scenarios", name + ".json")))
        raw = json.load(open(os.path.join(run, name + ".raw.json")))
        stream, warm = raw["stream"], raw["warmup_sequence_number"]
        assert all(u["successful"] for u in raw["user_record_results"]), "KPL reported a failed user record"
        # what KPL put, keyed by sequence number (from kinesis-mock's responses)
        put = {}
        for e in log:
            tgt = e.get("target") or ""
            if not tgt.endswith((".PutRecords", ".PutRecord")): continue
            req = json.loads(base64.b64decode(e["body_b64"]))
            if req.get("StreamName") != stream: continue
            assert e["status"] == 200, f"{name}: PutRecords HTTP {e['status']}"
            resp = json.loads(base64.b64decode(e["resp_b64"]))
            reqs = req["Records"] if tgt.endswith(".PutRecords") else [req]
            resps = resp["Records"] if tgt.endswith(".PutRecords") else [resp]
            for rq, rs in zip(reqs, resps):
                if rs.get("SequenceNumber"): put[rs["SequenceNumber"]] = rq
        # KPL aggregates only once its shard map is ready (format.md 2.7): require a successful
        # ListShards for this stream logged before the first PutRecords carrying scenario records.
        seen_map = False
        for e in log:
            tgt = e.get("target") or ""
            if tgt.endswith(".ListShards") and e.get("status") == 200 and stream in base64.b64decode(e["body_b64"]).decode("utf-8", "replace"):
                seen_map = True
            if tgt.endswith(".PutRecords") and stream in base64.b64decode(e["body_b64"]).decode("utf-8", "replace") \
                    and "__warmup__" not in base64.b64decode(e["body_b64"]).decode("utf-8", "replace"):
                assert seen_map, f"{name}: scenario records were put before KPL had a shard map"
                break
        out = []
        for kr in raw["kinesis_records"]:
            if kr["sequence_number"] == warm: continue
            rq = put[kr["sequence_number"]]
            assert rq["Data"] == kr["data"] and rq["PartitionKey"] == kr["partition_key"], f"{name}: stored != put"
            rec = {"partition_key": kr["partition_key"], "data": kr["data"],
                   "user_records": count_user_records(base64.b64decode(kr["data"]))}
            if rq.get("ExplicitHashKey") is not None: rec["explicit_hash_key"] = rq["ExplicitHashKey"]
            out.append(rec)
        assert sum(r["user_records"] for r in out) == len(sc["records"]), f"{name}: user record count mismatch"
        cfg = {"max_size": 51200, "max_count": 4294967295, "max_record_size": 1048576}
        cfg.update(sc.get("config", {}))
        vec = {
            "format": "kpl-vector/1", "kind": "encode",
            "description": sc["description"] + " (captured from the real Java KPL; user records added one at a time, each once KPL had taken in the previous one)",
            "rules": ["format.md 2"],
            "provenance": {"source": "captured",
                           "method": f"vectors/capture/kpl/capture.sh: real Java KPL {kpl_version} through kinesis-mock {mock_version}",
                           "date": datetime.date.today().isoformat()},
            "input": {"config": cfg, "records": sc["records"]},
            "expected": {"kinesis_records": out},
        }
        p = os.path.join(outdir, name + ".json")
        with open(p, "w", encoding="utf-8") as f:
            f.write(json.dumps(vec, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"wrote {p}: {len(out)} Kinesis record(s)")

if __name__ == "__main__":
    main()
