#!/usr/bin/env bash
# `kpl serve` (issue 11's benchmark): the same PutRecords load sent (a) straight to
# kinesis-mock and (b) through `kpl serve` (release build, default settings:
# RecordMaxBufferedTime 100 ms) in front of the same kinesis-mock, inside a private network
# namespace (loopback only). Prints a Markdown table. About 8 minutes with the defaults.
#   bash benches/e2e/serve-vs-direct.sh [RECORDS] [RATE]    (defaults 200000 1000)
# Load (benches/e2e/serve_load.rs, aws-sdk-kinesis, built with `--features load`): RECORDS
# user records of 100 bytes ("%09d " + 90 pseudo-random letters, distinct, the same every
# run) with 16-character random partition keys, from CLIENTS (8) concurrent clients, each
# calling PutRecords with batches of 500 as Vector does (DescribeStream first, as its
# healthcheck), paced at RATE records/s for all clients together (RATE=0: as fast as the
# answers come). Records an answer says failed, and batches whose call was throttled or
# failed on the server's side, are sent again after a backoff, as an SDK user would.
# Why paced: kinesis-mock is the bottleneck of both paths; unpaced, the latency of either is
# its queue at the mock (8 calls in flight over its throughput), not what kpl serve adds.
# The default rate is one the direct path sustains on this machine (no call starts late).
# Streams: `serve` has SHARDS (4) shards; `direct` has DIRECT_SHARDS (1000, the mock's most
# per stream) because kinesis-mock's PutRecords costs time proportional to the records
# already in the shard (it hashes the shard's whole record list for each record put):
# 200,000 plain records into 4 shards would take it over an hour, calls growing to seconds.
# Both streams are read back (every shard, KCL deaggregation): Kinesis records (aggregated,
# plain), PUT payload units (each stored record's data + partition key, every started
# 25 KiB = 25,600 bytes one unit), user records missing or repeated.
# Order: the mock is warmed up first (WARMUP records into a third stream, so that neither run
# pays its JIT), then (b) on the fresh mock, then (a): the 200,000 plain records of (a) make
# the mock slower for whatever comes after them. CPU: /proc/PID/stat utime + stime of kpl
# serve and of the mock, over each run. Every put run is killed after TIME_LIMIT seconds.
# Environment: SHARDS, DIRECT_SHARDS, CLIENTS, WARMUP (5000), CONFIG (a `kpl serve --config`
# file), TIME_LIMIT (900), KEEP_WORK (a folder to keep the raw outputs in).
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS="${1:-200000}"
RATE="${2:-1000}"
SHARDS="${SHARDS:-4}"
DIRECT_SHARDS="${DIRECT_SHARDS:-1000}"
CLIENTS="${CLIENTS:-8}"
WARMUP="${WARMUP:-5000}"
CONFIG="${CONFIG:-}"
TIME_LIMIT="${TIME_LIMIT:-900}"
[ -z "$CONFIG" ] || CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"
bash ci/kinesis-mock install >/dev/null
cargo build --release --locked -q -p kpl-cli -p kpl-benches --features kpl-benches/load
WORK="${KEEP_WORK:-$(mktemp -d)}"; mkdir -p "$WORK"
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
{
  echo "CPU: $cpu_model, $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kinesis-mock 0.6.2; $RECORDS records of 100 B, $CLIENTS clients, PutRecords of 500, rate ${RATE}/s (0: unpaced);" \
       "streams: direct $DIRECT_SHARDS shards, serve $SHARDS shards; kpl serve config: ${CONFIG:-defaults}"
} | tee "$WORK/header.txt"

export WORK RECORDS RATE SHARDS DIRECT_SHARDS CLIENTS WARMUP CONFIG TIME_LIMIT
unshare -rn bash -c '
set -euo pipefail
. benches/e2e/common.sh
export SHARD_LIMIT=100000
e2e_start_mock "$WORK" "warmup:64,direct:$DIRECT_SHARDS,serve:$SHARDS"
SERVE=
stop_all() {
  [ -z "$SERVE" ] || kill -KILL "$SERVE" 2>/dev/null || true
  kill "$E2E_MOCK" 2>/dev/null || true
}
trap stop_all EXIT
L=./target/release/serve-load
MOCK=http://127.0.0.1:4568
cpu() { awk "{ printf \"%.2f\", (\$14 + \$15) / $(getconf CLK_TCK) }" "/proc/$1/stat"; }
minus() { awk -v a="$1" -v b="$2" "BEGIN { printf \"%.2f\", a - b }"; }
load() {
  timeout --signal=KILL "$TIME_LIMIT" "$L" put --records "$RECORDS" --clients "$CLIENTS" --rate "$RATE" \
    --deadline "$((TIME_LIMIT - 60))" "$@"
}

