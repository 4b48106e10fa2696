#!/usr/bin/env bash
# The producer against the real KPL, head to head (issue 13, part 3): the same user records
# pushed at full speed through (a) the real Java KPL 0.15.12 (its Java front end and its
# native `kinesis_producer` daemon) and (b) `kpl put` (release build), each into its own
# SHARDS-shard stream (4) of one kinesis-mock 0.6.2, inside a private network namespace
# (loopback only). Prints a Markdown table. Why: KPL's adapter (conformance/adapters/java-kpl)
# spaces records out for deterministic bytes and measures nothing; this measures what a user
# pays for each producer under the same load.
#   bash benches/e2e/producer-vs-kpl.sh [RECORDS]    (default 1000000; RECORDS=100000 is a quick run)
# Records: `serve-load gen --keys 1000` (benches/e2e/serve_load.rs): record i is 100 bytes,
# "%09d " then 90 pseudo-random letters (fixed seed), partition key "key-<i % 1000>". The same
# file feeds both: KPL reads "key TAB data" lines (benches/e2e/KplFullSpeed.java: addUserRecord
# as fast as KPL takes it, sleeping 1 ms while more than MAX_OUTSTANDING (10,000) records are
# outstanding, the back-pressure KPL's README points to; then flushSync); `kpl put` reads the same records as
# NDJSON. Settings: each producer's defaults (RecordMaxBufferedTime 100 ms, RateLimit 150,
# aggregation on) except RequestTimeout 120 s and RecordTtl 600 s for both (kinesis-mock is slow;
# see sink-vs-kinesis-mock.sh). KPL talks HTTPS (VerifyCertificate false) to the capture
# harness's proxy.js (vectors/capture/kpl/harness.sh: TLS, logs each request to WORK/proxy.jsonl,
# forwards to kinesis-mock, answers the STS GetCallerIdentity that KPL 0.15's daemon calls
# first and kinesis-mock does not know); `kpl put` plain HTTP straight to kinesis-mock (it has no
# switch for a self-signed certificate): KPL pays TLS, about 100 MB of AES-GCM, well under a
# second of CPU. The proxy's CPU, like the mock's, is not counted for either producer.
# Measured (benches/e2e/measure_tree.py): CPU (user + system) of every process of the producer,
# KPL's JVM and its daemon child included (polled from /proc every 25 ms, and the JVM's wait4
# rusage, which includes the daemon it reaps; the larger is reported), peak resident memory of
# the whole tree (sum of its processes, sampled every 25 ms), wall time from start to exit (KPL:
# JVM start and daemon start included). Then both streams are read back (`serve-load read`: every
# shard, KCL deaggregation): Kinesis records (aggregated + plain), PUT payload units (data +
# key, every started 25,600 bytes), user records missing or repeated.
# (c) aiokpl 0.2.0 (PyPI, the conformance adapter's install) the same way when AIOKPL=1 (the
# default; AIOKPL=0 skips it): benches/e2e/aiokpl_full_speed.py, plain HTTP like `kpl put`, its
# own back-pressure (100,000 outstanding), its defaults (rate limit 100 % of a shard) but
# RecordTtl 600 s. a8m/kinesis-producer (Go) is not run: it has no shard map (it aggregates
# across shards under one random key) and would need a Go main of its own.
# The mock is warmed up first (WARMUP records into a fourth stream). ORDER (rs-first, the
# default, or kpl-first) says whether `kpl put` runs before or after KPL (aiokpl runs last).
# Environment: SHARDS, MAX_OUTSTANDING, WARMUP (5000), ORDER, AIOKPL, TIME_LIMIT (per producer,
# 1800 s), KEEP_WORK (a folder for the raw outputs). The header line gives the commit and any
# uncommitted change to the crates `kpl put` is built from (the tree is shared while it runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS="${1:-1000000}"
SHARDS="${SHARDS:-4}"
MAX_OUTSTANDING="${MAX_OUTSTANDING:-10000}"
WARMUP="${WARMUP:-5000}"
ORDER="${ORDER:-rs-first}"
TIME_LIMIT="${TIME_LIMIT:-1800}"
AIOKPL="${AIOKPL:-1}"
KEYS=1000
bash conformance/adapters/java-kpl/install.sh >/dev/null
[ "$AIOKPL" = 0 ] || bash conformance/adapters/python-aiokpl/install.sh >/dev/null
. vectors/capture/kpl/harness.sh
cargo build --release --locked -q -p kpl-cli -p kpl-benches --features kpl-benches/load
WORK="${KEEP_WORK:-$(mktemp -d)}"; mkdir -p "$WORK"
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/classes"
javac -nowarn --release 17 -encoding UTF-8 -cp "$KPL_CLASSPATH" -d "$WORK/classes" benches/e2e/KplFullSpeed.java
./target/release/serve-load gen --records "$RECORDS" --keys "$KEYS" > "$WORK/records.tsv"
python3 - "$WORK/records.tsv" > "$WORK/records.ndjson" <<'PY'
import base64, json, sys
out = sys.stdout
for line in open(sys.argv[1], "rb"):
    key, data = line.rstrip(b"\n").split(b"\t", 1)
    out.write('{"PartitionKey":%s,"Data":"%s"}\n' % (json.dumps(key.decode()), base64.b64encode(data).decode()))
