#!/usr/bin/env bash
# Resolves the pinned awslabs KinesisAggregator and KinesisDeaggregator (pom.xml next to this
# file) from Maven Central and compiles the adapter. Classes and classpath go into
# $ROOT/.tools/java-kinesis-aggregator; the local Maven repository is java-kcl's,
# $ROOT/.tools/java-kcl/m2 (all git-ignored). Idempotent: does nothing when the build is there
# and newer than its sources.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
DEST="$ROOT/.tools/java-kinesis-aggregator"
M2="$ROOT/.tools/java-kcl/m2"
AGG_VERSION="$(sed -n 's:.*<aggregator.version>\(.*\)</aggregator.version>.*:\1:p' "$HERE/pom.xml")"
DEAGG_VERSION="$(sed -n 's:.*<deaggregator.version>\(.*\)</deaggregator.version>.*:\1:p' "$HERE/pom.xml")"
CLASS="$DEST/target/classes/AggregatorAdapter.class"
CP="$DEST/classpath.txt"
check() {
  [ -f "$CLASS" ] && [ -f "$CP" ] && [ "$CLASS" -nt "$HERE/AggregatorAdapter.java" ] &&
    [ "$CP" -nt "$HERE/pom.xml" ] &&
    grep -Eq "(^|:)[^:]*/amazon-kinesis-aggregator-$AGG_VERSION\.jar(:|$)" "$CP" &&
    grep -Eq "(^|:)[^:]*/amazon-kinesis-deaggregator-$DEAGG_VERSION\.jar(:|$)" "$CP" &&
    all_present
}
all_present() {
  local jars jar
  IFS=: read -ra jars <"$CP"
  for jar in "${jars[@]}"; do [ -f "$jar" ] || return 1; done
}
if check; then
  echo "java-kinesis-aggregator: amazon-kinesis-aggregator $AGG_VERSION already built in $DEST"
  exit 0
fi
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
mkdir -p "$DEST"
rm -f "$CP"  # build-classpath leaves an unchanged file untouched; check() wants a fresh one
if ! mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$M2" process-classes >"$log" 2>&1 ||
    ! check; then
  sed 's/\x1b\[[0-9;]*m//g' "$log" >&2; echo "java-kinesis-aggregator: install failed" >&2; exit 1
fi
echo "java-kinesis-aggregator: built against amazon-kinesis-aggregator $AGG_VERSION and amazon-kinesis-deaggregator $DEAGG_VERSION in $DEST"
