#!/usr/bin/env python3
"""Runs the corpus through the real Fluent Bit and writes the fixtures (see capture.sh, which
prepares the certificate and the dump plugin and calls this).

kinesis_streams.json: for every option set, the stdin corpus (NDJSON lines) and the forward
corpus (msgpack records sent over the forward protocol) go through one Fluent Bit with two
outputs on the same chunks: kinesis_streams (to kinesis_mock.py over TLS) and
kpl_capture_dump (dump_plugin.rs: the chunks exactly as outputs get them). A sentinel record
follows every case, so that the events and the Kinesis records of each case can be told
apart without any model of what kinesis_streams does.

record_accessor.json: for every pattern, the accessor corpus goes through a Fluent Bit whose
forward output has `tag <pattern>` (the record accessor renders each record's tag) to
forward_receiver.py, and through kpl_capture_dump.

usage: capture.py WORK_DIR DUMP_PLUGIN CERT_PEM KEY_PEM FIXTURES_DIR
"""
import base64
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mpack  # noqa: E402

ROOT = HERE.parents[4]
FLUENT_BIT = os.environ.get("FLUENT_BIT") or str(
    ROOT.parent / "shared" / "tools" / "fluent-bit" / "bin" / "fluent-bit"
)
SENTINEL = re.compile(rb"@@S(\d+)@@")

# ---------------------------------------------------------------------------------------
# Corpora

STDIN_CASES = [
    ("plain", b'{"message":"hello","n":1}'),
    ("unicode", '{"message":"héllo wörld ✓ 中文 ß ÿ"}'.encode()),
    ("emoji", '{"message":"😀 👍🏽 🇫🇷 𝄞"}'.encode()),
    ("escapes", rb'{"message":"quote \" backslash \\ slash \/ b \b f \f n \n r \r t \t end"}'),
    ("control", rb'{"message":"\u0001\u0002\u000b\u001f\u007f\u0000 end"}'),
    ("del_in_plain_block", rb'{"message":"0123456789abcde\u007f"}'),
    ("del_short", rb'{"message":"0123456789abcd\u007f"}'),
    ("del_after_slow_block", rb'{"message":"\"123456789abcdef0123456789abcde\u007f\u007f"}'),
    ("del_many", b'{"message":"' + b"\\u007f" * 40 + b'"}'),
    ("separators", rb'{"message":"line\u2028sep\u2029 bom\ufeff nbsp\u00a0"}'),
    ("escaped_unicode", rb'{"message":"\u00e9\u4e2d\ud83d\ude00"}'),
    ("lone_surrogate", rb'{"message":"\ud800 x"}'),
    (
        "floats",
        b'{"a":0.5,"b":1.0,"c":1e300,"d":-0.0,"e":1.5e-7,"f":123456789.123456789,"g":0.1,'
        b'"h":1e15,"i":1e16,"j":1e17,"k":1e19,"l":9.2233720368547758e18,"m":2.5e-5,"n":100.0,'
        b'"o":3.14159,"p":-2.5,"q":1e-300,"r":5e-324,"s":1.7976931348623157e308,"t":1e21,'
        b'"u":0.000123456789,"v":1e-5,"w":12345678901234567890.0,"x":-1e-7,"y":1e18,'
        b'"z":-9.2233720368547758e18}',
    ),
    (
        "ints",
        b'{"a":18446744073709551615,"b":-9223372036854775808,"c":9223372036854775807,"d":-1,'
        b'"e":0,"f":4294967296,"g":-4294967296,"h":127,"i":128,"j":-32,"k":-33}',
    ),
    ("int_overflow", b'{"a":18446744073709551616,"b":-9223372036854775809,"c":123456789012345678901234567890}'),
    ("nested", b'{"a":{"b":{"c":[1,[2,[3,{}]],[]]}},"e":[],"f":{"g":null}}'),
    ("empty", b"{}"),
    ("bools_null", b'{"t":true,"f":false,"n":null}'),
    ("long", b'{"message":"' + b"x" * 2000 + b'"}'),
    ("long_unicode", ('{"message":"' + "é€😀" * 100 + '"}').encode()),
    ("dup_keys", b'{"a":1,"a":2,"b":3,"a":4}'),
    ("key_escapes", rb'{"k\"ey":1,"\u00fc":2,"tab\tkey":3,"":4}'),
    ("invalid_utf8_raw", b'{"message":"bad \xff\xfe byte \xc3 end \xe2\x82"}'),
    ("overlong_raw", b'{"message":"\xc0\xaf \xe0\x80\xaf \xed\xa0\x80"}'),
    ("deep_60", b'{"d":' + b"[" * 60 + b"1" + b"]" * 60 + b"}"),
    ("big_map", b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(100)) + b"}"),
    ("multi_objects", b'{"a":1}{"b":2}'),
    ("log_key_string", b'{"message":"text","other":1}'),
    ("log_key_number", b'{"message":12345}'),
    ("log_key_small_number", b'{"message":42}'),
    ("log_key_float", b'{"message":0.5}'),
    ("log_key_map", b'{"message":{"a":1,"b":"x"}}'),
    ("log_key_array", b'{"message":[1,2,3]}'),
    ("log_key_null", b'{"message":null}'),
    ("log_key_true", b'{"message":true}'),
    ("log_key_empty", b'{"message":""}'),
    ("log_key_escaped", rb'{"message":"a\"b\\c\n"}'),
    ("log_key_unicode", '{"message":"é😀"}'.encode()),
    ("log_key_prefix", b'{"m":"short","message":"full"}'),
    ("log_key_empty_key", b'{"":"empty key","message":"full"}'),
    ("log_key_longer", b'{"messages":"longer key"}'),
    ("log_key_missing", b'{"other":"x"}'),
    ("log_key_dup", b'{"message":"a","message":"b"}'),
    ("log_key_nul_key", rb'{"message\u0000x":"nul in key"}'),
]


