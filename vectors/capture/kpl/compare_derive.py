#!/usr/bin/env python3
"""Compare vectors/captured/kpl/*.json (real KPL) with vectors/derive/derive.py's encode(). Read-only."""
import base64, glob, json, os, sys
sys.dont_write_bytecode = True
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
sys.path.insert(0, os.path.join(ROOT, "vectors/derive"))
import derive
bad = 0
for p in sorted(glob.glob(os.path.join(ROOT, "vectors/captured/kpl/*.json"))):
    v = json.load(open(p)); c = v["input"]["config"]
    recs = [(r["partition_key"], r.get("explicit_hash_key"), base64.b64decode(r["data"])) for r in v["input"]["records"]]
    out = derive.encode(recs, c["max_size"], c["max_count"], c["max_record_size"])
    ok = [(o["partition_key"], o["explicit_hash_key"], base64.b64encode(o["data"]).decode(), o["user_records"]) for o in out] == \
         [(k["partition_key"], k.get("explicit_hash_key"), k["data"], k["user_records"]) for k in v["expected"]["kinesis_records"]]
    bad += not ok
    print(os.path.basename(p), "matches derive.encode" if ok else "DIFFERS from derive.encode")
sys.exit(1 if bad else 0)
