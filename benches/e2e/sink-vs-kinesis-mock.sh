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
. benches/e2e/common.sh
e2e_start_mock "$WORK" "limited:$SHARDS,unlimited:$SHARDS"
echo "== $SHARDS shards, RateLimit 150 (KPL default)"
./target/release/kpl put --stream limited --endpoint http://127.0.0.1:4568 --config "$WORK/limited.toml" "$WORK/records.ndjson"
echo "== $SHARDS shards, RateLimit 100000 (limit lifted)"
./target/release/kpl put --stream unlimited --endpoint http://127.0.0.1:4568 --config "$WORK/unlimited.toml" "$WORK/records.ndjson"
'
