#!/usr/bin/env bash
# End-to-end figure of the sink: `kpl put` (release build) into kinesis-mock, on this
# machine, inside a private network namespace (loopback only).
#   bash benches/e2e/sink-vs-kinesis-mock.sh [RECORDS] [SHARDS]    (defaults 100000 4)
# Prints `kpl put`'s summary twice: with KPL's default RateLimit (150 % of each shard's
# 1,000 records/s and 1 MiB/s, which bounds a 4-shard stream at about 6 MiB/s) and with the
# limit lifted (RateLimit = 100000), which measures the sink plus kinesis-mock themselves;
# RequestTimeout is raised to 120 s in both (see below).
# User records: 100 bytes of data, 1,000 distinct partition keys.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS="${1:-100000}"
SHARDS="${2:-4}"
bash ci/kinesis-mock install >/dev/null
cargo build --release --locked -q -p kpl-cli
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 - "$RECORDS" > "$WORK/records.ndjson" <<'PY'
import base64, sys
n = int(sys.argv[1])
for i in range(n):
    data = base64.b64encode(("%08d" % i).encode() + b"x" * 92).decode()
    print('{"PartitionKey":"key-%d","Data":"%s"}' % (i * 7919 % 1000, data))
PY
# kinesis-mock stores about 1 MB/s here: give requests time (KPL's 6 s default makes a
# slow server time out, and timed-out requests are sent again).
printf 'RequestTimeout = 120000\nRecordTtl = 600000\n' > "$WORK/limited.toml"
printf 'RequestTimeout = 120000\nRecordTtl = 600000\nRateLimit = 100000\n' > "$WORK/unlimited.toml"
export WORK SHARDS
unshare -rn bash -c '
set -euo pipefail
ip link set lo up
M=.tools/kinesis-mock/node_modules/kinesis-local
INITIALIZE_STREAMS="limited:$SHARDS,unlimited:$SHARDS" KINESIS_MOCK_CERT_PATH="$M/server.json" \
KINESIS_MOCK_PLAIN_PORT=4568 KINESIS_MOCK_TLS_PORT=4567 CREATE_STREAM_DURATION=0ms LOG_LEVEL=WARN \
  node "$M/main.js" > "$WORK/mock.log" 2>&1 &
MOCK=$!
trap "kill $MOCK 2>/dev/null || true" EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:4568/healthcheck >/dev/null && break; sleep 0.2; done
sleep 1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
echo "== $SHARDS shards, RateLimit 150 (KPL default)"
./target/release/kpl put --stream limited --endpoint http://127.0.0.1:4568 --config "$WORK/limited.toml" "$WORK/records.ndjson"
echo "== $SHARDS shards, RateLimit 100000 (limit lifted)"
./target/release/kpl put --stream unlimited --endpoint http://127.0.0.1:4568 --config "$WORK/unlimited.toml" "$WORK/records.ndjson"
'