def m(*pairs):
    """A msgpack map from (key bytes, value bytes) pairs already encoded."""
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)


def s(text):
    return mpack.str_(text)


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


# Strings that are not valid UTF-8 (or are, in odd ways), as raw str payloads.
ODD_STRINGS = [
    b"ab\xff",
    b"\xffabcdefgh",
    b"\xfeabcdefgh",
    b"ab\xc3",
    b"\xc3(x",
    b"\x80x",
    b"\xc0\x80 \xc1\xbf",
    b"\xe0\x80\x80 \xe0\x80\xaf",
    b"\xed\xa0\x80 \xed\xbf\xbf",
    b"\xf4\x90\x80\x80 x",
    b"\xf5\x80\x80\x80 x",
    b"\xf8\x88\x80\x80\x80 x",
    b"\xfc\x84\x80\x80\x80\x80 x",
    b"\xf0\x9f\x98",
    b"\xf0\x9f\x98\x80\xff",
    b"0123456789abcdef\xff0123456789abcdef",
    b"a\x00b",
    b"\x7f" * 20,
    b"0123456789abcdef\x7f0123456789abcde\x7f",
    b"\xe2\x82\xac\xe2\x82",
    b"\xf7\xbf\xbf\xbf x",
    b"\xfb\xbf\xbf\xbf\xbf",
]

