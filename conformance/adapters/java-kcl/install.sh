#!/usr/bin/env bash
# Resolves the pinned KCL (pom.xml next to this file) from Maven Central and compiles the
# adapter; local repository, classes and classpath go into $ROOT/.tools/java-kcl (git-ignored).
# Idempotent: does nothing when the build is there and newer than its sources.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
DEST="$ROOT/.tools/java-kcl"
KCL_VERSION="$(sed -n 's:.*<kcl.version>\(.*\)</kcl.version>.*:\1:p' "$HERE/pom.xml")"
CLASS="$DEST/target/classes/KclAdapter.class"
CP="$DEST/classpath.txt"
check() {
  [ -f "$CLASS" ] && [ -f "$CP" ] && [ "$CLASS" -nt "$HERE/KclAdapter.java" ] &&
    [ "$CP" -nt "$HERE/pom.xml" ] &&
    grep -Eq "(^|:)[^:]*/amazon-kinesis-client-$KCL_VERSION\.jar(:|$)" "$CP" &&
    all_present
}
all_present() {
  local jars jar
  IFS=: read -ra jars <"$CP"
  for jar in "${jars[@]}"; do [ -f "$jar" ] || return 1; done
}
if check; then
  echo "java-kcl: amazon-kinesis-client $KCL_VERSION already built in $DEST"
  exit 0
fi
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
mkdir -p "$DEST"
rm -f "$CP"  # build-classpath leaves an unchanged file untouched; check() wants a fresh one
if ! mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$DEST/m2" process-classes >"$log" 2>&1 ||
    ! check; then
  sed 's/\x1b\[[0-9;]*m//g' "$log" >&2; echo "java-kcl: install failed" >&2; exit 1
fi
echo "java-kcl: built against amazon-kinesis-client $KCL_VERSION in $DEST"