echo "== warm-up: $WARMUP records straight into the mock (stream warmup, not measured)"
"$L" put --endpoint "$MOCK" --stream warmup --records "$WARMUP" --clients "$CLIENTS" > "$WORK/warmup.json"

echo "== (b) through kpl serve: $RECORDS records (stream serve)"
./target/release/kpl serve --listen 127.0.0.1:0 --endpoint "$MOCK" --region us-east-1 ${CONFIG:+--config "$CONFIG"} \
  > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVE=$!
for i in $(seq 1 100); do grep -q "^listening on " "$WORK/serve.out" && break; sleep 0.1; done
URL="$(sed -n "s/^listening on //p" "$WORK/serve.out")"
[ -n "$URL" ] || { echo "kpl serve did not start:"; cat "$WORK/serve.err"; exit 1; }
m0=$(cpu "$E2E_MOCK"); s0=$(cpu "$SERVE")
load --endpoint "$URL" --stream serve --calls "$WORK/serve.calls" > "$WORK/serve.json"
m1=$(cpu "$E2E_MOCK"); s1=$(cpu "$SERVE")
curl -sf --max-time 10 "$URL/metrics" > "$WORK/serve.metrics" || true
kill -TERM "$SERVE"
for i in $(seq 1 600); do kill -0 "$SERVE" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SERVE" 2>/dev/null && { echo "kpl serve still running 60 s after SIGTERM: killed"; kill -KILL "$SERVE"; }
wait "$SERVE" 2>/dev/null || echo "kpl serve exit status $?"
SERVE=
echo "{\"mock_cpu_s\": $(minus "$m1" "$m0"), \"serve_cpu_s\": $(minus "$s1" "$s0"), \"serve_cpu_total_s\": $s1}" > "$WORK/serve.cpu.json"
grep "^stopped:" "$WORK/serve.out" || { echo "no summary from kpl serve:"; tail -5 "$WORK/serve.err"; }

echo "== (a) direct: $RECORDS records into kinesis-mock (stream direct)"
m0=$(cpu "$E2E_MOCK")
load --endpoint "$MOCK" --stream direct --calls "$WORK/direct.calls" > "$WORK/direct.json"
m1=$(cpu "$E2E_MOCK")
echo "{\"mock_cpu_s\": $(minus "$m1" "$m0")}" > "$WORK/direct.cpu.json"

echo "== reading both streams back"
timeout --signal=KILL 600 "$L" read --endpoint "$MOCK" --stream direct --records "$RECORDS" > "$WORK/direct.read.json"
timeout --signal=KILL 600 "$L" read --endpoint "$MOCK" --stream serve --records "$RECORDS" > "$WORK/serve.read.json"
'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/header.txt"
python3 - "$WORK" <<'PY'
import json, re, sys
work = sys.argv[1]
def load(name):
    return json.load(open(f"{work}/{name}.json"))
