#!/usr/bin/env python3
"""Derive the kpl golden test-vector corpus from the spec (shared/docs/format.md).

This is an independent derivation: it never runs kpl-codec. It hand-builds protobuf
bytes, frames them (magic F3 89 9A C2 + protobuf + MD5(protobuf)), models KPL's
encoder and reducer (format.md 2), KCL's AggregatorUtil deaggregation (format.md 4,
with protobuf-java parse semantics) and the strict policy, and writes one JSON file
per vector under vectors/corpus/<category>/<name>.json.

    python3 vectors/derive/derive.py          # rewrite the corpus
    python3 vectors/derive/derive.py --check  # exit 1 if the corpus on disk differs

Standard library only. Output is deterministic (sorted keys, indent 2, trailing newline).
See vectors/FORMAT.md for the JSON format.
"""

import base64
import hashlib
import json
import os
import re
import sys

FORMAT_ID = "kpl-vector/1"
DATE = "2026-11-26"
PROVENANCE = {
    "source": "derived",
    "method": "vectors/derive/derive.py: independent derivation from format.md",
    "date": DATE,
}
MAGIC = bytes.fromhex("f3899ac2")
MAX_HASH = 2**128 - 1
U64 = 2**64 - 1
DEFAULT_MAX_SIZE = 51200
DEFAULT_MAX_COUNT = 4294967295
DEFAULT_MAX_RECORD_SIZE = 1048576
RECURSION_LIMIT = 100

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.normpath(os.path.join(HERE, "..", "corpus"))


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def md5(b):
    return hashlib.md5(b).digest()


def hash_key(pk_bytes):
    """format.md 3: MD5 of the bytes, read as an unsigned big-endian 128-bit integer."""
    return int.from_bytes(md5(pk_bytes), "big")


def java_lossy(b):
    """Java 17's new String(bytes, UTF_8), which KCL uses for table strings.

    It agrees with Python's 'replace' handler (maximal subparts) except for encoded UTF-16
    surrogates: Java replaces ED A0..BF [80..BF] with ONE U+FFFD (and a truncated ED A0..BF
    with one as well), where Python gives one per byte. Observed by running Java 17 here:
    new String(new byte[]{(byte)0xED,(byte)0xA0,(byte)0x80}, UTF_8) is "\uFFFD".
    """
    out, start, i = [], 0, 0
    while i < len(b):
        if b[i] == 0xED and i + 1 < len(b) and 0xA0 <= b[i + 1] <= 0xBF:
            out.append(b[start:i].decode("utf-8", "replace"))
            out.append("\ufffd")
            i += 3 if i + 2 < len(b) and 0x80 <= b[i + 2] <= 0xBF else 2
            start = i
        else:
            i += 1
    out.append(b[start:].decode("utf-8", "replace"))
    return "".join(out)


def hx(text):
    """Hex bytes written by hand: whitespace ignored, '#' starts a comment to end of line."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        out.append(re.sub(r"\s+", "", line))
    s = "".join(out)
    assert re.fullmatch(r"([0-9a-fA-F]{2})*", s), s
    return bytes.fromhex(s)


def b64(b):
    return base64.b64encode(b).decode("ascii")


def pat(n, seed=0):
    """Deterministic binary filler data."""
    return bytes(((i * 131 + seed * 17 + (i >> 8)) & 0xFF) for i in range(n))


# ---------------------------------------------------------------------------
# Protobuf primitives (written from the wire-format definition, not a library)
# ---------------------------------------------------------------------------

def varint(n):
    assert 0 <= n <= U64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint_padded(n, width):
    """Non-minimal varint of exactly `width` bytes (no value check: callers may
    deliberately overflow into bits above 64)."""
    out = bytearray()
    for i in range(width):
        b = (n >> (7 * i)) & 0x7F
        out.append(b | (0x80 if i < width - 1 else 0))
    return bytes(out)


def key(field, wire_type):
    return varint((field << 3) | wire_type)


def f_varint(field, value):
    return key(field, 0) + varint(value)


def f_bytes(field, payload):
    return key(field, 2) + varint(len(payload)) + payload


def frame(pb):
    """format.md 1: magic + protobuf + MD5(protobuf)."""
    return MAGIC + pb + md5(pb)


# ---------------------------------------------------------------------------
# KPL encoder model (format.md 2 and 3)
# ---------------------------------------------------------------------------

class EncodeError(Exception):
    def __init__(self, kind, record):
        super().__init__(kind, record)
        self.kind = kind
        self.record = record


def canonical_ehk(text):
    """Encoder rule: 1+ ASCII digits, value <= 2^128-1, leading zeros stripped.
    Returns the canonical decimal string, or None when invalid."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]+", text, re.ASCII):
        return None
    v = int(text)
    if v > MAX_HASH:
        return None
    return str(v)


def utf16_units(s):
    return len(s.encode("utf-16-le")) // 2


class UserRecord:
    def __init__(self, pk, ehk, data):
        self.pk = pk            # str
        self.ehk = ehk          # canonical str or None
        self.data = data        # bytes

    def effective_hash_key(self):
        if self.ehk is not None:
            return int(self.ehk)
        return hash_key(self.pk.encode("utf-8"))


def aggregate_protobuf(recs):
    """format.md 2.1/2.2: tables (first-use order, deduplicated), then records."""
    pks, ehks = [], []
    for r in recs:
        if r.pk not in pks:
            pks.append(r.pk)
        if r.ehk is not None and r.ehk not in ehks:
            ehks.append(r.ehk)
    out = bytearray()
    for p in pks:
        out += f_bytes(1, p.encode("utf-8"))
    for e in ehks:
        out += f_bytes(2, e.encode("ascii"))
    for r in recs:
        body = f_varint(1, pks.index(r.pk))
        if r.ehk is not None:
            body += f_varint(2, ehks.index(r.ehk))
        body += f_bytes(3, r.data)
        out += f_bytes(3, body)
    return bytes(out)


def accurate_size(recs):
    if not recs:
        return 0
    if len(recs) == 1:
        return len(recs[0].data)
    return 20 + len(aggregate_protobuf(recs))


def estimated_size(recs, pk_len=None, count_repeats=False):
    """format.md 2.6 estimate. pk_len / count_repeats exist only to model peer
    bugs (UTF-16 sizes, repeated keys counted again) so vectors can assert that
    they discriminate; the real encoder uses the defaults."""
    if len(recs) < 2:
        return accurate_size(recs)
    pk_len = pk_len or (lambda s: len(s.encode("utf-8")))
    total = 0
    seen_pk, seen_ehk = set(), set()
    for r in recs:
        total += len(r.data) + 5 + (2 if r.ehk is not None else 0)
        if count_repeats or r.pk not in seen_pk:
            seen_pk.add(r.pk)
            total += pk_len(r.pk) + 3
        if r.ehk is not None and (count_repeats or r.ehk not in seen_ehk):
            seen_ehk.add(r.ehk)
            total += len(r.ehk) + 3
    return total


def validate(i, pk, ehk_text, data, max_record_size):
    if pk == "":
        raise EncodeError("EmptyPartitionKey", i)
    if utf16_units(pk) > 256:
        raise EncodeError("PartitionKeyTooLong", i)
    canon = None
    if ehk_text is not None:
        canon = canonical_ehk(ehk_text)
        if canon is None:
            raise EncodeError("InvalidExplicitHashKey", i)
    if len(data) + len(pk.encode("utf-8")) > max_record_size:
        raise EncodeError("RecordTooLarge", i)
    return UserRecord(pk, canon, data)


def kinesis_record(recs):
    if len(recs) == 1:
        r = recs[0]
        return {"partition_key": r.pk, "explicit_hash_key": str(r.effective_hash_key()),
                "data": r.data, "user_records": 1}
    return {"partition_key": "a", "explicit_hash_key": str(recs[0].effective_hash_key()),
            "data": frame(aggregate_protobuf(recs)), "user_records": len(recs)}


def encode(records, max_size=DEFAULT_MAX_SIZE, max_count=DEFAULT_MAX_COUNT,
           max_record_size=DEFAULT_MAX_RECORD_SIZE, pk_len=None, count_repeats=False):
    """records: list of (pk, ehk text or None, data). Returns a list of Kinesis
    records (dicts) or raises EncodeError."""
    limit = min(max_size, max_record_size - 1)   # outer key "a" is 1 byte
    out = []

    def flush(container):
        best = 1
        for k in range(1, len(container) + 1):
            if k <= max_count and accurate_size(container[:k]) <= limit:
                best = k
        out.append(kinesis_record(container[:best]))
        return container[best:]

    container = []
    for i, (pk, ehk, data) in enumerate(records):
        container.append(validate(i, pk, ehk, data, max_record_size))
        if (len(container) >= max_count
                or estimated_size(container, pk_len, count_repeats) >= limit):
            container = flush(container)
    while container:
        container = flush(container)
    return out


# ---------------------------------------------------------------------------
# KCL model: protobuf-java parse semantics + AggregatorUtil.deaggregate
# ---------------------------------------------------------------------------

class JavaParseError(Exception):
    pass


