# Shared by capture.sh and conformance/adapters/java-kpl (source it from bash; it sets no
# shell options). The pinned real-KPL harness:
#   kpl_harness_install    idempotent: kinesis-local (npm) into .tools/kinesis-mock, and this
#                          Maven project (amazon-kinesis-producer + capture.KplHarness) into
#                          .tools/kpl-capture-build (local repository .tools/m2)
#   kpl_harness_installed  exit status 0 when both are there and up to date
#   kpl_harness_start RUN  inside `unshare -rn`: brings lo up, starts kinesis-mock (plain 4568,
#                          TLS 4567) and proxy.js (TLS 4443 -> 4568, log RUN/proxy.jsonl) in the
#                          background, logs in RUN/, and waits until both answer
#   kpl_harness_stop       stops both (by PID)
KPL_HARNESS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KPL_HARNESS_ROOT="$(cd "$KPL_HARNESS_DIR/../../.." && pwd)"
KPL_TOOLS="$KPL_HARNESS_ROOT/.tools"
# shellcheck source=../../../ci/retry.sh
source "$KPL_HARNESS_ROOT/ci/retry.sh"
KPL_VERSION=0.15.12
MOCK_VERSION=0.6.2
KPL_MOCK_DIR="$KPL_TOOLS/kinesis-mock/node_modules/kinesis-local"
KPL_BUILD="$KPL_TOOLS/kpl-capture-build"
KPL_CLASSPATH="$KPL_BUILD/kpl-capture-0.jar:$KPL_BUILD/lib/*"
KPL_PORT=4443        # proxy.js (TLS), what KPL talks to
KPL_PLAIN_PORT=4568  # kinesis-mock plain HTTP, for setup and read-back
KPL_MOCK_TLS_PORT=4567

kpl_harness_mock_ok() {
  [ "$(node -p "try{require('$KPL_MOCK_DIR/package.json').version}catch(e){''}" 2>/dev/null)" = "$MOCK_VERSION" ]
}

kpl_harness_build_ok() {
  local jar="$KPL_BUILD/kpl-capture-0.jar" f
  [ -f "$jar" ] && [ -f "$KPL_BUILD/lib/amazon-kinesis-producer-$KPL_VERSION.jar" ] || return 1
  [ "$jar" -nt "$KPL_HARNESS_DIR/pom.xml" ] || return 1
  for f in "$KPL_HARNESS_DIR"/src/main/java/capture/*.java; do [ "$jar" -nt "$f" ] || return 1; done
}

kpl_harness_installed() { kpl_harness_mock_ok && kpl_harness_build_ok; }

kpl_harness_install() {
  mkdir -p "$KPL_TOOLS"
  if ! kpl_harness_mock_ok; then
    retry npm install --no-audit --no-fund --prefix "$KPL_TOOLS/kinesis-mock" "kinesis-local@$MOCK_VERSION" >&2
  fi
  if ! kpl_harness_build_ok; then
    local log; log="$(mktemp)"
    if ! (cd "$KPL_HARNESS_DIR" && mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$KPL_TOOLS/m2" \
        -Dkpl.version="$KPL_VERSION" package) >"$log" 2>&1; then
      sed 's/\x1b\[[0-9;]*m//g' "$log" >&2; rm -f "$log"; return 1
    fi
    rm -f "$log"
    touch "$KPL_BUILD/kpl-capture-0.jar"  # an unchanged jar is not rewritten; mark it fresh
  fi
  kpl_harness_installed
}

kpl_harness_start() {
  local run="$1" i
  ip link set lo up
  # SHARD_LIMIT: the adapter creates a fresh stream per request (kinesis-mock's default is 50).
  KINESIS_MOCK_CERT_PATH="$KPL_MOCK_DIR/server.json" KINESIS_MOCK_PLAIN_PORT=$KPL_PLAIN_PORT \
  KINESIS_MOCK_TLS_PORT=$KPL_MOCK_TLS_PORT SHARD_LIMIT=100000 \
  CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
  SPLIT_SHARD_DURATION=0ms MERGE_SHARDS_DURATION=0ms LOG_LEVEL=WARN \
    node "$KPL_MOCK_DIR/main.js" </dev/null >"$run/kinesis-mock.log" 2>&1 &
  KPL_MOCK_PID=$!
  node "$KPL_HARNESS_DIR/proxy.js" "$KPL_MOCK_DIR/server.json" $KPL_PORT $KPL_PLAIN_PORT "$run/proxy.jsonl" \
    </dev/null >"$run/proxy.log" 2>&1 &
  KPL_PROXY_PID=$!
  for i in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$KPL_PLAIN_PORT/healthcheck" >/dev/null 2>&1 && grep -q listening "$run/proxy.log" && return 0
    sleep 0.2
  done
  echo "kinesis-mock or proxy.js did not come up; see $run/kinesis-mock.log and $run/proxy.log" >&2
  return 1
}

kpl_harness_stop() {
  local p
  for p in ${KPL_MOCK_PID:-} ${KPL_PROXY_PID:-}; do kill "$p" 2>/dev/null || true; done
  for p in ${KPL_MOCK_PID:-} ${KPL_PROXY_PID:-}; do wait "$p" 2>/dev/null || true; done
  KPL_MOCK_PID= KPL_PROXY_PID=
}
