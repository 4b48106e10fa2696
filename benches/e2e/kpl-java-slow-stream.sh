#!/usr/bin/env bash
# The real Java KPL 0.15.12 on the input of benches/e2e/put-slow-stream.sh: LINES lines of
# about 100 bytes, each a user record with a random key, added as fast as KPL takes them,
# KPL's default settings (RecordTtl 30 s, RecordMaxBufferedTime 100 ms), into a SHARDS-shard
# stream of kinesis-mock (through the capture harness's TLS proxy, vectors/capture/kpl),
# inside a private network namespace.
#   bash benches/e2e/kpl-java-slow-stream.sh [LINES] [SHARDS]    (defaults 300000 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-300000}"
SHARDS="${2:-4}"
. vectors/capture/kpl/harness.sh
kpl_harness_install >/dev/null
RUN="$(mktemp -d)"
trap 'rm -rf "$RUN"' EXIT
. benches/e2e/common.sh
e2e_lines "$LINES" "$RUN/lines.txt"
export RUN LINES SHARDS
unshare -rn bash -c '
set -euo pipefail
. vectors/capture/kpl/harness.sh
trap kpl_harness_stop EXIT
kpl_harness_start "$RUN"
echo "== $LINES lines into $SHARDS shards (kinesis-mock), the real KPL $KPL_VERSION, default settings"
/usr/bin/time -f "peak resident memory of the JVM (not counting the KPL native process): %M kB, wall %e s" \
  java -Xmx1g -cp "$KPL_CLASSPATH" capture.Flood $KPL_PORT $KPL_PLAIN_PORT flood "$SHARDS" < "$RUN/lines.txt" 2>"$RUN/kpl.log" \
  || { tail -20 "$RUN/kpl.log"; exit 1; }
grep -h "peak resident" "$RUN/kpl.log" || true
'
