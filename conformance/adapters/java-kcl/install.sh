#!/usr/bin/env bash
# Resolves the pinned KCL (pom.xml next to this file) from Maven Central and compiles the
# adapter; local repository, classes and classpath go into $ROOT/.tools/java-kcl (git-ignored).
# Idempotent: does nothing when the build is there and newer than its sources.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
source "$HERE/../java-protocol/maven-build.sh"
KCL_VERSION="$(sed -n 's:.*<kcl.version>\(.*\)</kcl.version>.*:\1:p' "$HERE/pom.xml")"
maven_build java-kcl "$HERE" "$ROOT/.tools/java-kcl" "$ROOT/.tools/java-kcl/m2" KclAdapter \
  "amazon-kinesis-client-$KCL_VERSION"
