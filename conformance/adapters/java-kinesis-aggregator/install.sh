#!/usr/bin/env bash
# Resolves the pinned awslabs KinesisAggregator and KinesisDeaggregator (pom.xml next to this
# file) from Maven Central and compiles the adapter. Classes and classpath go into
# $ROOT/.tools/java-kinesis-aggregator; the local Maven repository is java-kcl's,
# $ROOT/.tools/java-kcl/m2 (all git-ignored). Idempotent: does nothing when the build is there
# and newer than its sources.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
source "$HERE/../java-protocol/maven-build.sh"
AGG_VERSION="$(sed -n 's:.*<aggregator.version>\(.*\)</aggregator.version>.*:\1:p' "$HERE/pom.xml")"
DEAGG_VERSION="$(sed -n 's:.*<deaggregator.version>\(.*\)</deaggregator.version>.*:\1:p' "$HERE/pom.xml")"
maven_build java-kinesis-aggregator "$HERE" "$ROOT/.tools/java-kinesis-aggregator" \
  "$ROOT/.tools/java-kcl/m2" AggregatorAdapter \
  "amazon-kinesis-aggregator-$AGG_VERSION" "amazon-kinesis-deaggregator-$DEAGG_VERSION"
