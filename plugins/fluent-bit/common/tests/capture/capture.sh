#!/usr/bin/env bash
# Captures what the real Fluent Bit 5.1.1 does, for the byte-for-byte tests of kpl-fluent-bit:
#   tests/fixtures/kinesis_streams.json  the Data kinesis_streams sends for each event
#   tests/fixtures/record_accessor.json  the tags the record accessor renders
# RUN BY HAND, NOT IN CI: it needs the real Fluent Bit (FLUENT_BIT, else
# ../shared/tools/fluent-bit/bin/fluent-bit beside the project), openssl, python3 (stdlib only)
# and rustc. The fixtures it writes are committed; rerun it after changing the corpus in
# capture.py, and review the diff.
#
# kinesis_streams only speaks TLS: kinesis_mock.py serves HTTPS with a throwaway self-signed
# certificate for localhost, and Fluent Bit trusts it (tls.ca_file). dump_plugin.rs, built
# here with rustc, is a proxy output that records the chunks exactly as outputs get them.
# Everything listens on 127.0.0.1, on ephemeral ports; every process started is stopped at
# the end (trap).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../../.." && pwd)"
export FLUENT_BIT="${FLUENT_BIT:-$root/../shared/tools/fluent-bit/bin/fluent-bit}"
if [ ! -x "$FLUENT_BIT" ]; then
    echo "capture.sh: no Fluent Bit at $FLUENT_BIT (set FLUENT_BIT)" >&2
    exit 1
fi
for tool in openssl python3 rustc; do
    command -v "$tool" >/dev/null || { echo "capture.sh: $tool is missing" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
rustc --edition 2021 -O --crate-type cdylib -o "$work/libkpl_capture_dump.so" "$here/dump_plugin.rs"

python3 "$here/capture.py" "$work/runs" "$work/libkpl_capture_dump.so" "$work/cert.pem" \
    "$work/key.pem" "$here/../fixtures" &
pids+=("$!")
wait "${pids[0]}"
