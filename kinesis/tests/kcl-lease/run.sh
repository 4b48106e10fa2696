#!/usr/bin/env bash
# The real KCL 3.5.1 reading a local stream with its lease table in a local DynamoDB.
#
#   bash kinesis/tests/kcl-lease/run.sh              a demo: a 4-shard stream, 200 records,
#                                                    one KCL worker; prints what it read and
#                                                    the lease table it left
#   bash kinesis/tests/kcl-lease/run.sh observe [DIR]
#                                                    the scenario behind LEASES.md (about 6
#                                                    minutes): scan dumps after each step and a
#                                                    summary of every DynamoDB request shape
#                                                    KCL sent, written to DIR (default: a new
#                                                    folder under /tmp; the committed fixtures
#                                                    are kinesis/tests/kcl-lease/fixtures)
#
# Installs what it needs first (ci/kinesis-mock, ci/dynamodb, ci/kcl-lease: npm and Maven
# Central), then re-runs itself inside a private network namespace (`unshare -rn`) where
# kinesis-mock (which listens on every interface), moto's DynamoDB, a logging proxy in front of it
# and the KCL workers talk over loopback only. Keeps the servers' and workers' logs in the
# work folder it names at the end.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
MODE="${1:-demo}"

if [ -z "${KCL_LEASE_IN_NETNS:-}" ]; then
    case "$MODE" in demo|observe) ;; *) sed -n '2,20p' "$0" >&2; exit 2 ;; esac
    bash "$ROOT/ci/kinesis-mock" install >&2
    bash "$ROOT/ci/dynamodb" install >&2
    bash "$ROOT/ci/kcl-lease" install >&2
    exec unshare -rn env KCL_LEASE_IN_NETNS=1 bash "$0" "$@"
fi

ip link set lo up
WORK="$(mktemp -d /tmp/kcl-lease.XXXXXX)"
KINESIS=http://127.0.0.1:4568        # kinesis-mock, for the script's own calls
KCL_KINESIS=http://127.0.0.1:4566    # a logging proxy in front of it: what KCL uses
DDB_PORT=8001           # moto's server (ci/dynamodb)
DDB_DIRECT="http://127.0.0.1:$DDB_PORT"  # for the script's own calls (scans), kept out of the log
DDB=http://127.0.0.1:8000  # the logging proxy in front of it: what KCL uses
AWSJSON=(python3 "$HERE/awsjson.py")
PIDS=()
RUNS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Waits until the command succeeds, polling every half second; fails after $1 seconds.
wait_until() {
    local limit="$1" what="$2" started=$SECONDS
    shift 2
    until "$@"; do
        if (( SECONDS - started >= limit )); then
            log "gave up after ${limit}s waiting for: $what (logs in $WORK)"
            exit 1
        fi
        sleep 0.5
    done
    log "$what (after $(( SECONDS - started ))s)"
}

# Like wait_until, but returns 1 instead of ending the script.
wait_until_soft() {
    local limit="$1" what="$2" started=$SECONDS
    shift 2
    until "$@"; do
        (( SECONDS - started >= limit )) && return 1
        sleep 0.5
    done
    log "$what (after $(( SECONDS - started ))s)"
}

# Scans every half second; writes the first scan with an item holding checkpointOwner to $1.
watch_handoff() {
    local table
    while sleep 0.5; do
        table="$(scan 2>/dev/null)" || continue
        if grep -q '"checkpointOwner"' <<<"$table"; then
            printf '%s\n' "$table" >"$1"
            log "a graceful handoff in progress: dumped $1"
            python3 "$HERE/lease_table.py" show <<<"$table" >&2
            return
        fi
    done
}

# The records (partition key, data) that the given runs printed more than once in all.
duplicates() {  # RUN...
    python3 - "${@/#/$WORK/}" <<'PY'
import json, sys
from collections import Counter
seen = Counter()
for path in sys.argv[1:]:
    for line in open(path + ".jsonl"):
        e = json.loads(line)
        if e["event"] == "record":
            seen[(e["pk"], e["data"])] += 1
again = sorted(k for k, n in seen.items() if n > 1)
print(json.dumps({"distinct": len(seen), "lines": sum(seen.values()), "read_more_than_once": len(again),
                  "examples": [k[0] for k in again[:10]]}))
PY
}

