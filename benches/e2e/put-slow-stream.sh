#!/usr/bin/env bash
# Backpressure end to end (issue 18): LINES lines of about 100 bytes piped into
# `kpl put --lines` (release build, default settings: RecordTtl 30 s, RequestTimeout 6 s)
# on a SHARDS-shard stream of kinesis-mock, which stores only about 1-2 MB/s here, so the
# producer is faster than its stream. Inside a private network namespace (loopback only).
#   bash benches/e2e/put-slow-stream.sh [LINES] [SHARDS]    (defaults 300000 4)
# Prints `kpl put`'s summary with its exit status and peak resident memory (GNU time), then
# reads the stream back with `kpl tail` (KCL's policy and range filter) and counts the
# distinct lines stored.
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-300000}"
SHARDS="${2:-4}"
bash ci/kinesis-mock install >/dev/null
cargo build --release --locked -q -p kpl-cli
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
. benches/e2e/common.sh
e2e_lines "$LINES" "$WORK/lines.txt"
export WORK SHARDS LINES
unshare -rn bash -c '
set -euo pipefail
. benches/e2e/common.sh
e2e_start_mock "$WORK" "rss:$SHARDS"
echo "== $LINES lines into $SHARDS shards (kinesis-mock), default settings"
status=0
cat "$WORK/lines.txt" | /usr/bin/time -f "peak resident memory: %M kB, wall %e s, CPU %U+%S s" \
  ./target/release/kpl put --stream rss --lines --endpoint http://127.0.0.1:4568 --region us-east-1 \
  2>&1 | tail -n 20 || status=$?
echo "kpl put exit status: $status"
./target/release/kpl tail --stream rss --endpoint http://127.0.0.1:4568 --region us-east-1 > "$WORK/read.ndjson"
python3 - "$WORK/read.ndjson" "$LINES" <<PY
import base64, json, sys
seen = {}
for line in open(sys.argv[1]):
    d = base64.b64decode(json.loads(line)["Data"]).decode()
    seen[d] = seen.get(d, 0) + 1
n = int(sys.argv[2])
want = {"%09d %s" % (i, "x" * 90) for i in range(n)}
print("read back: %d user records, %d distinct lines of %d, %d missing, %d read more than once"
      % (sum(seen.values()), len(want & set(seen)), n, len(want - set(seen)), sum(1 for v in seen.values() if v > 1)))
PY
'