PY
printf 'RequestTimeout = 120000\nRecordTtl = 600000\n' > "$WORK/kpl-put.toml"
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
{
  echo "CPU: $cpu_model, $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kinesis-mock $MOCK_VERSION, amazon-kinesis-producer $KPL_VERSION, kpl $(./target/release/kpl --version | cut -d' ' -f2);" \
       "$RECORDS user records of 100 B over $KEYS keys into $SHARDS-shard streams; KPL max outstanding $MAX_OUTSTANDING; order $ORDER"
  echo "commit $(git rev-parse --short HEAD); uncommitted in the crates of kpl put: $(git status --porcelain -- Cargo.lock cli codec kinesis/src md5-lanes | awk '{print $2}' | tr '\n' ' ')"
} | tee "$WORK/header.txt"

export WORK RECORDS SHARDS MAX_OUTSTANDING WARMUP ORDER TIME_LIMIT KEYS AIOKPL
unshare -rn bash -c '
set -euo pipefail
. vectors/capture/kpl/harness.sh
trap kpl_harness_stop EXIT
INITIALIZE_STREAMS="warmup:$SHARDS,kpl-java:$SHARDS,kpl-rs:$SHARDS,kpl-py:$SHARDS" kpl_harness_start "$WORK"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
MOCK=http://127.0.0.1:$KPL_PLAIN_PORT
L=./target/release/serve-load
M="python3 benches/e2e/measure_tree.py"
for i in $(seq 1 50); do
  "$L" read --endpoint "$MOCK" --stream kpl-rs --records 0 >/dev/null 2>&1 && break; sleep 0.2
done
echo "== warm-up: $WARMUP records straight into the mock (stream warmup, not measured)"
"$L" put --endpoint "$MOCK" --stream warmup --records "$WARMUP" --clients 4 > "$WORK/warmup.json"
run_rs() {
  echo "== (b) kpl put: $RECORDS records (stream kpl-rs)"
  $M "$WORK/rs.measure.json" -- timeout --signal=KILL "$TIME_LIMIT" ./target/release/kpl put --quiet --stream kpl-rs \
    --endpoint "$MOCK" --region us-east-1 --config "$WORK/kpl-put.toml" "$WORK/records.ndjson" \
    > "$WORK/rs.out" 2>&1 || echo "kpl put failed (see below)"
  tail -n 20 "$WORK/rs.out"
}
run_java() {
  echo "== (a) the real KPL: $RECORDS records (stream kpl-java)"
  $M "$WORK/java.measure.json" -- timeout --signal=KILL "$TIME_LIMIT" java -Xlog:disable -XX:-UsePerfData \
    -cp "$WORK/classes:$KPL_CLASSPATH" KplFullSpeed "$KPL_PORT" kpl-java "$WORK/records.tsv" "$MAX_OUTSTANDING" \
    > "$WORK/java.out" 2>&1 || echo "KPL run failed (see below)"
  grep -E "^KPL:|Exception|ERROR" "$WORK/java.out" | tail -n 20
}
run_py() {
  echo "== (c) aiokpl: $RECORDS records (stream kpl-py)"
  PYTHONPATH=.tools/python-aiokpl PYTHONDONTWRITEBYTECODE=1 $M "$WORK/py.measure.json" -- timeout --signal=KILL "$TIME_LIMIT" \
    python3 -s benches/e2e/aiokpl_full_speed.py "$MOCK" kpl-py "$WORK/records.tsv" > "$WORK/py.out" 2>&1 || echo "aiokpl run failed (see below)"
  tail -n 5 "$WORK/py.out"
}
if [ "$ORDER" = kpl-first ]; then run_java; run_rs; else run_rs; run_java; fi
[ "$AIOKPL" = 0 ] || run_py
echo "== reading the streams back"
for s in java rs py; do
  [ -f "$WORK/$s.measure.json" ] || continue
  timeout --signal=KILL 1200 "$L" read --endpoint "$MOCK" --stream "kpl-$s" --records "$RECORDS" --keys "$KEYS" > "$WORK/$s.read.json"