FORWARD_CASES = [
    ("float32", m((s("a"), h("ca 3dcccccd")), (s("b"), h("ca 3f800000")), (s("c"), h("ca 7fc00000")),
                  (s("d"), h("ca ff800000")), (s("e"), h("ca 4b800001")))),
    ("nan_inf", m((s("nan"), h("cb 7ff8000000000000")), (s("negnan"), h("cb fff8000000000000")),
                  (s("inf"), h("cb 7ff0000000000000")), (s("ninf"), h("cb fff0000000000000")))),
    ("two_pow_63", m((s("a"), h("cb 43e0000000000000")), (s("b"), h("cb c3e0000000000000")))),
    ("bin", m((s("b"), h("c4 03 616263")), (s("e"), h("c4 00")), (s("u"), h("c4 02 c3a9")),
              (s("q"), h("c4 03 22 5c 0a")))),
    ("ext", m((s("x"), h("d4 05 7f")), (s("y"), h("d5 01 80ff")), (s("z"), h("c7 03 02 000102")),
              (s("t"), h("d7 00 0000000100000002")), (s("e"), h("c7 00 09")))),
    ("non_string_keys", m((h("01"), s("int")), (h("ff"), s("neg")), (h("c0"), s("nil")),
                          (h("c3"), s("true")), (h("91 01"), s("array")), (h("80"), s("map")),
                          (h("cb 3ff8000000000000"), s("float")), (h("c4 03 62696e"), s("bin")))),
    ("dup_str_and_bin_keys", m((s("a"), h("01")), (h("c4 01 61"), h("02")), (s("a"), h("03")),
                               (h("c4 01 61"), h("04")))),
    ("encodings", m((s("str8"), h("d9 02 6162")), (s("str16"), h("da 0001 63")),
                    (s("i8"), h("d0 05")), (s("i64"), h("d3 0000000000000005")),
                    (s("u16"), h("cd 0001")), (s("i16neg"), h("d1 ff00")),
                    (s("arr16"), h("dc 0001 01")), (s("map16"), h("de 0001 a1 6b 01")))),
    ("odd_strings", bytes([0xDE, 0, len(ODD_STRINGS)]) + b"".join(
        s("s%02d" % i) + s(v) for i, v in enumerate(ODD_STRINGS))),
    ("odd_keys", m((s(b"\xff"), h("01")), (s(b"k\x00nul"), h("02")), (s(b"\x7f"), h("03")))),
    ("log_key_bin_key", m((h("c4 07 6d657373616765"), s("from a bin key")))),
    ("log_key_int_after", m((s("message"), s("x")), (h("01"), s("int keyed")), (h("02"), s("again")),
                            (s("other"), s("no")), (h("03"), s("not after a match")))),
    ("log_key_nul_suffix", m((s(b"message\x00tail"), s("nul after log_key")))),
    ("log_key_prefix_keys", m((s("mess"), s("prefix")), (s("messagex"), s("longer")),
                              (s("message"), s("exact")))),
    ("log_key_bin_value", m((s("message"), h("c4 03 616263")))),
    ("log_key_ext_value", m((s("message"), h("d5 01 0102")))),
    ("log_key_float32", m((s("message"), h("ca 3dcccccd")))),
    ("log_key_invalid_utf8", m((s("message"), s(b"ab\xff\xc3(")))),
    ("log_key_two_bytes", m((s("message"), s("ab")))),
    ("log_key_one_byte", m((s("message"), s("a")))),
    ("log_key_negative", m((s("message"), h("d0 85")))),
    ("time_zero", m((s("a"), h("01")))),
    ("time_max", m((s("a"), h("01")))),
    ("time_ns_max", m((s("a"), h("01")))),
]

# Event times of the forward corpus (the stdin corpus gets the ingestion time).
FORWARD_TIMES = {
    "time_zero": (0, 0),
    "time_max": (0xFFFFFFFD, 999_999_999),
    "time_ns_max": (1_700_000_000, 999_999_999),
}


def forward_time(index, name):
    if name in FORWARD_TIMES:
        return FORWARD_TIMES[name]
    return 1_700_000_000 + index * (86400 * 37 + 3607), (index * 123_456_789) % 1_000_000_000


OPTION_SETS = [
    ("defaults", {}),
    ("log_key", {"log_key": "message"}),
    ("time_key", {"time_key": "t"}),
    ("time_key_ms", {"time_key": "t", "time_key_format": "%Y-%m-%dT%H:%M:%S.%3NZ"}),
    (
        "time_key_mixed",
        {
            "time_key": "time",
            "time_key_format": "%s|%L|%9N|%a %d %b %Y %j %U %V %G %p %Z %z %%|%-d %_H %^a %10Y %Ez %Oq",
        },
    ),
]
# Not captured: a time_key_format whose text is empty or does not fit 12 × its length ("%c"):
# Fluent Bit 5.1.1 then frees an uninitialised pointer in process_event and aborts
# ("free(): invalid pointer"), seen with time_key_format=%c.

ACCESSOR_LINES = [
    '{"log":"hello","n":42,"neg":-7,"big":18446744073709551615,"f":0.5,"f2":1e24,"f3":-0.0,'
    '"f4":123456.789,"ok":true,"no":false,"none":null,"kubernetes":{"pod_name":"web-1",'
    '"labels":{"app.kubernetes.io/name":"web"},"it\'s":"quoted","arr":[10,20]},'
    '"arr":["zero",[1]],"key-with/chars":"odd","dup":"first","dup":"last","a.b":"dotted",'
    '"emoji":"😀","TAGX":"tagx"}',
    '{"log":"second","kubernetes":{"pod_name":"web-2","labels":"flat"},"arr":[]}',
    '{"log":{"nested":1},"n":-9223372036854775808,"f":1e300,"kubernetes":[1,2]}',
]