start_servers() {
    local km="$ROOT/.tools/kinesis-mock/node_modules/kinesis-local"
    KINESIS_MOCK_CERT_PATH="$km/server.json" KINESIS_MOCK_PLAIN_PORT=4568 KINESIS_MOCK_TLS_PORT=4567 \
    CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
    SPLIT_SHARD_DURATION=0ms MERGE_SHARDS_DURATION=0ms LOG_LEVEL=WARN \
        node "$km/main.js" >"$WORK/kinesis-mock.log" 2>&1 &
    PIDS+=($!)
    bash "$ROOT/ci/dynamodb" start "$DDB_PORT" >"$WORK/dynamodb.log" 2>&1 &
    PIDS+=($!)
    python3 "$HERE/log_proxy.py" 8000 "http://127.0.0.1:$DDB_PORT" "$WORK/ddb-requests.jsonl" \
        2>"$WORK/ddb-proxy.log" &
    PIDS+=($!)
    python3 "$HERE/log_proxy.py" 4566 "$KINESIS" "$WORK/kinesis-requests.jsonl" 2>"$WORK/kinesis-proxy.log" &
    PIDS+=($!)
    wait_until 60 "kinesis-mock is up" curl -sf "$KINESIS/healthcheck" -o /dev/null
    wait_until 60 "the local DynamoDB is up" ddb_up
    wait_until 60 "the logging proxies are up" proxies_up
}

ddb_up() { "${AWSJSON[@]}" "$DDB_DIRECT" dynamodb ListTables >/dev/null 2>&1; }
proxies_up() { (: </dev/tcp/127.0.0.1/8000) 2>/dev/null && (: </dev/tcp/127.0.0.1/4566) 2>/dev/null; }

create_stream() {  # NAME SHARDS
    "${AWSJSON[@]}" "$KINESIS" kinesis CreateStream "{\"StreamName\":\"$1\",\"ShardCount\":$2}" >/dev/null
    wait_until 60 "stream $1 is ACTIVE with $2 shards" stream_active "$1"
}

stream_active() {
    "${AWSJSON[@]}" "$KINESIS" kinesis DescribeStreamSummary "{\"StreamName\":\"$1\"}" |
        grep -q '"StreamStatus": "ACTIVE"'
}

put() {  # STREAM COUNT PREFIX
    log "put $2 records (keys $3-0..$3-$(( $2 - 1 ))): $("${AWSJSON[@]}" "$KINESIS" kinesis put-records "$1" "$2" "$3" | tr -d ' \n')"
}

# Starts a worker: RUN WORKER [harness args...]. RUN names this process (its JSON lines go
# to $WORK/RUN.jsonl, KCL's log with times to $WORK/RUN.log); WORKER is the KCL worker id.
start_worker() {
    local run="$1" worker="$2"
    shift 2
    java -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
        -cp "$ROOT/.tools/kcl-lease/target/classes:$(cat "$ROOT/.tools/kcl-lease/classpath.txt")" \
        KclLeaseHarness --stream "$STREAM" --app "$APP" --worker "$worker" \
        --kinesis "$KCL_KINESIS" --dynamodb "$DDB" "$@" >"$WORK/$run.jsonl" 2>"$WORK/$run.log" &
    eval "PID_${run//[-.]/_}=$!"
    PIDS+=($!)
    RUNS+=("$run")
    log "$run: worker $worker started (pid $!): $*"
}

worker_pid() { eval "echo \$PID_${1//[-.]/_}"; }

# How many distinct records (partition key and data) the worker printed.
records_seen() {  # NAME
    python3 - "$WORK/$1.jsonl" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] == "record":
        seen.add((e["pk"], e["data"]))
print(len(seen))
PY
}

# At least N distinct records printed by the given workers together.
seen_at_least() {  # N NAME...
    local n="$1"
    shift
    python3 - "$n" "${@/#/$WORK/}" <<'PY'
import json, sys
seen = set()
for path in sys.argv[2:]:
    for line in open(path + ".jsonl"):
        e = json.loads(line)
        if e["event"] == "record":
            seen.add((e["pk"], e["data"]))
sys.exit(0 if len(seen) >= int(sys.argv[1]) else 1)
PY
}

scan() { "${AWSJSON[@]}" "$DDB_DIRECT" dynamodb scan-all "$APP"; }

# Checks the lease items of the table with a Python expression (lease_table.py check).
leases_satisfy() {
    local table
    table="$(scan 2>/dev/null)" || return 1  # no table yet
    python3 "$HERE/lease_table.py" check "$1" <<<"$table"
}

# A readable table of the leases: key, owner, counter, checkpoint, parents.
show_leases() { scan | python3 "$HERE/lease_table.py" show; }

dump() {  # NAME: the table, and its description, into $OUT
    scan >"$OUT/$1.json"
    log "dumped $OUT/$1.json"
    show_leases >&2
}

stop_worker() {  # RUN: SIGTERM, wait for its graceful shutdown
    local pid
    pid="$(worker_pid "$1")"
    kill -TERM "$pid"
    wait "$pid" || true
    log "worker $1 stopped: $(tail -n 1 "$WORK/$1.jsonl")"
}