runs = {}
for run in ("direct", "serve"):
    runs[run] = {**load(run), **load(run + ".cpu"), "read": load(run + ".read")}
    # The first quarter of the calls by send time (the same batches in both runs when paced).
    calls = [l.split() for l in open(f"{work}/{run}.calls").read().splitlines()[1:]]
    calls.sort(key=lambda c: float(c[0]))
    runs[run]["early"] = sorted(float(c[1]) for c in calls[: max(1, len(calls) // 4)])
def pct(sorted_ms, p):
    return sorted_ms[max(0, -(-p * len(sorted_ms) // 100) - 1)] if sorted_ms else 0.0
upstream = {}
try:
    for line in open(f"{work}/serve.metrics"):
        m = re.match(r'kpl_serve_put_records_calls_total\{stream="serve"\} (\d+)', line)
        if m:
            upstream["calls"] = int(m.group(1))
except OSError:
    pass
d, s = runs["direct"], runs["serve"]
dr, sr = d["read"], s["read"]
def n(x):
    return f"{x:,}"
def errors(r):
    e = {**r["call_errors"], **r["record_errors"]}
    return ", ".join(f"{k} {v:,}" for k, v in e.items()) or "none"
print()
print("| | (a) direct to kinesis-mock | (b) through `kpl serve` | (b) vs (a) |")
print("|---|--:|--:|--:|")
print(f"| stream shards | {dr['shards']} | {sr['shards']} | |")
print(f"| user records read back, distinct (missing, repeated) | {n(dr['distinct'])} ({n(dr['missing'])}, {n(dr['repeated'])}) "
      f"| {n(sr['distinct'])} ({n(sr['missing'])}, {n(sr['repeated'])}) | |")
print(f"| Kinesis records stored (aggregated + plain) | {n(dr['kinesis_records'])} ({n(dr['aggregated'])} + {n(dr['plain'])}) "
      f"| {n(sr['kinesis_records'])} ({n(sr['aggregated'])} + {n(sr['plain'])}) "
      f"| **{dr['kinesis_records'] / max(1, sr['kinesis_records']):.1f} x fewer** |")
print(f"| PUT payload units (25,600 B each, data + key, every record rounded up) | {n(dr['units_25600'])} | {n(sr['units_25600'])} "
      f"| {dr['units_25600'] / max(1, sr['units_25600']):.1f} x fewer |")
print(f"| the same with 25 KB read as 25,000 B | {n(dr['units_25000'])} | {n(sr['units_25000'])} "
      f"| {dr['units_25000'] / max(1, sr['units_25000']):.1f} x fewer |")
print(f"| bytes stored (data + partition keys) | {n(dr['data_bytes'] + dr['key_bytes'])} | {n(sr['data_bytes'] + sr['key_bytes'])} "
      f"| {(sr['data_bytes'] + sr['key_bytes']) / (dr['data_bytes'] + dr['key_bytes']):.3f} x |")
print(f"| PutRecords calls by the clients (of them retries) | {n(d['calls'])} ({n(d['retry_calls'])}) | {n(s['calls'])} ({n(s['retry_calls'])}) | |")
print(f"| record and call errors seen by the clients | {errors(d)} | {errors(s)} | |")
print(f"| PutRecords calls to kinesis-mock | {n(d['calls'])} | {n(upstream['calls']) if 'calls' in upstream else '?'} | |")
dl, sl = d["latency_ms"], s["latency_ms"]
print(f"| client latency per call, p50 / p99 | {dl['p50']:.0f} / {dl['p99']:.0f} ms | {sl['p50']:.0f} / {sl['p99']:.0f} ms "
      f"| {sl['p50'] - dl['p50']:+.0f} / **{sl['p99'] - dl['p99']:+.0f} ms added** |")
de, se = d["early"], s["early"]
print(f"| the same over the first quarter of the calls ({len(de)}, {len(se)}) | {pct(de, 50):.0f} / {pct(de, 99):.0f} ms "
      f"| {pct(se, 50):.0f} / {pct(se, 99):.0f} ms | {pct(se, 50) - pct(de, 50):+.0f} / {pct(se, 99) - pct(de, 99):+.0f} ms |")
print(f"| max latency | {d['latency_ms']['max']:.0f} ms | {s['latency_ms']['max']:.0f} ms | |")
print(f"| most a call started behind the pace | {d['max_lateness_ms']:.0f} ms | {s['max_lateness_ms']:.0f} ms | |")
print(f"| wall time (first call to last answer) | {d['wall_s']:.1f} s | {s['wall_s']:.1f} s | |")
print(f"| CPU of kpl serve (user + system) | | {s['serve_cpu_s']:.2f} s | |")
print(f"| CPU of kinesis-mock during the run | {d['mock_cpu_s']:.2f} s | {s['mock_cpu_s']:.2f} s | |")
print()
print(open(f"{work}/header.txt").read().rstrip())
PY