# Patterns; an index list names the events for which our `render` gives None by design (nil,
# map, array or missing values, where Fluent Bit prints "null", JSON or nothing).
ACCESSOR_PATTERNS = [
    ("$log", [2]),
    ("$n", [1]),
    ("$neg", [1, 2]),
    ("$big", [1, 2]),
    ("$f", [1]),
    ("$f2", [1, 2]),
    ("$f3", [1, 2]),
    ("$f4", [1, 2]),
    ("$ok", [1, 2]),
    ("$no", [1, 2]),
    ("$none", [0, 1, 2]),
    ("$kubernetes", [0, 1, 2]),
    ("$arr", [0, 1, 2]),
    ("$missing", [0, 1, 2]),
    ("$kubernetes['pod_name']", [2]),
    ("$kubernetes['labels']['app.kubernetes.io/name']", [1, 2]),
    ("$kubernetes['it''s']", [1, 2]),
    ("$kubernetes['arr'][1]", [1, 2]),
    ("$kubernetes[1]", [0, 1]),
    ("$arr[0]", [1, 2]),
    ("$arr[1][0]", [1, 2]),
    ("$arr[5]", [0, 1, 2]),
    ("$log['x']", [2]),
    ("$key-with/chars", [1, 2]),
    ("$dup", [1, 2]),
    ("$emoji", [1, 2]),
    ("$a.b", [0, 1, 2]),
    ("app-$kubernetes['pod_name']", [2]),
    ("app-$kubernetes['pod_name'] x", [2]),
    ("$log.$n,$ok", [1, 2]),
    ("$log.", [2]),
    ("$log.x", [2]),
    ("ab$", []),
    ("a$", []),
    ("$TAG", []),
    ("$TAG[0]-$TAG[2]", []),
    ("$TAG[5]x", []),
    ("$TAGX", []),
    ("$TAG$log", []),
    ("$TAG[", []),
    ("$TAG[1", []),
    ("x$TAG[1]y", []),
    ("$TAG[-1]z", []),
    ("$TAG[ 2]", []),
    ("plain text", []),
    ("$arr\t[0]", [1, 2]),
    ("$log\"x\"", [2]),
    # Fluent Bit refuses these at startup, or logs an error for them: we refuse them.
    ("$ x", None),
    ("$a['b", None),
    ("$a[", None),
    ("$a['b'x]", None),
    ("$a[01]", None),
    ("$a[-1]", None),
    ('$a["b"]', None),
    ("app-$kubernetes['pod_name']-x", None),
    ("x $kübernetes", None),
    ("$a]", None),
    ("$1", None),
    ("$log\tx", None),
    ("$log$n", None),
    ("$n'.x", None),
]

# ---------------------------------------------------------------------------------------
# Processes


