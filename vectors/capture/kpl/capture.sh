#!/usr/bin/env bash
# Capture encode vectors from the REAL Java KPL through kinesis-mock, in a private network namespace.
# Usage: vectors/capture/kpl/capture.sh [scenario-name ...]   (default: every scenarios/*.json)
# Writes vectors/captured/kpl/<scenario>.json. Downloads/builds go to .tools/ (git-ignored).
# Tool install and the mock + proxy start are shared with conformance/adapters/java-kpl
# (harness.sh).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
. "$HERE/harness.sh"
kpl_harness_install

if [ "$#" -gt 0 ]; then SCENARIOS=("$@"); else
  SCENARIOS=(); for f in "$HERE"/scenarios/*.json; do SCENARIOS+=("$(basename "$f" .json)"); done; fi

RUN="$KPL_TOOLS/kpl-capture-run"; rm -rf "$RUN"; mkdir -p "$RUN"
export HERE RUN KPL_VERSION MOCK_VERSION
export SCENARIO_LIST="${SCENARIOS[*]}"

unshare -rn bash -c '
set -euo pipefail
. "$HERE/harness.sh"
trap kpl_harness_stop EXIT
kpl_harness_start "$RUN"
for s in $SCENARIO_LIST; do
  echo "== $s"
  timeout 180 java -cp "$KPL_CLASSPATH" capture.Capture "$HERE/scenarios/$s.json" "$RUN/$s.raw.json" $KPL_PORT $KPL_PLAIN_PORT > "$RUN/$s.java.log" 2>&1 \
    || { echo "KPL run failed for $s; tail of $RUN/$s.java.log:"; tail -40 "$RUN/$s.java.log"; exit 1; }
  tail -1 "$RUN/$s.java.log"
done
'
python3 "$HERE/build_vectors.py" "$RUN" "$ROOT/vectors/captured/kpl" $SCENARIO_LIST
