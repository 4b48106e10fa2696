#!/usr/bin/env bash
# Installs the pinned aiokpl and its whole pinned dependency closure (--no-deps) into
# $ROOT/.tools/python-aiokpl. Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DEST="$ROOT/.tools/python-aiokpl"
PINS=(aiobotocore==3.10.0 aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aioitertools==0.13.0 aiokpl==0.2.0 aiosignal==1.4.0 anyio==4.16.0 attrs==26.1.0 botocore==1.43.117 frozenlist==1.8.0 idna==3.20 jmespath==1.1.0 multidict==7.2.1 propcache==0.5.4 python_dateutil==2.9.0.post0 six==1.17.0 sortedcontainers==2.4.0 typing_extensions==4.16.0 urllib3==2.8.0 wrapt==2.5.2 yarl==1.25.1)
check() {
  PYTHONPATH="$DEST" python3 -s - "${PINS[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if all(m.version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
}
if [ -d "$DEST" ] && check; then
  echo "python-aiokpl: aiokpl==0.2.0 (${#PINS[@]} pinned packages) already installed in $DEST"
  exit 0
fi
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
rm -rf "$DEST"
if ! python3 -m pip install --disable-pip-version-check --no-warn-conflicts --no-deps \
      --target "$DEST" "${PINS[@]}" >"$log" 2>&1 || ! check; then
  cat "$log" >&2; echo "python-aiokpl: install failed" >&2; exit 1
fi
echo "python-aiokpl: installed aiokpl==0.2.0 (${#PINS[@]} pinned packages) in $DEST"