class JavaReader:
    """Models com.google.protobuf.CodedInputStream over a byte array."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0
        self.limit = len(buf)
        self.depth = 0
        self.last_tag = 0

    def byte(self):
        if self.pos >= self.limit:
            raise JavaParseError("truncated")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint64(self):
        v = 0
        for i in range(10):
            b = self.byte()
            v |= (b & 0x7F) << (7 * i)
            if b < 0x80:
                return v & U64          # bits above 64 discarded
        raise JavaParseError("malformed varint")

    def varint32(self):
        return self.varint64() & 0xFFFFFFFF   # readRawVarint32: low 32 bits

    def read_tag(self):
        if self.pos >= self.limit:
            self.last_tag = 0
            return 0
        t = self.varint32()
        if (t >> 3) == 0:
            raise JavaParseError("invalid tag (field 0)")
        self.last_tag = t
        return t

    def check_last_tag(self, want):
        if self.last_tag != want:
            raise JavaParseError("invalid end tag")

    def read_len(self):
        n = self.varint32()
        if n >= 2**31:
            raise JavaParseError("negative size")
        if n > self.limit - self.pos:
            raise JavaParseError("truncated")
        return n

    def read_bytes(self):
        n = self.read_len()
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def skip_raw(self, n):
        if n > self.limit - self.pos:
            raise JavaParseError("truncated")
        self.pos += n

    def enter(self):
        if self.depth >= RECURSION_LIMIT:
            raise JavaParseError("recursion limit")
        self.depth += 1

    def skip_field(self, tag):
        wt = tag & 7
        if wt == 0:
            self.varint64()
        elif wt == 1:
            self.skip_raw(8)
        elif wt == 2:
            self.skip_raw(self.read_len())
        elif wt == 3:
            self.enter()
            self.skip_message()
            self.check_last_tag(((tag >> 3) << 3) | 4)
            self.depth -= 1
        elif wt == 4:
            return False
        elif wt == 5:
            self.skip_raw(4)
        else:
            raise JavaParseError("invalid wire type")
        return True

    def skip_message(self):
        while True:
            tag = self.read_tag()
            if tag == 0 or not self.skip_field(tag):
                return

    def parse_fields(self, handlers):
        """Generated-code loop: switch on the full tag, else parseUnknownField."""
        while True:
            tag = self.read_tag()
            if tag == 0:
                return
            h = handlers.get(tag)
            if h is not None:
                h()
            elif not self.skip_field(tag):
                return          # end-group tag: message ends, checkLastTagWas fails later

    def read_message(self, parse_body):
        n = self.read_len()
        self.enter()
        old = self.limit
        self.limit = self.pos + n
        obj = parse_body()
        self.check_last_tag(0)
        self.depth -= 1
        self.limit = old
        return obj


def java_parse(pb):
    r = JavaReader(pb)
    top = {"pk": [], "ehk": [], "records": []}

    def parse_tag():
        t = {"key": None, "value": None}

        def k():
            t["key"] = r.read_bytes()

        def v():
            t["value"] = r.read_bytes()
        r.parse_fields({0x0A: k, 0x12: v})
        return t

    def parse_record():
        rec = {"pk": None, "ehk": None, "data": None, "tags": []}

        def pk():
            rec["pk"] = r.varint64()

        def ehk():
            rec["ehk"] = r.varint64()

        def data():
            rec["data"] = r.read_bytes()

        def tag():
            rec["tags"].append(r.read_message(parse_tag))
        r.parse_fields({0x08: pk, 0x10: ehk, 0x1A: data, 0x22: tag})
        return rec

    r.parse_fields({
        0x0A: lambda: top["pk"].append(r.read_bytes()),
        0x12: lambda: top["ehk"].append(r.read_bytes()),
        0x1A: lambda: top["records"].append(r.read_message(parse_record)),
    })
    r.check_last_tag(0)
    # required fields are checked after the whole parse (isInitialized)
    for rec in top["records"]:
        if rec["pk"] is None or rec["data"] is None:
            raise JavaParseError("missing required field")
        for t in rec["tags"]:
            if t["key"] is None:
                raise JavaParseError("missing required field")
    return top


def int32(v):
    v &= 0xFFFFFFFF
    return v - 2**32 if v >= 2**31 else v


def java_biginteger(s):
    if re.fullmatch(r"[+-]?[0-9]+", s, re.ASCII):
        return int(s)
    return None


def user_record(pk_bytes, ehk, data, ssn, aggregated, hk):
    return {"partition_key": pk_bytes, "explicit_hash_key": ehk, "data": data,
            "sub_sequence_number": ssn, "aggregated": aggregated, "hash_key": hk}


def plain(data, outer_pk):
    return [user_record(outer_pk.encode("utf-8"), None, data, 0, False,
                        hash_key(outer_pk.encode("utf-8")))]


def kcl_deaggregate(data, outer_pk, verify_md5=True, shard=None):
    if len(data) < 4 or data[:4] != MAGIC or len(data) - 4 <= 16:
        return plain(data, outer_pk)
    pb, digest = data[4:-16], data[-16:]
    if verify_md5 and md5(pb) != digest:
        return plain(data, outer_pk)
    try:
        top = java_parse(pb)
    except JavaParseError:
        return plain(data, outer_pk)
    lo, hi = shard if shard is not None else (0, MAX_HASH)
    out = []
    for rec in top["records"]:
        i = int32(rec["pk"])
        if i < 0 or i >= len(top["pk"]):
            break                                   # keep emitted, drop rest
        pk = top["pk"][i]
        ehk = None
        if rec["ehk"] is not None:                  # presence, not value
            j = int32(rec["ehk"])
            if j < 0 or j >= len(top["ehk"]):
                break
            ehk = java_lossy(top["ehk"][j])
        if ehk is not None:
            hk = java_biginteger(ehk)
            if hk is None:
                break                               # NumberFormatException: keep, drop rest
        else:
            hk = hash_key(java_lossy(pk).encode("utf-8"))
        if hk < lo or hk > hi:
            out = []                                # whole aggregate taken back
            break
        out.append(user_record(pk, ehk, rec["data"], len(out), True, hk))
    return out


# ---------------------------------------------------------------------------
# Strict model
# ---------------------------------------------------------------------------

class StrictError(Exception):
    def __init__(self, kind, offset):
        super().__init__(kind, offset)
        self.kind = kind
        self.offset = offset


KNOWN_FIELDS = {
    "top": {1: 2, 2: 2, 3: 2},
    "record": {1: 0, 2: 0, 3: 2, 4: 2},
    "tag": {1: 2, 2: 2},
    "group": {},
}


def strict_ehk_ok(b):
    return re.fullmatch(rb"[0-9]+", b) is not None and int(b) <= MAX_HASH


class StrictParser:
    def __init__(self, pb, base=4):
        self.pb = pb
        self.base = base

    def fail(self, kind, at):
        raise StrictError(kind, self.base + at)

    def varint(self, pos, end, at):
        v = 0
        for i in range(10):
            if pos >= end:
                self.fail("Truncated", at)
            b = self.pb[pos]
            pos += 1
            if i == 9 and b > 1:
                self.fail("MalformedVarint", at)
            v |= (b & 0x7F) << (7 * i)
            if b < 0x80:
                return v, pos
        raise AssertionError("unreachable")

    def body(self, start, end, kind, depth, obj, group=None):
        """Parse fields in [start, end). group = (field number, start tag offset)."""
        pos = start
        while pos < end:
            at = pos
            tag, pos = self.varint(pos, end, at)
            if tag > 0xFFFFFFFF:
                self.fail("MalformedVarint", at)
            fn, wt = tag >> 3, tag & 7
            if fn == 0:
                self.fail("FieldNumberZero", at)
            if wt > 5:
                self.fail("InvalidWireType", at)
            if wt == 4:
                if group is not None and fn == group[0]:
                    return pos
                self.fail("UnexpectedEndGroup", at)
            expected = KNOWN_FIELDS[kind].get(fn)
            if expected is not None and expected != wt:
                self.fail("WrongWireType", at)
            if wt == 0:
                v, pos = self.varint(pos, end, at)
                if expected is not None:
                    self.on_varint(kind, fn, v, obj)
            elif wt in (1, 5):
                n = 8 if wt == 1 else 4
                if end - pos < n:
                    self.fail("Truncated", at)
                pos += n
            elif wt == 2:
                n, pos = self.varint(pos, end, at)
                if n > end - pos:
                    self.fail("Truncated", at)
                if expected is not None:
                    self.on_bytes(kind, fn, pos, pos + n, at, depth, obj)
                pos += n
            elif wt == 3:
                if depth + 1 > RECURSION_LIMIT:
                    self.fail("RecursionLimit", at)
                pos = self.body(pos, end, "group", depth + 1, None, group=(fn, at))
        if group is not None:
            self.fail("Truncated", group[1])
        return pos

    def on_varint(self, kind, fn, v, obj):
        if kind == "record":
            obj["pk" if fn == 1 else "ehk"] = v

    def on_bytes(self, kind, fn, s, e, at, depth, obj):
        payload = self.pb[s:e]
        if kind == "top" and fn in (1, 2):
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self.fail("InvalidUtf8", at)
            if fn == 2 and not strict_ehk_ok(payload):
                self.fail("InvalidExplicitHashKey", at)
            obj["pk" if fn == 1 else "ehk"].append(payload)
        elif kind == "top" and fn == 3:
            if depth + 1 > RECURSION_LIMIT:
                self.fail("RecursionLimit", at)
            rec = {"pk": None, "ehk": None, "data": None}
            self.body(s, e, "record", depth + 1, rec)
            if rec["pk"] is None:
                self.fail("MissingPartitionKeyIndex", at)
            if rec["data"] is None:
                self.fail("MissingData", at)
            obj["records"].append((at, rec))
        elif kind == "record" and fn == 3:
            obj["data"] = payload
        elif kind == "record" and fn == 4:
            if depth + 1 > RECURSION_LIMIT:
                self.fail("RecursionLimit", at)
            t = {"key": None}
            self.body(s, e, "tag", depth + 1, t)
            if t["key"] is None:
                self.fail("MissingTagKey", at)
        elif kind == "tag" and fn == 1:
            obj["key"] = payload


def strict_deaggregate(data, outer_pk, verify_md5=True, shard=None):
    """Returns a list of user records or raises StrictError."""
    if len(data) < 4 or data[:4] != MAGIC:
        return plain(data, outer_pk)
    if len(data) - 4 <= 16:
        raise StrictError("TooShort", 4)
    pb = data[4:-16]
    if verify_md5 and md5(pb) != data[-16:]:
        raise StrictError("Md5Mismatch", len(data) - 16)
    top = {"pk": [], "ehk": [], "records": []}
    StrictParser(pb).body(0, len(pb), "top", 0, top)
    out = []
    for at, rec in top["records"]:
        off = 4 + at
        if rec["pk"] >= len(top["pk"]):
            raise StrictError("PartitionKeyIndexOutOfRange", off)
        pk = top["pk"][rec["pk"]]
        ehk = None
        if rec["ehk"] is not None:
            if rec["ehk"] >= len(top["ehk"]):
                raise StrictError("ExplicitHashKeyIndexOutOfRange", off)
            ehk = top["ehk"][rec["ehk"]].decode("ascii")
            hk = int(ehk)
        else:
            hk = hash_key(pk)
        if shard is not None and not (shard[0] <= hk <= shard[1]):
            raise StrictError("OutsideShardRange", off)
        out.append(user_record(pk, ehk, rec["data"], len(out), True, hk))
    return out


# ---------------------------------------------------------------------------
# Sanity checks against the spec's anchors (format.md 2 worked example, 3)
# ---------------------------------------------------------------------------

WORKED_EXAMPLE = [("a", None, b"x"), ("b", "123", b"yz"), ("a", None, b"")]
WORKED_PB_HEX = ("0a0161" "0a0162" "1203313233" "1a05" "0800" "1a0178"
                 "1a08" "0801" "1000" "1a02797a" "1a04" "0800" "1a00")


def sanity_checks():
    recs = [UserRecord(p, canonical_ehk(e) if e else None, d) for p, e, d in WORKED_EXAMPLE]
    pb = aggregate_protobuf(recs)
    assert pb.hex() == WORKED_PB_HEX, pb.hex()
    assert md5(pb).hex() == "50fb6761da66aa196a30884d6311e0d4"
    assert len(frame(pb)) == 54
    assert hash_key(b"abcd") == 0xE2FC714C4727EE9395F324CD2E7F331F
    assert hash_key(b"a") == 16955237001963240173058271559858726497
    # The worked example decodes back to its inputs under both policies.
    data = frame(pb)
    k = kcl_deaggregate(data, "a")
    assert [(r["partition_key"], r["explicit_hash_key"], r["data"]) for r in k] == [
        (b"a", None, b"x"), (b"b", "123", b"yz"), (b"a", None, b"")]
    assert strict_deaggregate(data, "a") == k
    # varint helpers
    assert varint(300) == b"\xac\x02" and varint(0) == b"\x00"
    assert varint_padded(0, 10) == b"\x80" * 9 + b"\x00"


# ---------------------------------------------------------------------------
# Vector registry and JSON rendering
# ---------------------------------------------------------------------------

VECTORS = {}     # "category/name" -> JSON object


def add(category, name, kind, description, rules, inp, expected):
    assert category in ("encode", "decode", "malformed", "hash_key"), category
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
    full = f"{category}/{name}"
    assert full not in VECTORS, f"duplicate vector {full}"
    assert rules and all(r.startswith("format.md ") for r in rules), (full, rules)
    VECTORS[full] = {
        "format": FORMAT_ID, "kind": kind, "description": description, "rules": rules,
        "provenance": PROVENANCE, "input": inp, "expected": expected,
    }


def pk_json(pk_bytes, field="partition_key"):
    try:
        return {field: pk_bytes.decode("utf-8")}
    except UnicodeDecodeError:
        return {field + "_b64": b64(pk_bytes)}


def user_record_json(r):
    out = pk_json(r["partition_key"])
    out.update({"explicit_hash_key": r["explicit_hash_key"], "data": b64(r["data"]),
                "sub_sequence_number": r["sub_sequence_number"],
                "aggregated": r["aggregated"], "hash_key": str(r["hash_key"])})
    return out


# -- encode -----------------------------------------------------------------

def config_json(max_size, max_count, max_record_size):
    return {"max_size": max_size, "max_count": max_count, "max_record_size": max_record_size}


def enc(name, description, rules, records, max_size=DEFAULT_MAX_SIZE,
        max_count=DEFAULT_MAX_COUNT, max_record_size=DEFAULT_MAX_RECORD_SIZE,
        shape=None, error=None):
    """records: (pk, ehk text or None, data bytes). shape: the expected list of
    user_records per Kinesis record, worked out by hand in the caller's comments.
    error: expected error kind (always for the last input record)."""
    inp_records = []
    for pk, ehk, data in records:
        r = {"partition_key": pk, "data": b64(data)}
        if ehk is not None:
            r["explicit_hash_key"] = ehk
        inp_records.append(r)
    inp = {"config": config_json(max_size, max_count, max_record_size), "records": inp_records}
    try:
        out = encode(records, max_size, max_count, max_record_size)
    except EncodeError as e:
        assert error is not None, (name, e.kind, e.record)
        assert (e.kind, e.record) == (error, len(records) - 1), (name, e.kind, e.record)
        expected = {"error": {"kind": e.kind, "record": e.record}}
    else:
        assert error is None, (name, "expected error", error)
        got = [k["user_records"] for k in out]
        assert shape is None or got == shape, (name, got, shape)
        limit = min(max_size, max_record_size - 1)
        for k in out:
            # never an aggregate over the limit; never a record Kinesis would reject
            if k["user_records"] > 1:
                assert len(k["data"]) <= limit and k["partition_key"] == "a", name
                assert k["user_records"] <= max_count
            assert len(k["data"]) + len(k["partition_key"].encode()) <= max_record_size
            # round trip: strict decoding gives the user records back
            if k["user_records"] > 1:
                dec = strict_deaggregate(k["data"], k["partition_key"])
                assert len(dec) == k["user_records"], name
        expected = {"kinesis_records": [
            {"partition_key": k["partition_key"], "explicit_hash_key": k["explicit_hash_key"],
             "data": b64(k["data"]), "user_records": k["user_records"]} for k in out]}
    add("encode", name, "encode", description, rules, inp, expected)
    return expected


# -- decode -----------------------------------------------------------------

def dec(category, name, description, rules, data, pk="a", verify_md5=True, shard=None,
        kcl=None, strict=None):
    """kcl: hand-predicted KCL outcome: "passthrough", or the number of user records.
    strict: ("Kind", offset) for an error, "plain", or the number of user records
    (then equal to KCL's records)."""
    inp = {"data": b64(data), "partition_key": pk, "verify_md5": verify_md5}
    if shard is not None:
        inp["shard_range"] = {"start": str(shard[0]), "end": str(shard[1])}
    k = kcl_deaggregate(data, pk, verify_md5, shard)
    if kcl == "passthrough":
        assert k == plain(data, pk), (name, k)
    else:
        assert isinstance(kcl, int) and len(k) == kcl and all(r["aggregated"] for r in k), \
            (name, len(k), kcl)
    try:
        s = strict_deaggregate(data, pk, verify_md5, shard)
    except StrictError as e:
        assert isinstance(strict, tuple) and (e.kind, e.offset) == strict, \
            (name, e.kind, e.offset, strict)
        strict_json = {"error": {"kind": e.kind, "offset": e.offset}}
    else:
        if strict == "plain":
            assert s == plain(data, pk), name
        else:
            assert isinstance(strict, int) and len(s) == strict, (name, len(s), strict)
        # Whenever strict accepts, it yields exactly what KCL yields.
        assert s == k, name
        strict_json = {"records": [user_record_json(r) for r in s]}
    expected = {"kcl": {"records": [user_record_json(r) for r in k]}, "strict": strict_json}
    add(category, name, "decode", description, rules, inp, expected)
    return k


# -- hash keys ----------------------------------------------------------------

def hk_vec(name, description, pk_bytes, expect=None):
    h = hash_key(pk_bytes)
    if expect is not None:
        assert h == expect, (name, h)
    add("hash_key", name, "hash_key", description, ["format.md 3: hash key"],
        pk_json(pk_bytes), {"hash_key": str(h)})


def ehk_vec(name, description, text, expect):
    canon = canonical_ehk(text)
    assert canon == expect, (name, canon, expect)
    expected = {"canonical": canon} if canon is not None else {"error": "InvalidExplicitHashKey"}
    add("hash_key", name, "explicit_hash_key", description,
        ["format.md 2.3: canonical explicit hash key"], {"text": text}, expected)


# ---------------------------------------------------------------------------
# Rule references (format.md sections)
# ---------------------------------------------------------------------------

R_LAYOUT = "format.md 1: wire layout (magic + protobuf + MD5)"
R_TABLES = "format.md 2.1: tables deduplicated in first-use order"
R_FIELDS = "format.md 2.2: record fields 08, 10 only with ehk, 1A; minimal varints"
R_CANON = "format.md 2.3: canonical explicit hash key"
R_OUTER = "format.md 2.4: outer Kinesis record"
R_SIZE = "format.md 2.5: size limits"
R_SPLIT = "format.md 2.6: reducer split (estimate vs accurate size)"
R_PKLEN = "format.md 2.8: partition key 1..256 UTF-16 code units"
R_HASH = "format.md 3: hash key"
R_RANGE_IN = "format.md 3: shard range inclusive"
R_PASS = "format.md 4: passthrough"
R_ZERO = "format.md 4: zero records"
R_SSN = "format.md 4: sub-sequence numbers"
R_KEEP = "format.md 4: keep-then-drop"
R_INT32 = "format.md 4: indices cast to int32"
R_PRESENCE = "format.md 4: ehk from field presence"
R_RANGE = "format.md 4: hash-range filter all-or-nothing"
R_BIGINT = "format.md 4: ehk parsed as BigInteger"
R_LOSSY = "format.md 4: lossy UTF-8 table strings"
R_UNKNOWN = "format.md 4: unknown fields skipped, field 0 error"
R_WRONGWT = "format.md 4: known field with wrong wire type skipped"
R_ORDER = "format.md 4: any field order, non-minimal varints, last value wins"
R_REQUIRED = "format.md 4: missing required field fails the parse"
R_STRICT = "format.md 4: strict policy"
P_PYAGG = "format.md 5: Python aws_kinesis_agg"
P_NODE = "format.md 5: Node aws-kinesis-agg"
P_JAVAAGG = "format.md 5: Java KinesisAggregator"
P_A8M = "format.md 5: a8m/kinesis-producer"
P_FLUENT = "format.md 5: Go Fluent Bit plugin"
P_GODEAGG = "format.md 5: Go deaggregator"
P_AIOKPL = "format.md 5: aiokpl"


# ---------------------------------------------------------------------------
# hash_key vectors
# ---------------------------------------------------------------------------

def hash_key_vectors():
    hk_vec("hash-key-abcd-anchor", "format.md 3 anchor: MD5(\"abcd\") read unsigned big-endian.",
           b"abcd", 0xE2FC714C4727EE9395F324CD2E7F331F)
    hk_vec("hash-key-a-anchor", "format.md 3 anchor: the hash key of \"a\" (also the outer "
           "key of every aggregate) in decimal.", b"a", 16955237001963240173058271559858726497)
    hk_vec("hash-key-empty", "MD5 of zero bytes (d41d8cd9...) as an unsigned 128-bit integer; "
           "a decoder can meet an empty table entry.", b"",
           0xD41D8CD98F00B204E9800998ECF8427E)
    # find a short key whose MD5 starts with a byte >= 0x80 deterministically
    for i in range(1000):
        cand = f"key-{i}".encode()
        if md5(cand)[0] >= 0x80:
            break
    assert hash_key(cand) > 2**127
    hk_vec("hash-key-high-bit-unsigned", f"\"{cand.decode()}\" has an MD5 whose top bit is set: "
           "the hash key is unsigned big-endian (> 2^127), not a negative number.", cand)
    hk_vec("hash-key-unicode-bmp", "Cyrillic key: the hash is over the UTF-8 bytes (8 bytes), "
           "not UTF-16 or code points.", "ключ".encode("utf-8"))
    hk_vec("hash-key-non-bmp-emoji", "Non-BMP key (U+1F511): hashed over its 4 UTF-8 bytes, "
           "not a UTF-16 surrogate pair.", "🔑".encode("utf-8"))
    hk_vec("hash-key-invalid-utf8-bytes", "Raw key bytes FF FE 41 (not UTF-8): hash_key is "
           "defined on bytes, no replacement here (partition_key_b64 input).", b"\xff\xfeA")
    hk_vec("hash-key-number-like", "Number-like key \"10\" is hashed as the two ASCII bytes.",
           b"10")
    hk_vec("hash-key-256-chars", "A maximal 256-character key.", b"k" * 256)
    hk_vec("hash-key-nul-byte", "A key containing U+0000 is hashed with the NUL byte.",
           b"a\x00b")

    ehk_vec("ehk-plain", "Plain decimal stays as is.", "123", "123")
    ehk_vec("ehk-leading-zeros-stripped", "Leading zeros are allowed and stripped: "
            "\"000123\" -> \"123\".", "000123", "123")
    ehk_vec("ehk-zero", "\"0\" is valid.", "0", "0")
    ehk_vec("ehk-all-zeros", "\"000\" canonicalises to \"0\".", "000", "0")
    ehk_vec("ehk-max-2-pow-128-minus-1", "2^128-1 is the largest valid value.",
            str(MAX_HASH), str(MAX_HASH))
    ehk_vec("ehk-max-with-leading-zeros", "2^128-1 with leading zeros is valid (40+ digits).",
            "0000" + str(MAX_HASH), str(MAX_HASH))
    ehk_vec("ehk-2-pow-128-rejected", "2^128 is out of range (KPL's native core would wrap "
            "it; format.md 2.3 says never copy that).", str(2**128), None)
    ehk_vec("ehk-huge-rejected", "A 60-digit number is out of range.", "9" * 60, None)
    ehk_vec("ehk-empty-rejected", "The empty string is rejected.", "", None)
    ehk_vec("ehk-plus-sign-rejected", "A sign is rejected by the encoder rule (\"+1\").", "+1", None)
    ehk_vec("ehk-minus-sign-rejected", "\"-1\" is rejected.", "-1", None)
    ehk_vec("ehk-leading-space-rejected", "No trimming: \" 1\" is rejected.", " 1", None)
    ehk_vec("ehk-trailing-space-rejected", "No trimming: \"1 \" is rejected.", "1 ", None)
    ehk_vec("ehk-decimal-point-rejected", "\"1.0\" is rejected.", "1.0", None)
    ehk_vec("ehk-hex-rejected", "\"0x10\" is rejected (no hex, and KPL's native core would "
            "read a leading 0 as octal: never copy that).", "0x10", None)
    ehk_vec("ehk-letters-rejected", "\"12a\" is rejected.", "12a", None)
    ehk_vec("ehk-fullwidth-digits-rejected", "Non-ASCII digits (U+FF11 U+FF12) are rejected: "
            "only ASCII 0-9 count.", "\uff11\uff12", None)


# ---------------------------------------------------------------------------
# encode vectors
# ---------------------------------------------------------------------------

HK_A = hash_key(b"a")


def encode_vectors():
    enc("worked-example", "The worked example of format.md 2: (a,x), (b,ehk 123,yz), (a,empty) "
        "give one 54-byte aggregate with protobuf " + WORKED_PB_HEX + " and MD5 "
        "50fb6761da66aa196a30884d6311e0d4; outer key \"a\", outer ehk = hash key of the first "
        "record's key \"a\".",
        [R_LAYOUT, R_TABLES, R_FIELDS, R_OUTER],
        WORKED_EXAMPLE, shape=[3])
    # Hand check: single Kinesis record, data is the 54-byte frame.
    out = encode(WORKED_EXAMPLE)
    assert out[0]["data"] == MAGIC + bytes.fromhex(WORKED_PB_HEX) + bytes.fromhex(
        "50fb6761da66aa196a30884d6311e0d4")
    assert out[0]["explicit_hash_key"] == str(HK_A)

    enc("lone-record-gets-md5-explicit-hash-key",
        "A single user record goes out raw (no magic, no MD5) under its own key, and always "
        "carries an explicit hash key: here the decimal MD5 hash key of \"user-1\". Targets "
        "aiokpl, which sends no explicit hash key for a lone record.",
        [R_OUTER, R_HASH, P_AIOKPL], [("user-1", None, b"hello")], shape=[1])
    enc("lone-record-explicit-hash-key-canonicalised",
        "A lone record with explicit hash key \"000123\" goes out raw with ehk \"123\".",
        [R_OUTER, R_CANON], [("user-1", "000123", b"payload")], shape=[1])
    enc("lone-record-max-explicit-hash-key",
        "A lone record with ehk 2^128-1 keeps it exactly (no wrap, no float).",
        [R_OUTER, R_CANON], [("k", str(MAX_HASH), b"z")], shape=[1])
    enc("lone-record-empty-data", "A lone record with empty data goes out raw with empty data.",
        [R_OUTER], [("k", None, b"")], shape=[1])
    enc("lone-record-binary-data", "A lone record with all 256 byte values goes out byte for "
        "byte.", [R_OUTER], [("bin", None, bytes(range(256)))], shape=[1])

    enc("outer-key-is-a-not-first-key",
        "Two records with keys \"first-key\" and \"second\": the aggregate's partition key is "
        "the literal \"a\" while its ehk is the hash key of \"first-key\". Targets Python "
        "aws_kinesis_agg (first record's key as outer key).",
        [R_OUTER, R_HASH, P_PYAGG], [("first-key", None, b"1"), ("second", None, b"2")],
        shape=[2])
    enc("outer-ehk-from-first-record-explicit",
        "The first user record has ehk \"42\": the aggregate's ehk is \"42\", even though "
        "the second record has none.",
        [R_OUTER], [("p", "42", b"x"), ("q", None, b"y")], shape=[2])
    enc("records-without-ehk-while-ehk-table-non-empty",
        "Mixed explicit hash keys: records without one get no field 10 even though the ehk "
        "table is non-empty. Targets Java KinesisAggregator (writes an ehk for every record) "
        "and, on decode, Python/Node deaggregators (give such records the table's first entry).",
        [R_FIELDS, R_TABLES, P_JAVAAGG, P_PYAGG, P_NODE],
        [("a", None, b"1"), ("b", "7", b"2"), ("c", None, b"3"), ("b", "99", b"4")], shape=[4])
    enc("number-like-and-proto-keys-first-use-order",
        "Keys \"b\", \"2\", \"10\", \"__proto__\", \"a\", \"2\" (repeated): the table is in "
        "first-use order b, 2, 10, __proto__, a and the repeated \"2\" reuses index 1. Targets "
        "Node aws-kinesis-agg (JS-object tables reorder number-like keys and drop __proto__) "
        "and the Go Fluent Bit plugin (map-order tables).",
        [R_TABLES, P_NODE, P_FLUENT],
        [("b", None, b"0"), ("2", None, b"1"), ("10", None, b"2"), ("__proto__", None, b"3"),
         ("a", None, b"4"), ("2", None, b"5")], shape=[6])
    enc("ehk-table-deduplicated-by-canonical-value",
        "\"0042\" and \"42\" are the same canonical ehk: one table entry \"42\", both records "
        "index 0; \"7\" gets index 1.",
        [R_TABLES, R_CANON], [("p", "0042", b"a"), ("q", "42", b"b"), ("r", "7", b"c")],
        shape=[3])
    enc("repeated-partition-key-single-entry",
        "The same key on four records is stored once; a8m/kinesis-producer puts every record "
        "under the first key, so distinct keys interleaved (x, y, x, y) also check that.",
        [R_TABLES, P_A8M], [("x", None, b"1"), ("y", None, b"2"), ("x", None, b"3"),
                            ("y", None, b"4")], shape=[4])
    enc("aggregate-empty-data-records", "Empty data is written as 1A 00 inside each record "
        "(required fields always written).", [R_FIELDS],
        [("k", None, b""), ("k", None, b""), ("k", None, b"")], shape=[3])
    enc("aggregate-binary-data", "Binary data with every byte value, including data that "
        "itself starts with the magic, is stored verbatim.", [R_FIELDS],
        [("k", None, bytes(range(256))), ("k", None, frame(b"\x0a\x01a"))], shape=[2])
    enc("aggregate-unicode-keys", "Unicode keys are stored as UTF-8 in the table: Cyrillic, "
        "CJK, a non-BMP emoji and a combining sequence.", [R_TABLES, R_HASH],
        [("ключ", None, b"1"), ("日本語", None, b"2"), ("🔑", None, b"3"), ("e\u0301", None, b"4")],
        shape=[4])
    enc("index-varints-two-bytes",
        "130 distinct keys: indices 128 and up take two varint bytes (minimal varints).",
        [R_FIELDS, R_TABLES], [(f"k{i}", None, b"") for i in range(130)], shape=[130])
    enc("data-length-two-byte-varint", "Data of 200 bytes needs a two-byte length varint "
        "(C8 01) and the record length too.", [R_FIELDS],
        [("k", None, pat(200, 1)), ("k", None, pat(127, 2))], shape=[2])

    # --- partition key and ehk validation -------------------------------------
    enc("pk-256-ascii-ok", "A 256-character key is accepted.", [R_PKLEN],
        [("k" * 256, None, b"x"), ("j" * 256, None, b"y")], shape=[2])
    enc("pk-257-ascii-error", "A 257-character key is rejected (record index 1).", [R_PKLEN],
        [("ok", None, b"x"), ("k" * 257, None, b"y")], error="PartitionKeyTooLong")
    enc("pk-128-emoji-ok-256-utf16-units",
        "128 non-BMP emoji are 256 UTF-16 code units (512 UTF-8 bytes): accepted. Targets any "
        "peer counting UTF-8 bytes (and Node's size accounting).", [R_PKLEN, P_NODE],
        [("🔑" * 128, None, b"x"), ("a", None, b"y")], shape=[2])
    enc("pk-129-emoji-error-258-utf16-units",
        "129 non-BMP emoji are 258 UTF-16 code units: rejected although only 129 code points.",
        [R_PKLEN], [("🔑" * 129, None, b"x")], error="PartitionKeyTooLong")
    enc("pk-256-bmp-multibyte-ok", "256 x U+00E9 (512 UTF-8 bytes, 256 code units) is accepted.",
        [R_PKLEN], [("\u00e9" * 256, None, b"x")], shape=[1])
    enc("pk-empty-error", "An empty key is rejected (record index 1, after a valid record).",
        [R_PKLEN], [("ok", None, b"x"), ("", None, b"y")], error="EmptyPartitionKey")
    enc("ehk-12a-error", "Explicit hash key \"12a\" is rejected.", [R_CANON],
        [("k", "12a", b"x")], error="InvalidExplicitHashKey")
    enc("ehk-empty-string-error", "An explicit hash key given as \"\" is rejected (it is not "
        "the same as no explicit hash key).", [R_CANON],
        [("k", None, b"x"), ("k", "", b"y")], error="InvalidExplicitHashKey")
    enc("ehk-2-pow-128-error", "Explicit hash key 2^128 is rejected (no wrap).", [R_CANON],
        [("k", str(2**128), b"x")], error="InvalidExplicitHashKey")
    enc("ehk-plus-sign-error", "Explicit hash key \"+5\" is rejected by the strict encoder "
        "rule (no sign, no spaces).", [R_CANON], [("k", "+5", b"x")],
        error="InvalidExplicitHashKey")
    enc("ehk-max-in-aggregate", "Explicit hash key 2^128-1 inside an aggregate, stored as its "
        "39-digit decimal; outer ehk is that value.", [R_CANON, R_OUTER],
        [("k", str(MAX_HASH), b"x"), ("k", None, b"y")], shape=[2])
    enc("record-too-large-error",
        "max_record_size 100: key \"k\" (1 byte) + 100 data bytes = 101 > 100: rejected.",
        [R_SIZE], [("k", None, b"y" * 99), ("k", None, b"x" * 100)], max_record_size=100,
        error="RecordTooLarge")
    enc("record-exactly-max-record-size-ok",
        "max_record_size 100: key \"k\" + 99 data bytes = 100: accepted, goes out raw (the "
        "aggregate limit is min(max_size, 100 - 1) = 99, and the record's data alone is 99).",
        [R_SIZE, R_SPLIT], [("k", None, b"x" * 99)], max_record_size=100, shape=[1])
    enc("record-too-large-counts-utf8-key-bytes",
        "max_record_size 100: key of 5 emoji (20 UTF-8 bytes, 10 UTF-16 units) + 81 data "
        "bytes = 101 > 100: rejected; counting UTF-16 units (91) would wrongly accept it.",
        [R_SIZE], [("🔑" * 5, None, b"x" * 81)], max_record_size=100, error="RecordTooLarge")

    # --- splitting ----------------------------------------------------------------
    enc("split-max-count-2", "max_count 2, five records: flush after every second add "
        "(count reaches 2), the last one alone goes out raw. Shape 2, 2, 1.",
        [R_SPLIT, R_OUTER], [(f"k{i}", None, bytes([i])) for i in range(5)], max_count=2,
        shape=[2, 2, 1])
    enc("split-max-count-3", "max_count 3, eight records: shape 3, 3, 2; each aggregate's "
        "ehk is its own first record's hash key.", [R_SPLIT, R_OUTER],
        [(f"k{i}", None, bytes([i])) for i in range(8)], max_count=3, shape=[3, 3, 2])
    enc("split-max-count-1-all-raw", "max_count 1: every add flushes a single record, so "
        "every record goes out raw with its own key and ehk.", [R_SPLIT, R_OUTER],
        [("a", None, b"1"), ("b", "5", b"2"), ("a", None, b"3")], max_count=1, shape=[1, 1, 1])

    # max_size 200, key "k", 30-byte data. Hand check:
    #   estimate(n>=2) = n*(30+5) + (1+3) = 35n + 4
    #   accurate(n>=2) = 20 + 3 (0A 01 6B) + n*36 (1A 22 [08 00 1A 1E <30>]) = 23 + 36n
    #   n=5: est 179 < 200 (accurate 203 already over: no flush yet)
    #   n=6: est 214 >= 200 -> flush; longest prefix with accurate <= 200 is 4 (167)
    #   -> emit 4, carry 2; again at the 10th add: emit 4, carry 2; end: 2 (95).
    enc("split-max-size-200-estimate-under-accurate-over",
        "max_size 200, ten 30-byte records under one key: the accurate size passes 200 at 5 "
        "records but the estimate (35n+4) only reaches it at 6, then the longest fitting "
        "prefix (4 records, 167 bytes) is emitted and 2 are carried. Shape 4, 4, 2.",
        [R_SPLIT], [("k", None, pat(30, i)) for i in range(10)], max_size=200,
        shape=[4, 4, 2])
    assert accurate_size([UserRecord("k", None, pat(30))] * 4) == 167
    assert accurate_size([UserRecord("k", None, pat(30))] * 5) == 203

    # max_size 64, key "k": accurate(n) = 23 + n*(d+6) for small d.
    #   d=10: accurate(2) = 55, estimate(2) = 15+15+4 = 34; accurate(3) = 71 > 64.
    #   estimate(3) = 49 < 64; estimate(4) = 64 >= 64 -> flush: emit 2 (55), carry 2.
    #   6 records: after 4th: emit 2 carry [3,4]; 5th: est 49; 6th: est 64 -> emit 2,
    #   carry [5,6]; end: 2. Shape 2, 2, 2.
    enc("split-max-size-64", "max_size 64 (the smallest allowed), six 10-byte records under "
        "one key: the estimate 15n+4 reaches 64 at 4 records, when only 2 fit (55 bytes; 3 "
        "would be 71). Shape 2, 2, 2.",
        [R_SPLIT], [("k", None, pat(10, i)) for i in range(6)], max_size=64, shape=[2, 2, 2])

    # Emitting less than would fit: estimate > accurate once there are more than 20
    # records with a distinct key and a distinct ehk each (per record the estimate
    # counts 5+2+(len+3)+(len+3), the accurate size 8+(len+2)+(len+2), plus 20 overall).
    # pk "p<i>", ehk "<i>", empty data, limit 700. Per record the estimate counts
    # 7 + (len(pk)+3) + (len(ehk)+3) and the accurate size 8 + (len(pk)+2) + (len(ehk)+2),
    # so est(n) - acc(n) = n - 20. Key lengths: pk 2 chars for i < 10, 3 after; ehk 1, 2.
    #   est(39) = 682 < 700; est(40) = 700 >= 700 -> flush; acc(40) = 680 -> emit all 40,
    #   although acc(41) = 697 <= 700 would have fit. The 5 left aggregate at the end.
    recs = [(f"p{i}", str(i), b"") for i in range(45)]
    urs = [UserRecord(p, e, d) for p, e, d in recs]
    n_flush = next(n for n in range(2, 46) if estimated_size(urs[:n]) >= 700)
    assert n_flush == 40 and accurate_size(urs[:40]) == 680 and estimated_size(urs[:40]) == 700
    assert accurate_size(urs[:41]) == 697  # a 41st record would still have fit under 700
    enc("split-estimate-over-accurate-under-emits-less-than-fits",
        "max_size 700, 45 records each with its own key and ehk and empty data: the estimate "
        "reaches 700 at 40 records while their accurate size is only 680, so KPL emits 40 "
        "records although 41 (697 bytes) would fit; a byte-identical encoder must do the same. "
        "Shape 40, 5.",
        [R_SPLIT], recs, max_size=700, shape=[40, 5])

    # Python aws_kinesis_agg counts a repeated partition key on every add.
    # key = 40 x "k", data 10 bytes, limit 200:
    #   est(n) = 15n + 43 -> reaches 200 at n=11 (208); acc(n) = 20 + 42 + 16n
    #   longest prefix with acc <= 200: n=8 (190); carry 3; 12th add: est(4) = 103;
    #   end: acc(4) = 126 -> emit 4. Shape 8, 4.
    recs = [("k" * 40, None, pat(10, i)) for i in range(12)]
    alt = encode(recs, max_size=200, count_repeats=True)
    assert [k["user_records"] for k in alt] != [8, 4]
    enc("split-repeated-key-counted-once",
        "max_size 200, twelve 10-byte records under one 40-character key: the key counts once "
        "in the estimate (15n+43), so the flush comes at 11 records and emits 8 (190 bytes). "
        "Targets Python aws_kinesis_agg, which counts a repeated key again on every add and "
        "splits far earlier. Shape 8, 4.",
        [R_SPLIT, P_PYAGG], recs, max_size=200, shape=[8, 4])

    # Aggregate exactly at the limit: key "k", d = 53: acc(3) = 23 + 3*59 = 200.
    # est(3) = 3*58 + 4 = 178 < 200; est(4) = 236 -> flush, acc(4) = 259 -> emit 3 (200).
    recs = [("k", None, pat(53, i)) for i in range(4)]
    assert accurate_size([UserRecord(*r) for r in recs[:3]]) == 200
    enc("split-aggregate-exactly-at-limit",
        "max_size 200: three 53-byte records make an aggregate of exactly 200 bytes, which is "
        "within the limit and emitted whole; the fourth goes out raw. Shape 3, 1.",
        [R_SPLIT, R_SIZE], recs, max_size=200, shape=[3, 1])

    # Python drops a record whose size lands within 20 bytes of the limit.
    # key "k", data 40 then 45, limit 100: acc = 23 + 46 + 51 = 120 > 100 ... use smaller:
    # d1 = 30, d2 = 38: acc = 23 + 36 + 44 = 103 > 100; d2 = 35: acc = 23+36+41 = 100.
    # Choose d1 = 30, d2 = 30: acc = 95 (5 below the limit, i.e. within 20 bytes).
    recs = [("k", None, pat(30, 1)), ("k", None, pat(30, 2))]
    assert 100 - 20 < accurate_size([UserRecord(*r) for r in recs]) == 95 <= 100
    enc("record-within-20-bytes-of-limit-kept",
        "max_size 100: two 30-byte records aggregate to 95 bytes, within 20 bytes of the limit; "
        "both are kept in one aggregate. Targets Python aws_kinesis_agg, which drops a record "
        "whose size lands within 20 bytes of the limit.",
        [R_SPLIT, P_PYAGG], recs, max_size=100, shape=[2])

    # Lone oversize record in the middle. max_size 64, key "k", small = 10 bytes:
    #   s1, s2: est 34 < 64. BIG (64 bytes) added: est 34+69 = 103 -> flush: prefix 2
    #   (acc 55) -> aggregate; carry [BIG]. s3 added: est 69+15+4 = 88 -> flush: prefix 1
    #   (BIG, acc 64 <= 64) -> raw; carry [s3]. s4: est 34; end: aggregate of 2.
    enc("split-lone-oversize-record-goes-raw",
        "max_size 64: a 64-byte record among 10-byte ones cannot share an aggregate, so it goes "
        "out raw by itself between two aggregates. Shape 2, 1, 2.",
        [R_SPLIT, R_OUTER],
        [("k", None, pat(10, 1)), ("k", None, pat(10, 2)), ("big", None, pat(64, 3)),
         ("k", None, pat(10, 4)), ("k", None, pat(10, 5))], max_size=64, shape=[2, 1, 2])
    # BIG first: after adding it alone the estimate (its accurate size, 100) >= 64 ->
    # flush -> at least one record -> raw even though 100 > 64.
    enc("split-oversize-first-record-raw",
        "max_size 64: the first record's data alone (100 bytes) exceeds max_size; the flush "
        "right after adding it emits it raw (at least one record), then the next two "
        "aggregate. Shape 1, 2.",
        [R_SPLIT, R_OUTER],
        [("big", "77", pat(100, 1)), ("k", None, pat(5, 2)), ("k", None, pat(5, 3))],
        max_size=64, shape=[1, 2])

    # max_record_size 300 -> aggregate limit min(51200, 299) = 299.
    # key "k": record accurate contribution = d+6 for rl < 128, d+8 when rl >= 128
    # d1 = 121 (rl 127, 127+1+1 = 129... compute) -> let the script check acc == 300.
    recs = [("k", None, pat(121, 1)), ("k", None, pat(142, 2))]
    assert accurate_size([UserRecord(*r) for r in recs]) == 300
    # estimate = 126 + 147 + 4 = 277 < 299: no flush on add; at the end of input the
    # flush finds the pair (300) over 299 and emits r1 raw, then r2 raw.
    enc("max-record-size-limits-aggregate-to-one-less",
        "max_record_size 300 with default max_size: a pair of records would aggregate to "
        "exactly 300 bytes, which with the 1-byte outer key \"a\" is 301 for Kinesis; the "
        "effective limit is 299, so the end-of-input flush emits each raw. Targets Java "
        "KinesisAggregator (can exceed the record limit by 20 bytes) and a8m/kinesis-producer "
        "(size arithmetic overshoots).",
        [R_SIZE, R_SPLIT, P_JAVAAGG, P_A8M], recs, max_record_size=300, shape=[1, 1])
    enc("max-record-size-301-allows-300-byte-aggregate",
        "The same pair with max_record_size 301: the 300-byte aggregate plus outer key \"a\" "
        "is 301, allowed, so one aggregate. Shape 2.",
        [R_SIZE, R_SPLIT], recs, max_record_size=301, shape=[2])

    # End-of-input flushes repeatedly: records whose estimate stays under the limit but
    # whose accurate size is over. key "k", d = 20: est(n) = 25n + 4, acc(n) = 23 + 26n.
    # limit 100: n=3: est 79, acc 101 > 100: no flush on add; end: emit 2 (75), then 1 raw.
    enc("end-of-input-flush-repeats-until-empty",
        "max_size 100, three 20-byte records: the estimate (79) never reaches 100 but the "
        "accurate size (101) is over, so the end-of-input flush runs twice: 2 then 1 raw.",
        [R_SPLIT], [("k", None, pat(20, i)) for i in range(3)], max_size=100, shape=[2, 1])

    # Unicode keys: the estimate counts UTF-8 bytes; a peer counting UTF-16 units has a
    # smaller estimate, flushes later and (when the estimate is what stops KPL early) packs
    # differently. 45 records, key "\U0001F511<i>" (UTF-8 4+len(i) bytes, UTF-16 2+len(i)
    # units), ehk "<i>", empty data, max_size 820: the UTF-8 estimate reaches 820 at 40
    # records (accurate size within the limit, so all 40 go), the UTF-16 one only at 41.
    recs = [("\U0001F511" + str(i), str(i), b"") for i in range(45)]
    utf16 = encode(recs, max_size=820, pk_len=utf16_units)
    assert [k["user_records"] for k in utf16] == [41, 4]
    enc("split-unicode-keys-utf8-sizes",
        "max_size 820, 45 records with distinct emoji keys and distinct ehks: the estimate "
        "counts key lengths in UTF-8 bytes, so it reaches 820 at 40 records and KPL emits 40 "
        "then 5. Targets Node aws-kinesis-agg (counts sizes in UTF-16 units: would emit 41, 4).",
        [R_SPLIT, P_NODE], recs, max_size=820, shape=[40, 5])

    enc("split-with-explicit-hash-keys",
        "max_size 120, records with explicit hash keys (each adds 2 per record and len+3 per "
        "distinct key to the estimate); every aggregate's ehk is its own first record's ehk.",
        [R_SPLIT, R_OUTER, R_CANON],
        [("k", str(1000 + i), pat(12, i)) for i in range(7)], max_size=120)

    # Default max_size 51,200 (two vectors, kept as small as such vectors can be).
    # Split: key "k", data 25000, 25000, 2000:
    #   est(2) = 2*25005 + 4 = 50014 < 51200; est(3) = 52019 >= 51200 -> flush;
    #   acc(2) = 20 + 3 + 2*(1 + 3 + (2 + 1 + 3 + 25000)) = 50043 <= 51200 -> emit 2,
    #   carry the 2000-byte record; end: raw. Shape 2, 1.
    recs = [("k", None, pat(25000, 1)), ("k", None, pat(25000, 2)), ("k", None, pat(2000, 3))]
    assert accurate_size([UserRecord(*r) for r in recs[:2]]) == 50043
    enc("default-max-size-split",
        "Default config (max_size 51,200): two 25,000-byte records aggregate (50,043 bytes); "
        "adding a 2,000-byte one brings the estimate to 52,019, so the pair is flushed and the "
        "last record goes out raw. Shape 2, 1.",
        [R_SPLIT, R_SIZE], recs, shape=[2, 1])
    # Exactly 51,200: key "k", d1 = 25000 (record 1 + 3 + 25006 = 25010 bytes), d2 needs
    # 3-byte varints too: record = 1 + 3 + (2 + 1 + 3 + d2) = d2 + 10, so
    # acc = 23 + 25010 + d2 + 10 = 51200 -> d2 = 26157. est = 25005 + 26162 + 4 = 51171
    # < 51200: no flush on add; at the end the whole pair fits exactly.
    recs = [("k", None, pat(25000, 4)), ("k", None, pat(26157, 5))]
    assert estimated_size([UserRecord(*r) for r in recs]) == 51171
    assert accurate_size([UserRecord(*r) for r in recs]) == 51200
    enc("default-max-size-aggregate-exactly-51200",
        "Default config: two records whose aggregate is exactly 51,200 bytes (20 + N): allowed, "
        "one aggregate.", [R_SPLIT, R_SIZE], recs, shape=[2])


# ---------------------------------------------------------------------------
# decode vectors (well-formed aggregates and plain records)
# ---------------------------------------------------------------------------

WORKED_DATA = frame(bytes.fromhex(WORKED_PB_HEX))


def agg(recs):
    """Frame an aggregate built by the encoder model from (pk, ehk, data) triples."""
    return frame(aggregate_protobuf([UserRecord(p, e, d) for p, e, d in recs]))


def decode_vectors():
    dec("decode", "worked-example-three-records",
        "The format.md 2 worked example decodes to three user records with sub-sequence numbers "
        "0, 1, 2; the second has ehk \"123\", the others none (hash key from MD5 of the key).",
        [R_LAYOUT, R_SSN, R_PRESENCE, R_HASH], WORKED_DATA, kcl=3, strict=3)
    pb = hx("""
        0a 01 61          # partition_key_table[0] = "a", no records
    """)
    dec("decode", "kcl-zero-records",
        "A valid aggregate with a table entry but no records yields zero user records (not a "
        "passthrough).", [R_ZERO], frame(pb), kcl=0, strict=0)
    pb = hx("""
        28 05             # unknown field 5, varint 5: the only field
    """)
    dec("decode", "zero-records-unknown-field-only",
        "A 22-byte aggregate whose protobuf is a single unknown varint field: zero user records.",
        [R_ZERO, R_UNKNOWN], frame(pb), kcl=0, strict=0)
    dec("decode", "plain-record-no-magic", "Data without the magic is one plain record: outer "
        "key, no ehk, ssn 0, aggregated false, hash key MD5 of the outer key.",
        [R_PASS, R_HASH], b"hello world", pk="user-1", kcl="passthrough", strict="plain")
    dec("decode", "plain-record-empty-data", "Empty data is a plain record.", [R_PASS],
        b"", pk="k", kcl="passthrough", strict="plain")
    dec("decode", "plain-record-json-payload", "A typical JSON payload is a plain record.",
        [R_PASS], b'{"id":1,"v":"x"}', pk="order-17", kcl="passthrough", strict="plain")
    dec("decode", "plain-record-magic-last-byte-differs",
        "F3 89 9A C3 followed by a valid-looking body: not the magic, so a plain record under "
        "both policies.", [R_PASS],
        b"\xf3\x89\x9a\xc3" + WORKED_DATA[4:], pk="k", kcl="passthrough", strict="plain")
    dec("decode", "plain-record-kpl-lone-output",
        "What KPL sends for a lone record (raw user bytes under the user's key) decodes as one "
        "plain record; its hash key is MD5 of the outer key.", [R_PASS, R_OUTER],
        b"payload", pk="user-1", kcl="passthrough", strict="plain")

    dec("decode", "mixed-ehk-presence-not-first-entry",
        "Record 0 has ehk index 0 (\"5\"), record 1 has no field 10: its ehk is null and its "
        "hash key is MD5(\"b\"), never the table's first entry. Targets Python aws_kinesis_agg "
        "and Node aws-kinesis-agg deaggregators (give it table entry 0).",
        [R_PRESENCE, R_HASH, P_PYAGG, P_NODE],
        agg([("a", "5", b"1"), ("b", None, b"2")]), kcl=2, strict=2)
    pb = hx("""
        0a 01 61          # pk table[0] = "a"
        12 01 39          # ehk table[0] = "9"
        1a 05 08 00 1a 01 31        # record 0: pk 0, no ehk, data "1"
        1a 07 08 00 10 00 1a 01 32  # record 1: pk 0, ehk index 0 (present, value 0), data "2"
    """)
    dec("decode", "ehk-index-zero-present-vs-absent",
        "Field 10 present with value 0 means ehk table[0] (\"9\"); absent means no ehk. Only "
        "presence decides.", [R_PRESENCE], frame(pb), kcl=2, strict=2)
    dec("decode", "number-like-and-proto-keys",
        "Table b, 2, 10, __proto__, a: each record gets exactly its indexed key. Targets Node "
        "aws-kinesis-agg (reorders number-like keys, drops __proto__) and Fluent Bit (map order).",
        [R_TABLES, P_NODE, P_FLUENT],
        agg([("b", None, b"0"), ("2", None, b"1"), ("10", None, b"2"), ("__proto__", None, b"3"),
             ("a", None, b"4"), ("2", None, b"5")]), kcl=6, strict=6)
    dec("decode", "unicode-partition-keys",
        "UTF-8 table entries (Cyrillic, CJK, non-BMP emoji) come back as text; hash keys are MD5 "
        "of their UTF-8 bytes.", [R_HASH, R_TABLES],
        agg([("ключ", None, b"1"), ("日本語", None, b"2"), ("🔑", None, b"3")]), kcl=3, strict=3)
    dec("decode", "single-record-aggregate",
        "An aggregate holding one record (KPL never writes one, others may) is still "
        "deaggregated: aggregated true, ssn 0.", [R_SSN],
        frame(hx("0a 01 6b  1a 05 08 00 1a 01 78  # table [\"k\"], one record (0, \"x\")")),
        kcl=1, strict=1)
    pb = hx("""
        0a 01 6b                       # pk table[0] = "k"
        1a 15                          # record, 21 bytes:
          08 00                        #   pk index 0
          1a 01 78                     #   data "x"
          22 08 0a 03 65 6e 76 12 01 70  #   tag {key "env", value "p"}
          22 04 0a 02 69 64            #   tag {key "id"} (no value: optional)
    """)
    dec("decode", "tags-are-ignored", "Record tags (field 4) with and without a value are "
        "parsed and ignored.", [R_UNKNOWN], frame(pb), kcl=1, strict=1)
    dec("decode", "ehk-leading-zeros-in-table",
        "A table ehk \"000123\" (not canonical, but leading zeros are allowed when decoding): "
        "explicit_hash_key is the table string as stored, hash key 123.", [R_BIGINT, R_STRICT],
        frame(hx("""
            0a 01 6b              # pk table[0] = "k"
            12 06 303030313233    # ehk table[0] = "000123"
            1a 07 08 00 10 00 1a 01 78   # record: pk 0, ehk 0, data "x"
            1a 05 08 00 1a 01 79         # record: pk 0, data "y"
        """)), kcl=2, strict=2)
    dec("decode", "ehk-max-value", "Table ehk 2^128-1 is in the default range [0, 2^128-1].",
        [R_BIGINT, R_RANGE], agg([("k", str(MAX_HASH), b"x"), ("k", None, b"y")]),
        kcl=2, strict=2)
    dec("decode", "empty-data-records", "Records with empty data (1A 00) decode to empty data.",
        [R_FIELDS], agg([("k", None, b""), ("j", None, b"")]), kcl=2, strict=2)
    dec("decode", "nested-aggregate-not-recursed",
        "A user record whose data is itself a framed aggregate is returned as bytes, not "
        "deaggregated again.", [R_SSN], agg([("k", None, WORKED_DATA), ("k", None, b"z")]),
        kcl=2, strict=2)
    # 130-entry key table, but only four records, using indices 0, 127 (last one-byte
    # varint), 128 (80 01) and 129 (81 01).
    pb = b"".join(f_bytes(1, f"k{i}".encode()) for i in range(130))
    for n, idx in enumerate((0, 127, 128, 129)):
        pb += f_bytes(3, f_varint(1, idx) + f_bytes(3, bytes([n])))
    assert hx("1a 06 08 80 01 1a 01 02") in pb
    dec("decode", "two-byte-pk-indices",
        "A 130-entry key table; records use indices 0, 127, 128 (varint 80 01) and 129 (81 01) "
        "and get keys k0, k127, k128, k129.", [R_SSN, R_FIELDS], frame(pb), kcl=4, strict=4)
    dec("decode", "large-data-field", "A 300-byte data field (two-byte length varints).",
        [R_FIELDS], agg([("k", None, pat(300, 9)), ("k", None, b"")]), kcl=2, strict=2)

    # Shard ranges. Keys with explicit hash keys make the arithmetic obvious.
    data = agg([("a", "100", b"1"), ("b", "200", b"2"), ("c", "300", b"3")])
    dec("decode", "shard-range-all-inside", "Shard range [100, 300] (inclusive) holds hash keys "
        "100, 200, 300: all three records.", [R_RANGE, R_RANGE_IN], data, shard=(100, 300),
        kcl=3, strict=3)
    dec("decode", "shard-range-last-outside-drops-whole-aggregate",
        "Shard range [100, 299]: the third record (300) is outside, so KCL takes back the two "
        "already emitted and yields nothing; strict reports OutsideShardRange at record 3's tag.",
        [R_RANGE, R_STRICT], data, shard=(100, 299), kcl=0,
        # protobuf: 3 pk entries (3 bytes each) + 3 ehk entries (5 bytes each) = 24, then
        # 9-byte records at 24, 33, 42 -> record 2's tag at 4 + 42 = 46
        strict=("OutsideShardRange", 46))
    dec("decode", "shard-range-first-outside",
        "Shard range [101, 300]: the first record (100) is outside: nothing.",
        [R_RANGE, R_STRICT], data, shard=(101, 300), kcl=0,
        strict=("OutsideShardRange", 4 + 3 * 3 + 3 * 5))
    dec("decode", "shard-range-hash-derived-keys",
        "Shard range [hash(\"a\"), hash(\"a\")]: two records under key \"a\" without ehk are "
        "inside (their hash key is MD5(\"a\")).", [R_RANGE, R_HASH],
        agg([("a", None, b"1"), ("a", None, b"2")]), shard=(HK_A, HK_A), kcl=2, strict=2)
    dec("decode", "shard-range-ignored-for-plain-record",
        "A plain record is passed through whatever the shard range (the filter applies to "
        "aggregates only).", [R_PASS, R_RANGE], b"plain", pk="k", shard=(0, 0),
        kcl="passthrough", strict="plain")
    bad = bytearray(WORKED_DATA)
    bad[-1] ^= 0xFF
    dec("decode", "verify-md5-false-wrong-md5-still-decodes",
        "The worked example with its last MD5 byte flipped, verify_md5 false: the MD5 is not "
        "checked, both policies decode three records.", [R_LAYOUT], bytes(bad),
        verify_md5=False, kcl=3, strict=3)


# ---------------------------------------------------------------------------
# malformed vectors (decode kind, defective input)
# ---------------------------------------------------------------------------

def mal(name, description, rules, pb=None, data=None, **kw):
    if data is None:
        data = frame(pb)
    return dec("malformed", name, description, rules, data, **kw)


def malformed_vectors():
    # --- framing -----------------------------------------------------------------
    mal("three-bytes-of-magic", "F3 89 9A: shorter than the magic, a plain record under both "
        "policies.", [R_PASS], data=MAGIC[:3], pk="k", kcl="passthrough", strict="plain")
    mal("magic-only", "Just the 4 magic bytes: KCL passes through; strict TooShort at 4.",
        [R_PASS, R_STRICT], data=MAGIC, pk="k", kcl="passthrough", strict=("TooShort", 4))
    mal("too-short-exactly-20-bytes",
        "Magic + MD5 of the empty protobuf (20 bytes, a formally valid empty aggregate): 16 bytes "
        "or fewer after the magic is not an aggregate for KCL (passthrough); strict TooShort at 4.",
        [R_PASS, R_STRICT], data=MAGIC + md5(b""), pk="k", kcl="passthrough",
        strict=("TooShort", 4))
    mal("too-short-10-bytes", "Magic + 6 bytes: KCL passthrough, strict TooShort at 4.",
        [R_PASS, R_STRICT], data=MAGIC + b"\x0a\x01a\x1a\x00\x00", pk="k", kcl="passthrough",
        strict=("TooShort", 4))
    mal("md5-mismatch", "The worked example with one MD5 byte flipped: KCL passes the whole "
        "record through; strict Md5Mismatch at len-16 = 38.", [R_PASS, R_STRICT],
        data=WORKED_DATA[:-16] + bytes([WORKED_DATA[-16] ^ 1]) + WORKED_DATA[-15:],
        kcl="passthrough", strict=("Md5Mismatch", 38))
    mal("md5-over-magic-and-protobuf",
        "An MD5 computed over magic + protobuf (a common mistake) is a mismatch: passthrough; "
        "strict Md5Mismatch.", [R_LAYOUT, R_PASS],
        data=MAGIC + bytes.fromhex(WORKED_PB_HEX) + md5(MAGIC + bytes.fromhex(WORKED_PB_HEX)),
        kcl="passthrough", strict=("Md5Mismatch", 38))
    mal("one-byte-protobuf-wrong-wire-type",
        "21 bytes: magic, protobuf 08 (field 1 as varint, value missing), MD5. KCL: field 1 "
        "with wire type 0 is skipped as unknown, then the varint is truncated: parse error, "
        "passthrough. Strict: WrongWireType at 4 (checked before the value is read).",
        [R_PASS, R_WRONGWT, R_STRICT], pb=hx("08"), kcl="passthrough",
        strict=("WrongWireType", 4))

    # --- truncation ------------------------------------------------------------------
    W = bytes.fromhex(WORKED_PB_HEX)
    # offsets within W: 0 0a0161 | 3 0a0162 | 6 1203313233 | 11 1a05 0800 1a0178
    #                   18 1a08 0801 1000 1a02797a | 28 1a04 0800 1a00 | 34 end
    mal("truncated-mid-table-entry",
        "Worked-example protobuf cut after 4 bytes (0a 01 61 0a): the tag 0A at offset 3 has no "
        "length. KCL passthrough; strict Truncated at 4+3 = 7.",
        [R_PASS, R_STRICT], pb=W[:4], kcl="passthrough", strict=("Truncated", 7))
    mal("truncated-mid-ehk-entry",
        "Cut after 10 bytes: ehk entry 12 03 '1' '2' missing its last byte. Strict Truncated at "
        "the entry's tag (4+6 = 10).", [R_PASS, R_STRICT], pb=W[:10], kcl="passthrough",
        strict=("Truncated", 10))
    mal("truncated-record-length-exceeds-message",
        "Cut after 24 bytes: record 1 declares 8 bytes but 4 remain. Strict Truncated at the "
        "record's tag (4+18 = 22).", [R_PASS, R_STRICT], pb=W[:24], kcl="passthrough",
        strict=("Truncated", 22))
    mal("truncated-at-field-boundary-is-shorter-aggregate",
        "Cut after 28 bytes, exactly at a top-level field boundary, with the MD5 recomputed: a "
        "valid aggregate of the first two records (truncation that the MD5 cannot catch).",
        [R_LAYOUT, R_SSN], pb=W[:28], kcl=2, strict=2)
    mal("truncated-tag-varint",
        "Protobuf 0a 01 61 80: a tag varint whose continuation byte is the last byte. Strict "
        "Truncated at the tag's first byte (4+3 = 7).", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  80"), kcl="passthrough", strict=("Truncated", 7))
    mal("truncated-length-varint",
        "Record tag 1A followed by an unfinished length varint 85: strict Truncated at the tag.",
        [R_PASS, R_STRICT], pb=hx("0a 01 61  1a 85"), kcl="passthrough",
        strict=("Truncated", 7))
    mal("truncated-data-inside-record",
        "Record length 5 fits, but its data field 1A 09 claims 9 bytes of the 1 left inside the "
        "record: strict Truncated at the data tag (4 + 3 + 2 + 2 = 11).",
        [R_PASS, R_STRICT], pb=hx("""
            0a 01 61           # pk table[0] = "a"
            1a 05              # record, 5 bytes
              08 00            #   pk index 0
              1a 09 78         #   data: claims 9 bytes, 1 inside the record
        """), kcl="passthrough", strict=("Truncated", 11))
    mal("truncated-pk-index-varint-inside-record",
        "Record body 08 80 (pk index varint cut by the end of the record): strict Truncated at "
        "the 08 tag (4+5 = 9).", [R_PASS, R_STRICT], pb=hx("""
            0a 01 61  1a 02  08 80   # record body ends inside the varint
            0a 01 62                 # a later top-level field does not help
        """), kcl="passthrough", strict=("Truncated", 9))
    mal("length-2-pow-60-kcl-empty-field",
        "pk table entry with length varint 2^60 (80 x8, 10): protobuf-java keeps the low 32 "
        "bits (0) so KCL reads an EMPTY entry \"\" and continues; the record then uses key \"\" "
        "(hash MD5 of nothing). Strict: full 64-bit length, Truncated at the entry tag (4).",
        [R_STRICT, R_HASH], pb=hx("""
            0a 80 80 80 80 80 80 80 80 10   # pk table[0]: length 2^60 -> "" for KCL
            1a 05 08 00 1a 01 78            # record: pk 0, data "x"
        """), kcl=1, strict=("Truncated", 4))
    mal("length-2-pow-32-kcl-empty-data",
        "Record data with length varint 2^32 (80 80 80 80 10): KCL reads empty data and "
        "continues with the next field (08 00 = pk index); strict Truncated at the data tag.",
        [R_STRICT], pb=hx("""
            0a 01 61                    # pk table[0] = "a"
            1a 08                       # record, 8 bytes
              1a 80 80 80 80 10         #   data: length 2^32 -> empty for KCL
              08 00                     #   pk index 0
        """), kcl=1, strict=("Truncated", 9))
    mal("length-negative-int32",
        "pk table entry with length FF FF FF FF 0F (2^32-1, -1 as int32): protobuf-java rejects "
        "a negative size (passthrough); strict Truncated at the tag.", [R_PASS, R_STRICT],
        pb=hx("0a ff ff ff ff 0f  61"), kcl="passthrough", strict=("Truncated", 4))

    # --- varints -----------------------------------------------------------------------
    mal("varint-11-bytes",
        "pk index as an 11-byte varint (10 continuation bytes): malformed for both: KCL "
        "passthrough; strict MalformedVarint at the 08 tag (4+5 = 9).", [R_PASS, R_STRICT],
        pb=hx("""
            0a 01 61
            1a 0e  08 80 80 80 80 80 80 80 80 80 80 00  1a 00   # 11-byte varint
        """), kcl="passthrough", strict=("MalformedVarint", 9))
    mal("varint-10th-byte-overflow",
        "pk index 80 x9 7F: 10 bytes, value bits above 64 set. protobuf-java discards them "
        "(value 2^63, int32 cast 0: key \"a\"); strict MalformedVarint at the 08 tag (9).",
        [R_INT32, R_ORDER, R_STRICT], pb=hx("""
            0a 01 61
            1a 0e  08 80 80 80 80 80 80 80 80 80 7f  1a 01 78
        """), kcl=1, strict=("MalformedVarint", 9))
    mal("non-minimal-10-byte-varints",
        "pk index 0 written as 80 x9 00 and data length 1 as 81 80 80 80 80 80 80 80 80 00: "
        "10-byte non-minimal varints are valid for both policies.", [R_ORDER],
        pb=hx("""
            0a 01 61
            1a 17
              08 80 80 80 80 80 80 80 80 80 00          # pk index 0 (10 bytes)
              1a 81 80 80 80 80 80 80 80 80 00 78       # data "x", length 1 in 10 bytes
        """), kcl=1, strict=1)
    mal("non-minimal-tag-varint",
        "Tags written non-minimally (8A 00 for 0A, 9A 80 00 for 1A): valid for both.",
        [R_ORDER], pb=hx("""
            8a 00 01 61                 # pk table[0] = "a", tag 0A as 2 bytes
            9a 80 00 05 08 00 1a 01 78  # record, tag 1A as 3 bytes
        """), kcl=1, strict=1)
    mal("tag-over-32-bits",
        "A tag varint 8A 80 80 80 10 = 2^32 + 10: protobuf-java keeps the low 32 bits (0x0A, "
        "a pk table entry) and decodes; strict MalformedVarint (tag must fit u32) at 4.",
        [R_STRICT], pb=hx("""
            8a 80 80 80 10  01 61      # 2^32 + 10 -> 0A for KCL: pk table[0] = "a"
            1a 05 08 00 1a 01 78
        """), kcl=1, strict=("MalformedVarint", 4))

    # --- tags and wire types ---------------------------------------------------------
    mal("field-number-zero",
        "Tag 02 (field 0, wire type 2): invalid for both. KCL passthrough; strict "
        "FieldNumberZero at 4+3 = 7.", [R_UNKNOWN, R_PASS, R_STRICT],
        pb=hx("0a 01 61  02 01 00  1a 05 08 00 1a 01 78"), kcl="passthrough",
        strict=("FieldNumberZero", 7))
    mal("wire-type-6", "Tag 2E (unknown field 5, wire type 6): invalid wire type. KCL "
        "passthrough; strict InvalidWireType at 7.", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  2e 00  1a 05 08 00 1a 01 78"), kcl="passthrough",
        strict=("InvalidWireType", 7))
    mal("wire-type-7", "Tag 3F (unknown field 7, wire type 7) inside a record: KCL "
        "passthrough; strict InvalidWireType at 4+3+2 = 9.", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  1a 06 3f 08 00 1a 01 78"), kcl="passthrough",
        strict=("InvalidWireType", 9))
    mal("wrong-wire-type-table-entry-skipped",
        "partition_key_table sent as a varint (08 05) before the real entry: KCL skips it as an "
        "unknown field and decodes; strict WrongWireType at 4.", [R_WRONGWT, R_STRICT],
        pb=hx("08 05  0a 01 61  1a 05 08 00 1a 01 78"), kcl=1, strict=("WrongWireType", 4))
    mal("wrong-wire-type-pk-index-skipped",
        "Inside the record, field 1 sent length-delimited (0A 01 07) and then as a varint "
        "(08 00): KCL skips the first and uses the varint; strict WrongWireType at 4+3+2 = 9.",
        [R_WRONGWT, R_STRICT], pb=hx("0a 01 61  1a 08 0a 01 07 08 00 1a 01 78"), kcl=1,
        strict=("WrongWireType", 9))
    mal("wrong-wire-type-data-only",
        "The record's data sent only as a varint (tag 18 = field 3, wire type 0): KCL "
        "skips it, then the required data field is missing: passthrough. Strict WrongWireType "
        "at 4+3+2+2 = 11 (before the missing field is noticed).",
        [R_WRONGWT, R_REQUIRED, R_STRICT],
        pb=hx("0a 01 61  1a 04 08 00 18 05"), kcl="passthrough", strict=("WrongWireType", 11))
    mal("wrong-wire-type-records-fixed32",
        "Top-level field 3 sent as fixed32 (1D + 4 bytes): KCL skips it (zero records); strict "
        "WrongWireType at 7.", [R_WRONGWT, R_ZERO, R_STRICT],
        pb=hx("0a 01 61  1d 01 02 03 04"), kcl=0, strict=("WrongWireType", 7))

    # --- unknown fields and groups ---------------------------------------------------
    mal("unknown-fields-every-wire-type",
        "Unknown fields of wire types 0, 1, 2, 3/4 (group) and 5 at top level, inside a record "
        "and inside a tag are all skipped by both policies.", [R_UNKNOWN], pb=hx("""
            28 96 01                        # field 5 varint 150
            31 01 02 03 04 05 06 07 08      # field 6 fixed64
            3a 03 61 62 63                  # field 7 length-delimited "abc"
            43 48 01 44                     # field 8 group { field 9 varint 1 }
            4d 01 02 03 04                  # field 9 fixed32
            0a 01 61                        # pk table[0] = "a"
            1a 1f                           # record, 31 bytes
              28 01                         #   field 5 varint
              08 00                         #   pk index 0
              31 00 00 00 00 00 00 00 00    #   field 6 fixed64
              1a 01 78                      #   data "x"
              3a 00                         #   field 7 empty bytes
              43 44                         #   field 8 empty group
              22 09                         #   tag, 9 bytes
                0a 01 6b                    #     key "k"
                28 00                       #     field 5 varint
                4b 4c                       #     field 9 empty group
                60 00                       #     field 12 varint (unknown)
        """), kcl=1, strict=1)
    # 100 nested groups are allowed; the 101st exceeds the recursion limit.
    nest = lambda n: hx("2b") * n + hx("2c") * n      # field 5 start/end group
    mal("groups-nested-100-deep-ok",
        "100 nested unknown groups (field 5, 2B ... 2C) at top level are within the depth "
        "limit of 100 and skipped; one record follows.", [R_UNKNOWN],
        pb=nest(100) + hx("0a 01 61  1a 05 08 00 1a 01 78"), kcl=1, strict=1)
    mal("groups-nested-101-deep-recursion-limit",
        "101 nested groups exceed the depth limit: KCL passthrough; strict RecursionLimit at "
        "the 101st start-group tag (4 + 100 = 104).", [R_PASS, R_STRICT],
        pb=nest(101) + hx("0a 01 61  1a 05 08 00 1a 01 78"), kcl="passthrough",
        strict=("RecursionLimit", 104))
    mal("groups-nested-skipped-with-fields",
        "A group containing fields of every wire type and a nested group of another field "
        "number, inside a record: skipped by both.", [R_UNKNOWN], pb=hx("""
            0a 01 61
            1a 14                                   # record, 20 bytes
              08 00
              2b                                    #   group 5 start
                30 01                               #     field 6 varint
                3a 02 08 00                         #     field 7 bytes (looks like a pk index)
                53                                  #     group 10 start
                  0d 01 02 03 04                    #       field 1 fixed32 (inside a group)
                54                                  #     group 10 end
              2c                                    #   group 5 end
              1a 01 78
        """), kcl=1, strict=1)
    mal("end-group-at-top-level",
        "A lone end-group tag 2C at top level: KCL passthrough (ends the message, end tag "
        "check fails); strict UnexpectedEndGroup at 7.", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  2c  1a 05 08 00 1a 01 78"), kcl="passthrough",
        strict=("UnexpectedEndGroup", 7))
    mal("end-group-inside-record",
        "An end-group tag 2C inside a record body: KCL passthrough; strict UnexpectedEndGroup "
        "at 4+3+2+2 = 11.", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  1a 06 08 00 2c 1a 01 78"), kcl="passthrough",
        strict=("UnexpectedEndGroup", 11))
    mal("group-end-wrong-field-number",
        "Group 5 started (2B) and closed with end-group 6 (34): KCL passthrough; strict "
        "UnexpectedEndGroup at the 34 (4+3+1+2 = 10).", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  2b 28 01 34  1a 05 08 00 1a 01 78"), kcl="passthrough",
        strict=("UnexpectedEndGroup", 10))
    mal("group-unclosed",
        "Group 5 started at the end of a record body and never closed: KCL passthrough; strict "
        "Truncated at the start-group tag (4+3+2+5 = 14).", [R_PASS, R_STRICT],
        pb=hx("0a 01 61  1a 08 08 00 1a 01 78 2b 28 01  # group 5 {5: 1} never closed"),
        kcl="passthrough", strict=("Truncated", 14))

    # --- field order, repetition -----------------------------------------------------
    mal("interleaved-fields",
        "Records before and between table entries, record fields in reverse order (data, ehk, "
        "pk index): valid for both; indices refer to the final tables.", [R_ORDER], pb=hx("""
            1a 07 1a 01 78 10 00 08 01     # record 0: data "x", ehk 0, pk 1
            0a 01 61                       # pk table[0] = "a"
            12 01 37                       # ehk table[0] = "7"
            1a 05 1a 01 79 08 00           # record 1: data "y", pk 0
            0a 01 62                       # pk table[1] = "b"
        """), kcl=2, strict=2)
    mal("repeated-scalars-last-wins",
        "pk index given twice (1 then 0), ehk index twice (5 then 0), data twice (\"old\" then "
        "\"new\"): the last value of each wins for both policies.", [R_ORDER], pb=hx("""
            0a 01 61  0a 01 62             # pk table a, b
            12 01 39                       # ehk table ["9"]
            1a 12                          # record, 18 bytes
              08 01  10 05  1a 03 6f 6c 64  # pk 1, ehk 5 (out of range), data "old"
              08 00  10 00  1a 03 6e 65 77  # then pk 0, ehk 0, data "new"
        """), kcl=1, strict=1)

    # --- required fields -------------------------------------------------------------
    mal("missing-pk-index", "The second record lacks field 1 (pk index): a missing required "
        "field fails the whole parse, so KCL passes the record through (the valid first record "
        "is not emitted); strict MissingPartitionKeyIndex at the second record's tag "
        "(4+3+7 = 14).", [R_REQUIRED, R_PASS, R_STRICT],
        pb=hx("""
            0a 01 61                 # pk table ["a"]
            1a 05 08 00 1a 01 78     # record 0: valid
            1a 03 1a 01 79           # record 1: data only
        """), kcl="passthrough", strict=("MissingPartitionKeyIndex", 14))
    mal("missing-data", "A record with a pk index but no data: KCL passthrough; strict "
        "MissingData at the record tag (7).", [R_REQUIRED, R_PASS, R_STRICT],
        pb=hx("0a 01 61  1a 02 08 00"), kcl="passthrough", strict=("MissingData", 7))
    mal("missing-both-reports-pk-index",
        "An empty record body (1A 00): both required fields missing; strict reports "
        "MissingPartitionKeyIndex (checked first) at 7.", [R_REQUIRED, R_PASS, R_STRICT],
        pb=hx("0a 01 61  1a 00"), kcl="passthrough", strict=("MissingPartitionKeyIndex", 7))
    mal("missing-tag-key",
        "A record tag with a value but no key: Tag.key is required: KCL passthrough; strict "
        "MissingTagKey at the 22 tag inside the record (4+3+2+5 = 14).",
        [R_REQUIRED, R_PASS, R_STRICT],
        pb=hx("0a 01 61  1a 0a 08 00 1a 01 78 22 03 12 01 76"), kcl="passthrough",
        strict=("MissingTagKey", 14))

    # --- indices -----------------------------------------------------------------------
    three = lambda i2: hx(f"""
        0a 01 61  0a 01 62                  # pk table a, b
        1a 05 08 00 1a 01 31                # record 0: key a, data "1"
        1a {1 + len(varint(i2)) + 3:02x} 08 {varint(i2).hex()} 1a 01 32   # record 1: index i2
        1a 05 08 01 1a 01 33                # record 2: key b, data "3"
    """)
    mal("kcl-bad-pk-index-keeps-prefix",
        "Record 1 has pk index 2 of a 2-entry table: KCL keeps record 0 and drops records 1 and "
        "2 (no passthrough); strict PartitionKeyIndexOutOfRange at record 1's tag (4+6+7 = 17). "
        "Targets the Go deaggregator (panics on an index out of range).",
        [R_KEEP, R_STRICT, P_GODEAGG], pb=three(2), kcl=1,
        strict=("PartitionKeyIndexOutOfRange", 17))
    mal("kcl-pk-index-2-pow-32-is-entry-0",
        "pk index 2^32: KCL casts to int32, giving entry 0 (\"a\"), so all three records decode; "
        "strict PartitionKeyIndexOutOfRange at 17.", [R_INT32, R_STRICT], pb=three(2**32),
        kcl=3, strict=("PartitionKeyIndexOutOfRange", 17))
    mal("kcl-pk-index-2-pow-32-plus-1-is-entry-1",
        "pk index 2^32+1 casts to 1 (\"b\") for KCL.", [R_INT32, R_STRICT],
        pb=three(2**32 + 1), kcl=3, strict=("PartitionKeyIndexOutOfRange", 17))
    mal("kcl-pk-index-2-pow-31-negative",
        "pk index 2^31 is negative as int32: out of range for KCL (keep record 0, drop the "
        "rest); strict PartitionKeyIndexOutOfRange.", [R_INT32, R_KEEP, R_STRICT],
        pb=three(2**31), kcl=1, strict=("PartitionKeyIndexOutOfRange", 17))
    mal("kcl-pk-index-2-pow-32-minus-1-negative",
        "pk index 2^32-1 is -1 as int32: out of range (keep record 0).",
        [R_INT32, R_KEEP, R_STRICT], pb=three(2**32 - 1), kcl=1,
        strict=("PartitionKeyIndexOutOfRange", 17))
    mal("kcl-pk-index-2-pow-64-minus-1",
        "pk index 2^64-1 (10-byte varint FF..01) is -1 as int32: out of range (keep record 0).",
        [R_INT32, R_KEEP, R_STRICT], pb=three(2**64 - 1), kcl=1,
        strict=("PartitionKeyIndexOutOfRange", 17))
    mal("kcl-bad-pk-index-first-record-yields-nothing",
        "The first record's pk index is out of range: KCL keeps nothing (zero user records, "
        "not a passthrough); strict PartitionKeyIndexOutOfRange at 7.",
        [R_KEEP, R_STRICT], pb=hx("0a 01 61  1a 05 08 01 1a 01 78  1a 05 08 00 1a 01 79"),
        kcl=0, strict=("PartitionKeyIndexOutOfRange", 7))
    mal("kcl-bad-ehk-index-keeps-prefix",
        "Record 1 has ehk index 1 of a 1-entry ehk table: KCL keeps record 0, drops the rest; "
        "strict ExplicitHashKeyIndexOutOfRange at record 1's tag (4+3+3+9 = 19).",
        [R_KEEP, R_STRICT, P_GODEAGG], pb=hx("""
            0a 01 61                       # pk table ["a"]
            12 01 35                       # ehk table ["5"]
            1a 07 08 00 10 00 1a 01 31     # record 0: ehk 0
            1a 07 08 00 10 01 1a 01 32     # record 1: ehk 1 (out of range)
            1a 05 08 00 1a 01 33           # record 2: no ehk
        """), kcl=1, strict=("ExplicitHashKeyIndexOutOfRange", 19))
    mal("ehk-index-with-empty-ehk-table",
        "A record with field 10 (index 0) while the ehk table is empty: out of range (presence "
        "counts, not the default). KCL zero records; strict ExplicitHashKeyIndexOutOfRange at 7.",
        [R_PRESENCE, R_KEEP, R_STRICT], pb=hx("0a 01 61  1a 07 08 00 10 00 1a 01 78"),
        kcl=0, strict=("ExplicitHashKeyIndexOutOfRange", 7))

    # --- explicit hash key strings ---------------------------------------------------
    def ehk_pb(ehk_bytes):
        n = len(ehk_bytes)
        return hx(f"""
            0a 01 61                       # pk table ["a"]
            12 01 35                       # ehk table[0] = "5"
            12 {n:02x} {ehk_bytes.hex()}   # ehk table[1] = the string under test
            1a 07 08 00 10 00 1a 01 31     # record 0: ehk "5"
            1a 07 08 00 10 01 1a 01 32     # record 1: ehk table[1]
            1a 05 08 00 1a 01 33           # record 2: no ehk
        """)
    mal("kcl-ehk-abc-keeps-prefix",
        "ehk table entry \"abc\" used by record 1: BigInteger fails, KCL keeps record 0 and "
        "drops the rest; strict InvalidExplicitHashKey at the entry's tag (4+6 = 10).",
        [R_BIGINT, R_KEEP, R_STRICT], pb=ehk_pb(b"abc"), kcl=1,
        strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-empty-string-keeps-prefix",
        "ehk table entry \"\": BigInteger(\"\") fails: keep record 0, drop the rest; strict "
        "InvalidExplicitHashKey at 10.", [R_BIGINT, R_KEEP, R_STRICT], pb=ehk_pb(b""), kcl=1,
        strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-leading-space-keeps-prefix",
        "ehk table entry \" 1\": BigInteger does not trim: keep record 0, drop the rest.",
        [R_BIGINT, R_KEEP, R_STRICT], pb=ehk_pb(b" 1"), kcl=1,
        strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-minus-one-drops-whole-aggregate",
        "ehk table entry \"-1\": BigInteger parses it to -1, outside [0, 2^128-1], so KCL "
        "drops the WHOLE aggregate (record 0 taken back); strict InvalidExplicitHashKey at 10.",
        [R_BIGINT, R_RANGE, R_STRICT], pb=ehk_pb(b"-1"), kcl=0,
        strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-2-pow-128-drops-whole-aggregate",
        "ehk table entry 2^128: above the range, KCL drops the whole aggregate; strict "
        "InvalidExplicitHashKey.", [R_BIGINT, R_RANGE, R_STRICT],
        pb=ehk_pb(str(2**128).encode()), kcl=0, strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-plus-sign-accepted",
        "ehk table entry \"+7\": Java BigInteger accepts a leading '+', so KCL decodes all three "
        "(hash key 7, ehk string \"+7\"); strict InvalidExplicitHashKey.",
        [R_BIGINT, R_STRICT], pb=ehk_pb(b"+7"), kcl=3, strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-minus-zero-accepted",
        "ehk table entry \"-0\" is 0 for BigInteger, inside the range: KCL decodes all three; "
        "strict InvalidExplicitHashKey.", [R_BIGINT, R_STRICT], pb=ehk_pb(b"-0"), kcl=3,
        strict=("InvalidExplicitHashKey", 10))
    mal("kcl-ehk-invalid-utf8-keeps-prefix",
        "ehk table entry 31 FF: decoded lossily to \"1\\uFFFD\", BigInteger fails: keep record "
        "0; strict InvalidUtf8 at 10.", [R_LOSSY, R_BIGINT, R_KEEP, R_STRICT],
        pb=ehk_pb(b"1\xff"), kcl=1, strict=("InvalidUtf8", 10))
    mal("invalid-ehk-entry-unused",
        "An ehk table entry \"xyz\" that no record uses: KCL never parses it and decodes both "
        "records; strict rejects the entry itself (InvalidExplicitHashKey at 7).",
        [R_BIGINT, R_STRICT], pb=hx("""
            0a 01 61                 # pk table ["a"]
            12 03 78 79 7a           # ehk table ["xyz"], never referenced
            1a 05 08 00 1a 01 31
            1a 05 08 00 1a 01 32
        """), kcl=2, strict=("InvalidExplicitHashKey", 7))
    mal("kcl-invalid-utf8-partition-key",
        "pk table entry 61 FF 62 (invalid UTF-8): the vector keeps the key's raw bytes "
        "(partition_key_b64); KCL hands out the Java String \"a\\uFFFDb\" and hashes its UTF-8 "
        "(MD5 of 61 EF BF BD 62); strict InvalidUtf8 at 4.",
        [R_LOSSY, R_HASH, R_STRICT], pb=hx("0a 03 61 ff 62  1a 05 08 00 1a 01 78"), kcl=1,
        strict=("InvalidUtf8", 4))
    mal("kcl-invalid-utf8-truncated-sequence-key",
        "pk table entry E2 82 (a truncated 3-byte sequence) then 41: maximal-subpart "
        "replacement gives one U+FFFD: hash MD5(EF BF BD 41); strict InvalidUtf8.",
        [R_LOSSY, R_HASH, R_STRICT], pb=hx("0a 03 e2 82 41  1a 05 08 00 1a 01 78"), kcl=1,
        strict=("InvalidUtf8", 4))
    mal("kcl-invalid-utf8-surrogate-key",
        "pk table entry ED A0 80 (an encoded UTF-16 surrogate, invalid in UTF-8): Java's decoder "
        "(KCL) replaces the whole sequence with ONE U+FFFD (Python and Rust give three), so the "
        "hash is MD5(EF BF BD); observed with Java 17 here. Strict: InvalidUtf8.",
        [R_LOSSY, R_HASH, R_STRICT], pb=hx("0a 03 ed a0 80  1a 05 08 00 1a 01 78"), kcl=1,
        strict=("InvalidUtf8", 4))
    mal("go-deaggregator-error-is-per-record",
        "A truncated aggregate (record cut short) is one passthrough record: the error concerns "
        "only this Kinesis record. Targets the Go deaggregator (a protobuf error fails the whole "
        "batch).", [R_PASS, P_GODEAGG], pb=W[:33], kcl="passthrough", strict=("Truncated", 32))


def build():
    VECTORS.clear()
    sanity_checks()
    hash_key_vectors()
    encode_vectors()
    decode_vectors()
    malformed_vectors()
    files = {}
    for full, obj in VECTORS.items():
        text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        files[os.path.join(CORPUS, *full.split("/")) + ".json"] = text.encode("utf-8")
    return files


def existing_files():
    found = set()
    if os.path.isdir(CORPUS):
        for root, _dirs, names in os.walk(CORPUS):
            for n in names:
                if n.endswith(".json"):
                    found.add(os.path.join(root, n))
    return found


def main(argv):
    check = "--check" in argv[1:]
    files = build()
    on_disk = existing_files()
    stale = sorted(on_disk - set(files))
    if check:
        bad = []
        for path, content in sorted(files.items()):
            try:
                with open(path, "rb") as f:
                    if f.read() != content:
                        bad.append(path)
            except FileNotFoundError:
                bad.append(path)
        bad += stale
        for p in bad:
            print(f"differs: {os.path.relpath(p, CORPUS)}", file=sys.stderr)
        if bad:
            print(f"{len(bad)} corpus file(s) differ; run python3 vectors/derive/derive.py",
                  file=sys.stderr)
            return 1
        print(f"corpus up to date: {len(files)} vectors")
        return 0
    for p in stale:
        os.remove(p)
    for path, content in sorted(files.items()):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    counts = {}
    for full in VECTORS:
        cat = full.split("/")[0]
        counts[cat] = counts.get(cat, 0) + 1
    print(f"wrote {len(files)} vectors: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
