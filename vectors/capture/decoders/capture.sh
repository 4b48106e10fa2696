#!/usr/bin/env bash
# Re-captures vectors/captured/decoders/: what every decoder returns for every decode vector
# of the corpus (vectors/corpus/decode, vectors/corpus/malformed). Installs each adapter of
# ci/adapters.sh (the list ci/conformance runs) into .tools/, then runs
#   kpl conformance --capture-decoders <dir> --adapter NAME=... ...
# which writes one NAME.json per adapter that decodes, plus kpl-codec.json (kpl-codec's kcl
# and strict policies). The old files are replaced only when every adapter has run.
# Never edit the captured files by hand: run this again (format: vectors/FORMAT.md).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source ci/adapters.sh

args=()
for entry in "${ADAPTERS[@]}"; do
    name="${entry%%=*}"
    dir="${entry#*=}"
    bash "conformance/adapters/$dir/install.sh"
    args+=(--adapter "$name=bash conformance/adapters/$dir/run.sh")
done

cargo build --locked -p kpl-cli
out="vectors/captured/decoders"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
./target/debug/kpl conformance --timeout 60 --capture-decoders "$tmp" "${args[@]}"
mkdir -p "$out"
rm -f "$out"/*.json
cp "$tmp"/*.json "$out"/
echo "captured into $out: $(cd "$out" && ls *.json | tr '\n' ' ')"
