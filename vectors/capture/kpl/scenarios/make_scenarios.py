#!/usr/bin/env python3
"""Writes the scenario inputs (user records only; no expected output) for capture.sh."""
import base64, json, os
HERE = os.path.dirname(os.path.abspath(__file__))
b = lambda x: base64.b64encode(x).decode()
def w(name, desc, recs, cfg=None):
    d = {"name": name, "description": desc, "config": cfg or {}, "records": recs}
    with open(os.path.join(HERE, name + ".json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
def r(pk, data, ehk=None):
    d = {"partition_key": pk, "data": b(data)}
    if ehk is not None: d["explicit_hash_key"] = ehk
    return d

w("worked-example", "format.md 2 worked example: (a, x), (b, ehk 123, yz), (a, empty)",
  [r("a", b"x"), r("b", b"yz", "123"), r("a", b"")])
w("lone-record-explicit-hash-key", "one user record with an explicit hash key goes out raw",
  [r("lone", b"payload", "123456789012345678901234567890")])
w("lone-record-no-explicit-hash-key", "one user record without an explicit hash key goes out raw (ehk from MD5 of the key)",
  [r("hello", b"world")])
w("explicit-hash-key-leading-zeros", "ehk table dedup by canonical value: 000123 and 123; first record's ehk is the outer one",
  [r("p", b"1", "000123"), r("q", b"2", "123"), r("p", b"3"), r("r", b"4", "0")])
w("repeated-keys", "partition-key table deduplicated in first-use order",
  [r(k, d.encode()) for k, d in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5"), ("a", "6"), ("c", "")]])
w("unicode-keys", "non-ASCII partition keys (2-, 3- and 4-byte UTF-8)",
  [r("é", b"e-acute"), r("日本語", b"cjk"), r("😀", b"emoji"), r("a", b"ascii"), r("é", b"again")])
w("binary-and-empty-data", "binary payloads (all byte values, NULs, 0xFF run) and empty data",
  [r("bin", bytes(range(256))), r("bin", b""), r("nul", b"\x00"), r("ff", b"\xff" * 300), r("bin", b"")])
w("split-at-4096", "120 small records with AggregationMaxSize 4096 split into several aggregates",
  [r("k%d" % (i % 7), bytes([(i * 7 + j) & 0xFF for j in range(90 + i % 13)]),
     ("%d" % (i * 1000003) if i % 10 == 3 else None)) for i in range(120)],
  {"max_size": 4096})
