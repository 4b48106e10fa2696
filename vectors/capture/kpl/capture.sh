#!/usr/bin/env bash
# Capture encode vectors from the REAL Java KPL through kinesis-mock, in a private network namespace.
# Usage: vectors/capture/kpl/capture.sh [scenario-name ...]   (default: every scenarios/*.json)
# Writes vectors/captured/kpl/<scenario>.json. Downloads/builds go to .tools/ (git-ignored).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
TOOLS="$ROOT/.tools"
KPL_VERSION=0.15.12
MOCK_VERSION=0.6.2
mkdir -p "$TOOLS"

if [ "$(node -p "try{require('$TOOLS/kinesis-mock/node_modules/kinesis-local/package.json').version}catch(e){''}")" != "$MOCK_VERSION" ]; then
  npm install --no-audit --no-fund --prefix "$TOOLS/kinesis-mock" "kinesis-local@$MOCK_VERSION"
fi
(cd "$HERE" && mvn -q -B -Dmaven.repo.local="$TOOLS/m2" -Dkpl.version="$KPL_VERSION" package)

if [ "$#" -gt 0 ]; then SCENARIOS=("$@"); else
  SCENARIOS=(); for f in "$HERE"/scenarios/*.json; do SCENARIOS+=("$(basename "$f" .json)"); done; fi

RUN="$TOOLS/kpl-capture-run"; rm -rf "$RUN"; mkdir -p "$RUN"
export HERE ROOT TOOLS RUN KPL_VERSION MOCK_VERSION
export SCENARIO_LIST="${SCENARIOS[*]}"

unshare -rn bash -c '
set -euo pipefail
ip link set lo up
M="$TOOLS/kinesis-mock/node_modules/kinesis-local"
KINESIS_MOCK_CERT_PATH="$M/server.json" KINESIS_MOCK_PLAIN_PORT=4568 KINESIS_MOCK_TLS_PORT=4567 \
CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
SPLIT_SHARD_DURATION=0ms MERGE_SHARDS_DURATION=0ms LOG_LEVEL=WARN \
  node "$M/main.js" > "$RUN/kinesis-mock.log" 2>&1 &
MOCK=$!
node "$HERE/proxy.js" "$M/server.json" 4443 4568 "$RUN/proxy.jsonl" > "$RUN/proxy.log" 2>&1 &
PROXY=$!
trap "kill $MOCK $PROXY 2>/dev/null || true; wait $MOCK $PROXY 2>/dev/null || true" EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:4568/healthcheck >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:4568/healthcheck >/dev/null
CP="$TOOLS/kpl-capture-build/kpl-capture-0.jar:$TOOLS/kpl-capture-build/lib/*"
for s in $SCENARIO_LIST; do
  echo "== $s"
  timeout 180 java -cp "$CP" capture.Capture "$HERE/scenarios/$s.json" "$RUN/$s.raw.json" 4443 4568 > "$RUN/$s.java.log" 2>&1 \
    || { echo "KPL run failed for $s; tail of $RUN/$s.java.log:"; tail -40 "$RUN/$s.java.log"; exit 1; }
  tail -1 "$RUN/$s.java.log"
done
'
python3 "$HERE/build_vectors.py" "$RUN" "$ROOT/vectors/captured/kpl" $SCENARIO_LIST
