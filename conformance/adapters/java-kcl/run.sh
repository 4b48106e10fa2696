#!/usr/bin/env bash
# Starts the KCL adapter (install first with install.sh next to this file).
# KCL_WITHOUT_JAXB=1 leaves jaxb-api off the classpath: KCL as its POM declares it, on which
# KCL's deaggregation error path throws NoClassDefFoundError on Java 11+ (see README.md).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DEST="$ROOT/.tools/java-kcl"
if [ ! -f "$DEST/classpath.txt" ] || [ ! -f "$DEST/target/classes/KclAdapter.class" ]; then
  echo "java-kcl: not built; run conformance/adapters/java-kcl/install.sh" >&2
  exit 1
fi
CP="$(cat "$DEST/classpath.txt")"
if [ "${KCL_WITHOUT_JAXB:-0}" = 1 ]; then
  CP="$(tr ':' '\n' <<<"$CP" | grep -v '/jaxb-api-[^/]*\.jar$' | paste -sd:)"
fi
exec java -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.logFile=System.err \
  -cp "$DEST/target/classes:$CP" KclAdapter "$@"
