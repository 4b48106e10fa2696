#!/usr/bin/env bash
# Starts the aws-kinesis-agg adapter (install first with install.sh next to this file).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
export NODE_PATH="$ROOT/.tools/node-aws-kinesis-agg/node_modules"
exec node "$ROOT/conformance/adapters/node-aws-kinesis-agg/adapter.js" "$@"
