#!/usr/bin/env bash
# Starts the KinesisAggregator adapter (install first with install.sh next to this file).
# KAGG_WITHOUT_JAXB=1 leaves jaxb-api off the classpath: the deaggregator as its POM declares
# it, on which KCL 1.8.8's deaggregation error path throws NoClassDefFoundError on Java 11+.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DEST="$ROOT/.tools/java-kinesis-aggregator"
if [ ! -f "$DEST/classpath.txt" ] || [ ! -f "$DEST/target/classes/AggregatorAdapter.class" ]; then
  echo "java-kinesis-aggregator: not built; run conformance/adapters/java-kinesis-aggregator/install.sh" >&2
  exit 1
fi
CP="$(cat "$DEST/classpath.txt")"
if [ "${KAGG_WITHOUT_JAXB:-0}" = 1 ]; then
  CP="$(tr ':' '\n' <<<"$CP" | grep -v '/jaxb-api-[^/]*\.jar$' | paste -sd:)"
fi
exec java -XX:+UseSerialGC -cp "$DEST/target/classes:$CP" AggregatorAdapter "$@"
