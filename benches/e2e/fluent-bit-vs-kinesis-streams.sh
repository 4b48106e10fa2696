#!/usr/bin/env bash
# Fluent Bit 5.1.1 into kinesis-mock: this project's output plugin `kpl_kinesis` (release
# build) beside Fluent Bit's built-in `kinesis_streams`, on the same input, inside a private
# network namespace (loopback only).
#   bash benches/e2e/fluent-bit-vs-kinesis-streams.sh [LINES] [SHARDS]    (defaults 100000 4)
# Input: LINES NDJSON lines of about 100 bytes ({"seq":N,"pk":"kNNN","msg":"xx..."}, 500
# distinct pk values), piped into Fluent Bit's stdin input; Fluent Bit exits by itself at
# the end of its input, after flushing. Runs (each on its own SHARDS-shard stream):
#   kpl_kinesis            defaults (random partition key per record), workers 2
#   kpl_kinesis pk         the same with partition_key $pk
#   kinesis_streams        defaults; it speaks only TLS, so socat terminates TLS in front
#                          (certificate made here, as in ../shared/docs/fluent-bit.md)
# Every run goes through benches/e2e/counting_proxy.py in front of kinesis-mock, which counts
# the PutRecords calls and, from their answers, the Kinesis records stored and their PUT
# payload units (25 KB = 25,600 bytes per unit, each record rounded up). The stream is then
# read back with `kpl tail` (KCL's policy and hash-range filter) and compared with the input.
# AWS bills a PUT payload unit per started 25 KB of each record; whether the partition key
# counts is not spelled out, so units are given with and without it.
# CPU seconds (user + system, every thread, the plugin's included) and wall time are those
# of the Fluent Bit process (GNU time). kinesis-mock stores unaggregated records slowly (a
# few hundred a second, fewer as a shard fills): the kinesis_streams run takes about 20
# minutes here, the kpl_kinesis runs seconds.
# Fluent Bit: $FLUENT_BIT, else ../shared/tools/fluent-bit/bin/fluent-bit. RUNS="kpl pk
# builtin" (the default) picks runs; KEEP_WORK=DIR keeps the configurations, logs and
# read-back in DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-100000}"
SHARDS="${2:-4}"
RUNS="${RUNS:-kpl pk builtin}"
FLUENT_BIT="${FLUENT_BIT:-../shared/tools/fluent-bit/bin/fluent-bit}"
if [ ! -x "$FLUENT_BIT" ]; then
  echo "Fluent Bit not found: set FLUENT_BIT or install it at ../shared/tools/fluent-bit/bin/fluent-bit" >&2
  exit 1
fi
FLUENT_BIT="$(cd "$(dirname "$FLUENT_BIT")" && pwd)/$(basename "$FLUENT_BIT")"
command -v socat >/dev/null || apt-get install -y socat >/dev/null
bash ci/kinesis-mock install >/dev/null
cargo build --release --locked -q -p kpl-fluent-bit-out -p kpl-cli
WORK="${KEEP_WORK:-$(mktemp -d)}"; mkdir -p "$WORK"
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
python3 - "$LINES" > "$WORK/lines.ndjson" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print('{"seq":%d,"pk":"k%03d","msg":"%s"}' % (i, i * 7919 % 500, "x" * 64))
PY
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/both.pem"

# [OUTPUT] sections of the runs; the proxy listens on 4569, socat (TLS) on 4443.
cat > "$WORK/kpl.out" <<EOF
[OUTPUT]
    name kpl_kinesis
    match *
    stream kpl
    region us-east-1
    endpoint http://127.0.0.1:4569
    workers 2
EOF
cat > "$WORK/pk.out" <<EOF
[OUTPUT]
    name kpl_kinesis
    match *
    stream pk
    region us-east-1
    endpoint http://127.0.0.1:4569
    partition_key \$pk
    workers 2
