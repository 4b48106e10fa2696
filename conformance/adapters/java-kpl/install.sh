#!/usr/bin/env bash
# Installs what the real-KPL adapter needs, pinned, into $ROOT/.tools (git-ignored), shared
# with the capture harness (vectors/capture/kpl/harness.sh): kinesis-local 0.6.2 from npm
# (.tools/kinesis-mock), amazon-kinesis-producer 0.15.12 and the harness classes from Maven
# Central (local repository .tools/m2, build .tools/kpl-capture-build); then compiles
# KplAdapter.java into .tools/java-kpl/classes. Idempotent: does nothing when all is there
# and newer than its sources.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
. "$ROOT/vectors/capture/kpl/harness.sh"
DEST="$KPL_TOOLS/java-kpl"
CLASS="$DEST/classes/KplAdapter.class"
for tool in node npm java javac mvn curl unshare ip; do
  command -v "$tool" >/dev/null || { echo "java-kpl: needs $tool on PATH" >&2; exit 1; }
done
if kpl_harness_installed && [ -f "$CLASS" ] && [ "$CLASS" -nt "$HERE/KplAdapter.java" ] &&
    [ "$CLASS" -nt "$KPL_BUILD/kpl-capture-0.jar" ]; then
  echo "java-kpl: amazon-kinesis-producer $KPL_VERSION and kinesis-local $MOCK_VERSION already installed"
  exit 0
fi
kpl_harness_install || { echo "java-kpl: install failed" >&2; exit 1; }
rm -rf "$DEST/classes"; mkdir -p "$DEST/classes"
javac -nowarn --release 17 -encoding UTF-8 -cp "$KPL_CLASSPATH" -d "$DEST/classes" "$HERE/KplAdapter.java"
echo "java-kpl: built against amazon-kinesis-producer $KPL_VERSION (kinesis-local $MOCK_VERSION) in $DEST"
