#!/usr/bin/env bash
# The side-by-side decode throughput table of BENCHMARKS.md: every adapter of ci/adapters.sh
# that can bench decodes the benchmarks' `small` corpus 10 times in its own process, one
# run, all pinned to one core (`taskset -c ${CORE:-1}`), MD5 checked, every user record
# iterated. Installs the pinned peers into .tools/ first.
#   bash benches/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/adapters.sh
cargo build --release --locked -q -p kpl-cli -p kpl-conformance
args=(--adapter kpl=target/release/kpl-adapter)
for entry in "${ADAPTERS[@]}"; do
    name="${entry%%=*}"
    dir="${entry#*=}"
    bash "conformance/adapters/$dir/install.sh" >/dev/null
    # Adapters that do not decode (encoders only) are skipped by the runner itself.
    args+=(--adapter "$name=bash conformance/adapters/$dir/run.sh")
done
taskset -c "${CORE:-1}" ./target/release/kpl conformance --bench --iterations 10 "${args[@]}"