demo() {
    STREAM=demo APP=demo-app
    create_stream "$STREAM" 4
    put "$STREAM" 200 demo
    # --shard-sync-ms: a new application's first worker sleeps this long after creating the
    # leases (LEASES.md section 5); 5 s instead of KCL's 60 s makes the demo a minute shorter.
    start_worker worker-1 worker-1 --shard-sync-ms 5000 --idle-exit-ms 5000 --max-run-ms 240000
    wait "$(worker_pid worker-1)" || true
    local n
    n="$(records_seen worker-1)"
    echo "== what KCL handed the record processor (first 5 of $(grep -c '"event":"record"' "$WORK/worker-1.jsonl") record lines, $n distinct records):"
    grep '"event":"record"' "$WORK/worker-1.jsonl" | head -n 5
    echo "== lifecycle lines:"
    grep -v '"event":"record"' "$WORK/worker-1.jsonl" | grep -v '"event":"checkpoint"'
    echo "== the lease table $APP:"
    show_leases
    echo "== tables: $("${AWSJSON[@]}" "$DDB_DIRECT" dynamodb ListTables | tr -d ' \n')"
    echo "== work folder (logs, the DynamoDB requests KCL made): $WORK"
    [ "$n" = 200 ] || { echo "expected 200 records, saw $n" >&2; exit 1; }
}

