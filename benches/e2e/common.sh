# Shared by the end-to-end scripts in benches/e2e (source it from bash at the repository's
# root; it sets no shell options).
#   e2e_lines N FILE            writes N lines of 100 bytes ("%09d " then 90 x), numbered
#   e2e_start_mock WORK STREAMS inside `unshare -rn`: brings lo up, starts kinesis-mock
#                               (plain port 4568) with STREAMS ("name:shards,..."), logs to
#                               WORK/mock.log, stops it on exit, waits until it answers, and
#                               exports fake credentials for the clients

e2e_lines() {
  python3 -c '
import sys
for i in range(int(sys.argv[1])):
    print("%09d %s" % (i, "x" * 90))
' "$1" > "$2"
}

e2e_start_mock() {
  local work="$1" streams="$2" m=.tools/kinesis-mock/node_modules/kinesis-local i
  ip link set lo up
  INITIALIZE_STREAMS="$streams" KINESIS_MOCK_CERT_PATH="$m/server.json" \
  KINESIS_MOCK_PLAIN_PORT=4568 KINESIS_MOCK_TLS_PORT=4567 CREATE_STREAM_DURATION=0ms LOG_LEVEL=WARN \
    node "$m/main.js" > "$work/mock.log" 2>&1 &
  E2E_MOCK=$!
  trap 'kill $E2E_MOCK 2>/dev/null || true' EXIT
  for i in $(seq 1 100); do curl -sf http://127.0.0.1:4568/healthcheck >/dev/null && break; sleep 0.2; done
  sleep 1
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
}