done
'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/header.txt"
python3 - "$WORK" "$RECORDS" <<'PY'
import json, os, sys
work, records = sys.argv[1], int(sys.argv[2])
def load(name):
    return json.load(open(f"{work}/{name}.json"))
names = {"java": "(a) real KPL 0.15.12 (Java + native daemon)", "rs": "(b) `kpl put`", "py": "(c) aiokpl 0.2.0"}
cols = [c for c in ("java", "rs", "py") if os.path.exists(f"{work}/{c}.read.json")]
m = {c: load(c + ".measure") for c in cols}
rd = {c: load(c + ".read") for c in cols}
def n(x):
    return f"{x:,}"
per_m = 1e6 / records
def row(label, f, ratio=None):
    cells = [f(c) for c in cols]
    extra = ratio() if ratio and "java" in cols and "rs" in cols else ""
    print(f"| {label} | " + " | ".join(cells) + f" | {extra} |")
print()
print("| | " + " | ".join(names[c] for c in cols) + " | (b) vs (a) |")
print("|---|" + "--:|" * (len(cols) + 1))
row("CPU s per million user records (user + system, all processes)", lambda c: f"{m[c]['cpu_s'] * per_m:.1f}",
    lambda: f"**{m['java']['cpu_s'] / max(0.01, m['rs']['cpu_s']):.1f} x less**")
row("CPU s, total (polled / wait4)", lambda c: f"{m[c]['cpu_polled_s']:.1f} / {m[c]['cpu_rusage_s']:.1f}")
row("CPU by process", lambda c: ", ".join(f"{p['name']} {p['cpu_s']:.1f} s" for p in m[c]["processes"] if p["cpu_s"] > 0))
row("peak resident memory (sum over the processes)", lambda c: f"{m[c]['peak_rss_kb'] / 1024:.0f} MiB",
    lambda: f"**{m['java']['peak_rss_kb'] / max(1, m['rs']['peak_rss_kb']):.1f} x less**")
row("wall time (start to exit)", lambda c: f"{m[c]['wall_s']:.1f} s")
row("Kinesis records stored (aggregated + plain)",
    lambda c: f"{n(rd[c]['kinesis_records'])} ({n(rd[c]['aggregated'])} + {n(rd[c]['plain'])})",
    lambda: f"{rd['rs']['kinesis_records'] / max(1, rd['java']['kinesis_records']):.3f} x")
row("PUT payload units (25,600 B, data + key, every record rounded up)", lambda c: n(rd[c]["units_25600"]),
    lambda: f"{rd['rs']['units_25600'] / max(1, rd['java']['units_25600']):.3f} x")
row("bytes stored (data + partition keys); largest record",
    lambda c: f"{n(rd[c]['data_bytes'] + rd[c]['key_bytes'])}; {n(rd[c]['largest_record'])}")
row("user records read back, distinct (missing, repeated, foreign)",
    lambda c: f"{n(rd[c]['distinct'])} ({n(rd[c]['missing'])}, {n(rd[c]['repeated'])}, {n(rd[c]['foreign'])})")
row("exit status", lambda c: str(m[c]["exit"]))
print()
print(open(f"{work}/header.txt").read().rstrip())
PY