# KCL_LEASE_ASSIGNMENT: utilization (KCL 3's default) or lease-count, for every worker.
# KCL_LEASE_KILL: the worker killed in step 4, worker-a (the first, the leader: default) or
# worker-b.
observe() {
    OUT="${1:-$WORK/fixtures}"
    mkdir -p "$OUT"
    STREAM=leases APP=kcl-lease-observe
    local assignment="${KCL_LEASE_ASSIGNMENT:-utilization}" victim="${KCL_LEASE_KILL:-worker-a}" survivor
    survivor="$([ "$victim" = worker-a ] && echo worker-b || echo worker-a)"
    local common=(--idle-between-reads-ms 500 --assignment "$assignment")
    log "observe: assignment $assignment, step 4 kills $victim"
    create_stream "$STREAM" 4
    put "$STREAM" 400 first

    # 1. One worker that never checkpoints: the leases as created, then taken.
    start_worker a1 worker-a --checkpoint none "${common[@]}"
    wait_until 120 "the four leases exist" leases_satisfy 'len(leases) == 4'
    dump 01-created
    wait_until 240 "a1 read the 400 records" seen_at_least 400 a1
    wait_until 60 "worker-a owns the four leases" leases_satisfy 'all(s(i, "leaseOwner") == "worker-a" for i in leases)'
    dump 02-taken-no-checkpoint
    sleep 10
    dump 03-renewed-10s-later
    stop_worker a1
    dump 04-after-graceful-shutdown-no-checkpoint

    # 2. The same worker id again, checkpointing every 3 records: rereads from TRIM_HORIZON.
    #    Then 60 user records in KPL aggregates of 5: checkpoints inside aggregates.
    start_worker a2 worker-a --checkpoint 3 "${common[@]}"
    wait_until 240 "a2 read the 400 records again" seen_at_least 400 a2
    wait_until 60 "every shard checkpointed at a sequence number" \
        leases_satisfy 'all(s(i, "checkpoint").isdigit() for i in leases)'
    dump 05-checkpointed
    log "put 60 user records in aggregates of 5: $("${AWSJSON[@]}" "$KINESIS" kinesis put-aggregated "$STREAM" 60 5 agg | tr -d ' \n')"
    wait_until 120 "a2 read 460 records" seen_at_least 460 a2
    wait_until_soft 30 "a checkpoint inside an aggregate" \
        leases_satisfy 'any(value(i, "checkpointSubSequenceNumber") != "0" for i in leases)' ||
        log "no checkpoint with a sub-sequence number other than 0 in the table now"
    sleep 2
    dump 05b-checkpointed-in-aggregates

    # 3. A reshard under the running worker: split shard 0 at the middle of its range,
    #    then merge shards 2 and 3.
    local range start end mid
    range="$("${AWSJSON[@]}" "$KINESIS" kinesis ListShards "{\"StreamName\":\"$STREAM\"}" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["Shards"][0]["HashKeyRange"]; print(s["StartingHashKey"], s["EndingHashKey"])')"
    read -r start end <<<"$range"
    mid="$(python3 -c "print(($start + $end) // 2 + 1)")"
    "${AWSJSON[@]}" "$KINESIS" kinesis SplitShard \
        "{\"StreamName\":\"$STREAM\",\"ShardToSplit\":\"shardId-000000000000\",\"NewStartingHashKey\":\"$mid\"}" >/dev/null
    wait_until 60 "split of shardId-000000000000 done" stream_active "$STREAM"
    put "$STREAM" 200 after-split
    wait_until 240 "a2 read 660 records" seen_at_least 660 a2
    wait_until 240 "the parent is at SHARD_END and both children checkpointed" leases_satisfy \
        'len(leases) == 6 and any(s(i, "checkpoint") == "SHARD_END" for i in leases) and all(s(i, "checkpoint").isdigit() for i in leases if "parentShardId" in i)'
    dump 06-after-split
    "${AWSJSON[@]}" "$KINESIS" kinesis MergeShards \
        "{\"StreamName\":\"$STREAM\",\"ShardToMerge\":\"shardId-000000000002\",\"AdjacentShardToMerge\":\"shardId-000000000003\"}" >/dev/null
    wait_until 60 "merge of shards 2 and 3 done" stream_active "$STREAM"
    put "$STREAM" 200 after-merge
    wait_until 240 "a2 read 860 records" seen_at_least 860 a2
    wait_until 240 "both merged parents at SHARD_END and the child checkpointed" leases_satisfy \
        'len(leases) == 7 and sum(s(i, "checkpoint") == "SHARD_END" for i in leases) >= 3 and all(s(i, "checkpoint").isdigit() for i in leases if "parentShardId" in i)'
    dump 07-after-merge

    # 4. A second worker joins: up to 150 s for the assignment to move leases to it (KCL 3
    #    balances every third assignment run, 60 s with the default failover time, if at all);
    #    then one worker is killed (SIGKILL, no shutdown) and the other gets its leases.
    #    Meanwhile a scan every half second keeps the first table state that shows a
    #    graceful handoff (an item with checkpointOwner), if one happens.
    watch_handoff "$OUT/08b-handoff-in-progress.json" &
    local watcher=$!
    PIDS+=("$watcher")
    start_worker b1 worker-b --checkpoint batch "${common[@]}"
    if ! wait_until_soft 150 "worker-b owns an open lease" leases_satisfy \
            "any(s(i, 'leaseOwner') == 'worker-b' and s(i, 'checkpoint') != 'SHARD_END' for i in leases)"; then
        log "no lease moved to worker-b in 150 s"
    fi
    dump 08-two-workers
    put "$STREAM" 100 before-kill
    wait_until 120 "the two workers read 960 records" seen_at_least 960 a2 b1
    local victim_run survivor_run
    victim_run="$([ "$victim" = worker-a ] && echo a2 || echo b1)"
    survivor_run="$([ "$victim" = worker-a ] && echo b1 || echo a2)"
    # The victim must have read and checkpointed something of its own before it dies.
    wait_until_soft 90 "$victim_run has checkpointed a record" \
        grep -q '"event":"checkpoint".*"ok":true' "$WORK/$victim_run.jsonl" ||
        log "$victim_run has checkpointed nothing"
    kill -KILL "$(worker_pid "$victim_run")"
    log "$victim ($victim_run) killed (SIGKILL)"
    wait_until 300 "$survivor owns every open lease, none in handoff" leases_satisfy \
        "all(s(i, 'leaseOwner') == '$survivor' and 'checkpointOwner' not in i for i in leases if s(i, 'checkpoint') != 'SHARD_END')"
    dump 09-after-kill-takeover
    kill "$watcher" 2>/dev/null || true
    put "$STREAM" 100 after-kill
    wait_until 120 "the two workers read 1060 records" seen_at_least 1060 a2 b1
    sleep 5
    dump 10-survivor-reading
    stop_worker "$survivor_run"
    dump 11-after-graceful-shutdown
    duplicates a2 b1 >"$OUT/duplicates.json"
    log "records read twice by a2 and b1: $(tr -d ' \n' <"$OUT/duplicates.json")"

    "${AWSJSON[@]}" "$DDB_DIRECT" dynamodb ListTables >"$OUT/tables.json"
    "${AWSJSON[@]}" "$DDB_DIRECT" dynamodb DescribeTable "{\"TableName\":\"$APP\"}" >"$OUT/describe-table.json"
    python3 "$HERE/summarize_requests.py" "$WORK/ddb-requests.jsonl" "$APP" >"$OUT/requests.json"
    python3 "$HERE/summarize_requests.py" --kinesis "$WORK/kinesis-requests.jsonl" >"$OUT/kinesis-requests.json"
    local run
    for run in "${RUNS[@]}"; do  # the lifecycle lines (initialize, shard_ended, ...) of each run
        grep -v '"event":"record"' "$WORK/$run.jsonl" | grep -v '"event":"checkpoint"' >"$OUT/$run.events.jsonl" || true
    done
    log "fixtures in $OUT; logs and the full request log in $WORK"
}

start_servers
case "$MODE" in
    demo) demo ;;
    observe) shift; observe "$@" ;;
esac
