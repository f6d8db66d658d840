#!/usr/bin/env bash
# The binary-size yardstick of docs/PERFORMANCE.md ("The Prometheus writer"):
# builds the same metric set written by hand and through prometheus-client,
# with yizhan's release profile, and prints both stripped sizes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
cp "$here/prometheus-client.Cargo.toml" "$work/Cargo.toml"
cp "$here/prometheus-client.rs" "$work/src/main.rs"
cd "$work"
cargo build --release -q
echo "by hand:           $(stat -c %s target/release/pc) B"
cargo build --release -q --features pc
echo "prometheus-client: $(stat -c %s target/release/pc) B"
