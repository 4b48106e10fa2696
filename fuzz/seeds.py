#!/usr/bin/env python3
"""Writes the fuzz seed corpora from the golden vectors (vectors/corpus) into fuzz/seeds/.

decode_strict: byte 0 = mode (1: the record's data as is, 0: frame the rest), then bytes.
deaggregate_kcl: byte 0 = flags (bit 0: frame the rest, bit 1: apply the range), 32 bytes of
range ends, then bytes. hash_key: explicit hash key texts. roundtrip and sink_core: none
(their input is `Arbitrary`-encoded; libFuzzer finds its way from empty input in seconds).
"""
import base64, hashlib, json, os, pathlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE.parent / "vectors" / "corpus"
OUT = HERE / "seeds"
MAGIC = bytes.fromhex("f3899ac2")
FULL = (0, 2**128 - 1)


def write(target, payload):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(payload).hexdigest()).write_bytes(payload)


def main():
    count = 0
    for path in sorted(CORPUS.rglob("*.json")):
        v = json.loads(path.read_text(encoding="utf-8"))
        inp = v["input"]
        if v["kind"] == "decode":
            data = base64.b64decode(inp["data"])
            write("decode_strict", b"\x01" + data)
            framed = data.startswith(MAGIC) and len(data) > 20
            if framed:
                write("decode_strict", b"\x00" + data[4:-16])
            r = inp.get("shard_range")
            start, end = (int(r["start"]), int(r["end"])) if r else FULL
            ends = start.to_bytes(16, "big") + end.to_bytes(16, "big")
            write("deaggregate_kcl", b"\x02" + ends + data)
            if framed:
                write("deaggregate_kcl", b"\x03" + ends + data[4:-16])
        elif v["kind"] == "explicit_hash_key":
            write("hash_key", inp["text"].encode("utf-8"))
        elif v["kind"] == "hash_key":
            pk = inp.get("partition_key")
            write("hash_key", pk.encode("utf-8") if pk is not None else base64.b64decode(inp["partition_key_b64"]))
        else:
            continue
        count += 1
    print(f"seeds written from {count} vectors into {OUT}")


if __name__ == "__main__":
    main()