class Children:
    """Every process started here, stopped at the end whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kwargs):
        proc = subprocess.Popen(args, **kwargs)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_file(path, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("fluent-bit exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def read_dump(path):
    """The events of every chunk in a dump file, in order, as (decoded, raw) pairs."""
    data = path.read_bytes() if path.exists() else b""
    events, flushes, pos = [], 0, 0
    while pos < len(data):
        tag_len = int.from_bytes(data[pos:pos + 4], "little")
        pos += 4 + tag_len
        size = int.from_bytes(data[pos:pos + 8], "little")
        pos += 8
        events.extend(mpack.split(data[pos:pos + size]))
        pos += size
        flushes += 1
    return events, flushes


def read_records(path):
    records = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            body = json.loads(json.loads(line)["body"])
            records.extend(base64.b64decode(r["Data"]) for r in body["Records"])
    return records


def fb_env(dump):
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="capture",
        AWS_SECRET_ACCESS_KEY="capture",
        AWS_EC2_METADATA_DISABLED="true",
        KPL_CAPTURE_DUMP=str(dump),
        TZ="UTC",
    )
    return env


def kinesis_args(ctx, options):
    args = [
        "-o", "kinesis_streams", "-m", "*",
        "-p", "stream=capture", "-p", "region=us-east-1", "-p", "endpoint=localhost",
        "-p", f"port={ctx['kinesis_port']}", "-p", f"tls.ca_file={ctx['cert']}",
        "-p", "workers=1",
    ]
    for key, value in options.items():
        args += ["-p", f"{key}={value}"]
    return args + ["-o", "kpl_capture_dump", "-m", "*"]


def sentinel_line(i):
    return b'{"message":"@@S%d@@"}' % i


def run_kinesis(ctx, run, input_kind, options):
    """One Fluent Bit run: (events, records, log)."""
    work = ctx["work"] / run
    work.mkdir(parents=True)
    dump, bodies, log = work / "dump.bin", work / "bodies.jsonl", work / "fluent-bit.log"
    mock = ctx["children"].start(
        [sys.executable, str(HERE / "kinesis_mock.py"), ctx["cert"], ctx["key"],
         str(work / "mock.port"), str(bodies)]
    )
    ctx["kinesis_port"] = wait_for_file(work / "mock.port")
    base = [FLUENT_BIT, "-e", ctx["plugin"], "-f", "1"]
    with open(log, "wb") as log_file:
        if input_kind == "stdin":
            lines = []
            for i, (_, line) in enumerate(STDIN_CASES):
                lines += [line, sentinel_line(i)]
            proc = ctx["children"].start(
                base + ["-i", "stdin"] + kinesis_args(ctx, options),
                stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT, env=fb_env(dump),
            )
            proc.communicate(b"\n".join(lines) + b"\n", timeout=120)
        else:
            port = free_port()
            proc = ctx["children"].start(
                base + ["-i", "forward", "-p", "listen=127.0.0.1", "-p", f"port={port}"]
                + kinesis_args(ctx, options),
                stdout=log_file, stderr=subprocess.STDOUT, env=fb_env(dump),
            )
            wait_for_port(port, proc)
            entries = []
            for i, (name, record) in enumerate(FORWARD_CASES):
                seconds, nanoseconds = forward_time(i, name)
                entries.append(b"\x92" + mpack.event_time(seconds, nanoseconds) + record)
                sentinel = m((s("message"), s("@@S%d@@" % i)))
                entries.append(b"\x92" + mpack.event_time(1_700_000_000, 0) + sentinel)
            message = b"\x92" + s("capture") + mpack.array_header(len(entries)) + b"".join(entries)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(message)
            last = b"@@S%d@@" % (len(FORWARD_CASES) - 1)
            deadline = time.time() + 60
            while time.time() < deadline and not any(last in r for r in read_records(bodies)):
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    mock.terminate()
    mock.wait(timeout=10)
    events, flushes = read_dump(dump)
    if flushes != 1:
        raise RuntimeError(f"{run}: {flushes} flushes; the capture relies on one chunk per run")
    return events, read_records(bodies), log.read_text(errors="replace")


def group(items, sentinel_of):
    """Splits items at sentinels: {case index: [items before sentinel i]}."""
    groups, current = {}, []
    for item in items:
        number = sentinel_of(item)
        if number is None:
            current.append(item)
        else:
            groups[number] = current
            current = []
    if current:
        raise RuntimeError(f"items after the last sentinel: {current!r}"[:300])
    return groups


def event_sentinel(event):
    decoded, _ = event
    try:
        record = decoded[1]
        value = mpack.get(record, b"message")
        match = SENTINEL.fullmatch(value) if isinstance(value, bytes) else None
        return int(match.group(1)) if match else None
    except (IndexError, TypeError):
        return None


def record_sentinel(data):
    match = SENTINEL.search(data)
    return int(match.group(1)) if match else None


def b64(data):
    return base64.b64encode(data).decode()


def capture_kinesis(ctx):
    cases, summary = [], []
    for option_name, options in OPTION_SETS:
        for input_kind, corpus in (("stdin", STDIN_CASES), ("forward", FORWARD_CASES)):
            run = f"{option_name}-{input_kind}"
            events, records, log = run_kinesis(ctx, run, input_kind, options)
            event_groups = group(events, event_sentinel)
            record_groups = group(records, record_sentinel)
            if sorted(event_groups) != list(range(len(corpus))) or sorted(record_groups) != list(
                range(len(corpus))
            ):
                raise RuntimeError(f"{run}: sentinels missing")
            for i, (name, case_input) in enumerate(corpus):
                case_events = event_groups[i]
                if not case_events:
                    summary.append(f"{run}/{name}: no event (the input refused it)")
                    continue
                cases.append(
                    {
                        "name": f"{run}/{name}",
                        "options": options,
                        "input": b64(case_input),
                        "events": [b64(raw) for _, raw in case_events],
                        "data": [b64(d) for d in record_groups[i]],
                    }
                )
            summary.append(f"{run}: {len(events)} events, {len(records)} records; log lines: "
                           f"{sum('[error]' in l or '[warn]' in l for l in log.splitlines())} error/warn")
    return cases, summary


def run_accessor(ctx, index, pattern):
    work = ctx["work"] / f"accessor-{index:02d}"
    work.mkdir(parents=True)
    dump, received, log = work / "dump.bin", work / "forward.bin", work / "fluent-bit.log"
    receiver = ctx["children"].start(
        [sys.executable, str(HERE / "forward_receiver.py"), str(work / "fwd.port"), str(received)]
    )
    port = wait_for_file(work / "fwd.port")
    args = [
        FLUENT_BIT, "-e", ctx["plugin"], "-f", "1", "-i", "stdin", "-t", ctx["tag"],
        "-o", "forward", "-m", "*", "-p", "host=127.0.0.1", "-p", f"port={port}",
        "-p", f"tag={pattern}", "-o", "kpl_capture_dump", "-m", "*",
    ]
    with open(log, "wb") as log_file:
        proc = ctx["children"].start(
            args, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT, env=fb_env(dump)
        )
        proc.communicate("\n".join(ACCESSOR_LINES).encode() + b"\n", timeout=60)
    time.sleep(0.3)
    receiver.terminate()
    receiver.wait(timeout=10)
    text = log.read_text(errors="replace")
    events, _ = read_dump(dump)
    tags = []
    data = received.read_bytes() if received.exists() else b""
    for message, _ in mpack.split(data):
        tag = bytes(message[0])
        if isinstance(message[1], list):  # forward mode: [tag, [[time, record], ...], options]
            tags += [tag] * len(message[1])
        elif isinstance(message[1], bytes):  # packed forward mode
            tags += [tag] * sum(1 for _ in mpack.split(bytes(message[1])))
        else:  # message mode: [tag, time, record, options]
            tags.append(tag)
    return events, tags, text, proc.returncode


def capture_accessor(ctx):
    cases, summary = [], []
    ctx["tag"] = "app.web.prod"
    for index, (pattern, none_events) in enumerate(ACCESSOR_PATTERNS):
        events, tags, log, returncode = run_accessor(ctx, index, pattern)
        started = bool(events)
        logged = [l for l in log.splitlines() if "record accessor" in l and "error" in l]
        if started and len(tags) != len(events):
            raise RuntimeError(f"pattern {pattern!r}: {len(events)} events, {len(tags)} tags")
        cases.append(
            {
                "pattern": pattern,
                "tag": ctx["tag"],
                "fluent_bit_starts": started,
                "fluent_bit_logged_error": bool(logged),
                "we_refuse": none_events is None,
                "none_by_design": none_events or [],
                "events": [b64(raw) for _, raw in events],
                "rendered": [b64(t) for t in tags],
            }
        )
        summary.append(f"accessor {pattern!r}: starts={started} exit={returncode} "
                       f"logged={logged[:1]} tags={[t.decode(errors='replace') for t in tags]}")
    return cases, summary


def main():
    work, plugin, cert, key, fixtures = sys.argv[1:6]
    ctx = {
        "work": pathlib.Path(work),
        "plugin": plugin,
        "cert": cert,
        "key": key,
        "children": Children(),
    }
    version = subprocess.run([FLUENT_BIT, "--version"], capture_output=True, text=True).stdout
    about = {
        "fluent_bit": version.strip().splitlines()[0] if version.strip() else "unknown",
        "generated_by": "plugins/fluent-bit/common/tests/capture/capture.sh (run by hand)",
    }
    try:
        kinesis_cases, kinesis_summary = capture_kinesis(ctx)
        accessor_cases, accessor_summary = capture_accessor(ctx)
    finally:
        ctx["children"].stop_all()
    fixtures = pathlib.Path(fixtures)
    (fixtures / "kinesis_streams.json").write_text(
        json.dumps(
            dict(about, what="The Data bytes Fluent Bit's kinesis_streams sent for each event "
                 "(events: the chunk's events as outputs get them; input: the NDJSON line or "
                 "msgpack record fed in; all base64)", cases=kinesis_cases),
            indent=1, ensure_ascii=False,
        ) + "\n",
        encoding="utf-8",
    )
    (fixtures / "record_accessor.json").write_text(
        json.dumps(
            dict(about, what="The tag Fluent Bit's forward output rendered with `tag <pattern>` "
                 "for each event (base64); none_by_design: events for which our render gives "
                 "None; we_refuse: patterns our parser refuses", cases=accessor_cases),
            indent=1, ensure_ascii=False,
        ) + "\n",
        encoding="utf-8",
    )
    print("\n".join(kinesis_summary + accessor_summary))
    print(f"{len(kinesis_cases)} kinesis_streams cases, {len(accessor_cases)} accessor cases")


if __name__ == "__main__":
    main()
