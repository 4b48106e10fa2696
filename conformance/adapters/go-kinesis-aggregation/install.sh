#!/usr/bin/env bash
# Builds the go-kinesis-aggregation adapter into $ROOT/.tools/go-kinesis-aggregation/adapter.
# The wrapped module and its dependencies are pinned by go.mod and go.sum next to this file
# and come from the Go module proxy; module and build caches live under $ROOT/.tools/go.
# Idempotent: go mod download and go build do nothing when everything is already there.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
DEST="$ROOT/.tools/go-kinesis-aggregation"
export GOPATH="$ROOT/.tools/go" GOMODCACHE="$ROOT/.tools/go/pkg/mod" GOCACHE="$ROOT/.tools/go/cache"
export GOFLAGS="-modcacherw -buildvcs=false -mod=readonly" GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
mkdir -p "$DEST"
cd "$HERE"
# shellcheck source=../../../ci/retry.sh
source "$ROOT/ci/retry.sh"
retry go mod download
go build -trimpath -o "$DEST/adapter" .
echo "go-kinesis-aggregation: built $DEST/adapter ($(go list -m -f '{{.Path}}@{{.Version}}' github.com/awslabs/kinesis-aggregation/go/v2))"
