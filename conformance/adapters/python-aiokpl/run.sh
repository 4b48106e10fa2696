#!/usr/bin/env bash
# Starts the aiokpl adapter (install first with install.sh next to this file).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
export PYTHONPATH="$ROOT/.tools/python-aiokpl:$ROOT/conformance/adapters/python-protocol"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
exec python3 -s "$ROOT/conformance/adapters/python-aiokpl/adapter.py" "$@"
