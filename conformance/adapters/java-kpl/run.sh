#!/usr/bin/env bash
# Starts the real-KPL adapter (install first with install.sh next to this file). Everything runs
# inside a private user, network and PID namespace (`unshare -rn --pid`, loopback only):
# kinesis-mock and proxy.js (vectors/capture/kpl/harness.sh) in the background, then the adapter
# JVM in the foreground on this script's stdin/stdout. Logs go to .tools/java-kpl/runs/<id>/,
# never to stdout. Clean-up: when stdin closes the JVM exits and the mock and proxy are
# stopped; on SIGTERM/SIGINT/SIGHUP this script SIGKILLs unshare, whose child (PID 1 of the
# namespace) then dies (--kill-child), and with it everything in the namespace; the runner's
# SIGKILL to the process group reaches every process anyway (none of them leaves the group).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
. "$ROOT/vectors/capture/kpl/harness.sh"
DEST="$KPL_TOOLS/java-kpl"

if [ "${1:-}" = --inside ]; then
  # PID 1 of the namespace (or, without a PID namespace, a plain child of unshare).
  trap kpl_harness_stop EXIT
  trap 'exit 143' TERM INT HUP
  kpl_harness_start "$RUN"
  # The JVM's own warnings go to stdout by default: send them to stderr. No hsperfdata file:
  # its name is the PID, which repeats across PID namespaces.
  java -Xlog:disable -Xlog:all=warning:stderr -XX:-UsePerfData \
    -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx512m \
    -cp "$DEST/classes:$KPL_CLASSPATH" KplAdapter $KPL_PORT $KPL_PLAIN_PORT "$RUN/proxy.jsonl" "$RUN/kpl.log" \
    2>>"$RUN/adapter.stderr"
  exit $?
fi

if ! kpl_harness_installed || [ ! -f "$DEST/classes/KplAdapter.class" ]; then
  echo "java-kpl: not installed; run conformance/adapters/java-kpl/install.sh" >&2
  exit 1
fi
mkdir -p "$DEST/runs"
# keep the logs of the last 10 starts, and of any start in the last hour
{ ls -1dt "$DEST/runs"/*/ 2>/dev/null || true; } | tail -n +10 |
  while read -r d; do if [ -n "$(find "$d" -maxdepth 0 -mmin +60)" ]; then rm -rf "$d"; fi; done
RUN="$(mktemp -d "$DEST/runs/$(date +%Y%m%dT%H%M%S)-XXXX")"
export RUN
echo "java-kpl: logs in $RUN" >&2
NS=(unshare -rn --pid --fork --kill-child)
if ! "${NS[@]}" true 2>/dev/null; then
  echo "java-kpl: no PID namespace here; clean-up relies on the process group and traps" >&2
  NS=(unshare -rn)
fi
# In the background (stdin passed on explicitly) so that a signal to this script is handled at
# once: unshare --fork blocks SIGTERM and SIGINT while it waits, but SIGKILL reaches it, and
# --kill-child then takes the namespace down.
"${NS[@]}" bash "$HERE/run.sh" --inside <&0 &
ns=$!
trap 'kill -KILL $ns 2>/dev/null; exit 143' TERM INT HUP
wait $ns
