#!/usr/bin/env bash
# Starts the go-kinesis-aggregation adapter (build it first with install.sh next to this file).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="$ROOT/.tools/go-kinesis-aggregation/adapter"
if [ ! -x "$BIN" ]; then
  echo "go-kinesis-aggregation: $BIN missing; run conformance/adapters/go-kinesis-aggregation/install.sh" >&2
  exit 1
fi
exec "$BIN" "$@"
