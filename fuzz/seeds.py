#!/usr/bin/env python3
"""Writes the fuzz seed corpora from the golden vectors (vectors/corpus) into fuzz/seeds/.

decode_strict: byte 0 = mode (1: the record's data as is, 0: frame the rest), then bytes.
deaggregate_kcl: byte 0 = flags (bit 0: frame the rest, bit 1: apply the range), 32 bytes of
range ends, then bytes. hash_key: explicit hash key texts. roundtrip and sink_core: none
(their input is `Arbitrary`-encoded; libFuzzer finds its way from empty input in seconds).
fluent_bit_chunk: byte 0 = the pattern's length, the record accessor pattern, then a chunk:
the golden 168-byte chunk of shared/docs/fluent-bit.md, and the events and patterns Fluent
Bit itself produced in plugins/fluent-bit/common/tests/fixtures.
"""
import base64, hashlib, json, os, pathlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE.parent / "vectors" / "corpus"
OUT = HERE / "seeds"
MAGIC = bytes.fromhex("f3899ac2")
FLUENT_BIT_FIXTURES = HERE.parent / "plugins" / "fluent-bit" / "common" / "tests" / "fixtures"
# Two events from Fluent Bit 5.1.1's dummy input with metadata (shared/docs/fluent-bit.md).
GOLDEN_CHUNK = bytes.fromhex(
    "9292d7006b082134148a0be181a16da17888a76d657373616765a568656c6c6fa56c6576656ca4696e666f"
    "a16e2aa166cb3fe0000000000000a26f6bc3a46e6f6e65c0a36172729201a161a36f626a81a16ba176"
    "9292d7006b08213418b1156581a16da17888a76d657373616765a568656c6c6fa56c6576656ca4696e666f"
    "a16e2aa166cb3fe0000000000000a26f6bc3a46e6f6e65c0a36172729201a161a36f626a81a16ba176"
)
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
    fluent_bit_seeds()
    serve_seeds()


def serve_seeds():
    """serve_request: byte 0 = mode (bit 0 CBOR, bit 1 PutRecord), then a request body."""
    records = [{"Data": base64.b64encode(b"hello %d" % i).decode(), "PartitionKey": f"k{i}"} for i in range(3)]
    records[1]["ExplicitHashKey"] = "170141183460469231731687303715884105728"
    write("serve_request", b"\x00" + json.dumps({"StreamName": "s", "Records": records}).encode())
    write("serve_request", b"\x02" + json.dumps({"StreamName": "s", **records[0]}).encode())
    # CBOR {"StreamName": "s", "Records": [{"Data": h'00', "PartitionKey": "k"}]}, by hand.
    cbor = (b"\xa2\x6aStreamName\x61s\x67Records\x81\xa2\x64Data\x41\x00"
            b"\x6cPartitionKey\x61k")
    write("serve_request", b"\x01" + cbor)
    print(f"serve_request seeds written into {OUT / 'serve_request'}")


def fluent_bit_chunk(pattern, chunk):
    pattern = pattern.encode("utf-8")[:255]
    write("fluent_bit_chunk", bytes([len(pattern)]) + pattern + chunk)


def fluent_bit_seeds():
    patterns = ["$message", "$obj['k']", "app-$arr[1]-$TAG[0]", "%Y-%m-%dT%H:%M:%S.%3NZ"]
    for pattern in patterns:
        fluent_bit_chunk(pattern, GOLDEN_CHUNK)
    accessor = json.loads((FLUENT_BIT_FIXTURES / "record_accessor.json").read_text(encoding="utf-8"))
    patterns += [case["pattern"] for case in accessor["cases"]]
    kinesis = json.loads((FLUENT_BIT_FIXTURES / "kinesis_streams.json").read_text(encoding="utf-8"))
    for i, case in enumerate(kinesis["cases"]):
        chunk = b"".join(base64.b64decode(e) for e in case["events"])
        fluent_bit_chunk(patterns[i % len(patterns)], chunk)
    for case in accessor["cases"]:
        chunk = b"".join(base64.b64decode(e) for e in case["events"])
        fluent_bit_chunk(case["pattern"], chunk)
    print(f"fluent_bit_chunk seeds written into {OUT / 'fluent_bit_chunk'}")


if __name__ == "__main__":
    main()