EOF
cat > "$WORK/builtin.out" <<EOF
[OUTPUT]
    name kinesis_streams
    match *
    stream builtin
    region us-east-1
    endpoint localhost
    port 4443
    tls.ca_file $WORK/cert.pem
EOF
for run in kpl pk builtin; do
  { printf '[SERVICE]\n    flush 1\n    grace 3600\n    log_level info\n'
    printf '[INPUT]\n    name stdin\n    tag lines\n'
    cat "$WORK/$run.out"; } > "$WORK/$run.conf"
done
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "CPU: $cpu_model ($(nproc) cores); $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "Fluent Bit: $("$FLUENT_BIT" --version | head -1); kinesis-mock 0.6.2; $LINES lines of $(head -1 "$WORK/lines.ndjson" | wc -c) bytes or so, $SHARDS shards"

export WORK SHARDS LINES RUNS FLUENT_BIT
unshare -rn bash -c '
set -euo pipefail
. benches/e2e/common.sh
e2e_start_mock "$WORK" "kpl:$SHARDS,pk:$SHARDS,builtin:$SHARDS"
python3 benches/e2e/counting_proxy.py 4569 4568 2> "$WORK/proxy.log" &
PROXY=$!
socat openssl-listen:4443,reuseaddr,fork,cert="$WORK/both.pem",verify=0 TCP:127.0.0.1:4569 2> "$WORK/socat.log" &
SOCAT=$!
trap "kill $PROXY $SOCAT \$E2E_MOCK 2>/dev/null || true" EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:4569/__stats >/dev/null && break; sleep 0.1; done
for run in $RUNS; do
  echo "== $run"
  status=0
  plugin=()
  [ "$run" = builtin ] || plugin=(-e "$PWD/target/release/libkpl_fluent_bit_out.so")
  cat "$WORK/lines.ndjson" | /usr/bin/time -o "$WORK/$run.time" -f "%e %U %S" \
    "$FLUENT_BIT" "${plugin[@]}" -c "$WORK/$run.conf" \
    > "$WORK/$run.log" 2>&1 || status=$?
  echo "Fluent Bit exit status $status; its log: grep -iE \"error|warn|exit:\" (first 8 lines)"
  grep -iE "error|warn|exit:" "$WORK/$run.log" | grep -v "service will shutdown" | head -8 || true
  ./target/release/kpl tail --stream "$run" --endpoint http://127.0.0.1:4568 --region us-east-1 > "$WORK/$run.read.ndjson"
done
curl -sf http://127.0.0.1:4569/__stats > "$WORK/stats.json"
'
python3 - "$WORK" "$LINES" "$RUNS" <<'PY'
import base64, collections, json, sys
work, lines, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
stats = json.load(open(f"{work}/stats.json"))
want = collections.Counter(l.encode() for l in open(f"{work}/lines.ndjson", "rb").read().decode().splitlines(True))
names = {"kpl": "kpl_kinesis (random keys)", "pk": "kpl_kinesis (partition_key $pk)", "builtin": "kinesis_streams (built-in)"}
print()
print("| output | user records read back (missing, extra) | Kinesis records stored | PutRecords calls | PUT payload units | units without the partition key | bytes stored (data + keys) | Fluent Bit CPU s | wall s |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for run in runs:
    s = stats.get(run, {})
    got = collections.Counter()
    for line in open(f"{work}/{run}.read.ndjson"):
        got[base64.b64decode(json.loads(line)["Data"])] += 1
    missing = sum((want - got).values())
    extra = sum((got - want).values())
    wall, user, sys_ = (float(x) for x in open(f"{work}/{run}.time").read().split()[-3:])
    print(f"| {names[run]} | {sum(got.values()):,} ({missing:,}, {extra:,}) | {s.get('records_stored', 0):,} | "
          f"{s.get('put_records_calls', 0):,} | {s.get('units_with_key', 0):,} | {s.get('units_data_only', 0):,} | "
          f"{s.get('data_bytes', 0) + s.get('key_bytes', 0):,} | {user + sys_:.2f} | {wall:.1f} |")
PY
