#!/usr/bin/env bash
# Installs the pinned aws_kinesis_agg (and its pinned dependencies) into $ROOT/.tools/python-aws_kinesis_agg.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DEST="$ROOT/.tools/python-aws_kinesis_agg"
PINS=(aws_kinesis_agg==1.2.3 six==1.17.0 protobuf==7.36.2)
check() {
  PYTHONPATH="$DEST" python3 -s - "${PINS[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if all(m.version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
}
if [ -d "$DEST" ] && check; then
  echo "python-aws_kinesis_agg: ${PINS[*]} already installed in $DEST"
  exit 0
fi
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
rm -rf "$DEST"
if ! python3 -m pip install --disable-pip-version-check --no-warn-conflicts --no-deps \
      --target "$DEST" "${PINS[@]}" >"$log" 2>&1 || ! check; then
  cat "$log" >&2; echo "python-aws_kinesis_agg: install failed" >&2; exit 1
fi
echo "python-aws_kinesis_agg: installed ${PINS[*]} in $DEST"
