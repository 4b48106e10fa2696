#!/usr/bin/env bash
# Installs the pinned aws-kinesis-agg into $ROOT/.tools/node-aws-kinesis-agg (its own
# dependencies as npm resolves them: protobufjs 7.2.4 and async 2.6.4 are pinned by the package).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DEST="$ROOT/.tools/node-aws-kinesis-agg"
PKG=aws-kinesis-agg
VERSION=4.2.8
check() {
  [ "$(node -p "require('$DEST/node_modules/$PKG/package.json').version" 2>/dev/null)" = "$VERSION" ] &&
    NODE_PATH="$DEST/node_modules" node -e "require('$PKG')" 2>/dev/null
}
if check; then
  echo "node-aws-kinesis-agg: $PKG@$VERSION already installed in $DEST"
  exit 0
fi
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
mkdir -p "$DEST"
# shellcheck source=../../../ci/retry.sh
source "$ROOT/ci/retry.sh"
if ! retry npm install --prefix "$DEST" --save-exact --no-audit --no-fund --ignore-scripts --loglevel=error \
      "$PKG@$VERSION" >"$log" 2>&1 || ! check; then
  cat "$log" >&2; echo "node-aws-kinesis-agg: install failed" >&2; exit 1
fi
echo "node-aws-kinesis-agg: installed $PKG@$VERSION in $DEST"
