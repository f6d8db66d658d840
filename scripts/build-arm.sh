#!/usr/bin/env bash
# Builds yizhan for the kiosks WITHOUT Docker, with Debian's cross linkers.
#
#   scripts/build-arm.sh                 # both targets, release
#   scripts/build-arm.sh aarch64         # one target
#   INSTALL=1 scripts/build-arm.sh       # also apt-get/rustup what it needs
#
# Output: target/<triple>/release/yizhan (stripped, per the release profile).
# With Docker, `cross build --release --target …` (it reads Cross.toml)
# builds the same (cross looks for Cross.toml unless told).
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A TRIPLE=([aarch64]=aarch64-unknown-linux-gnu [armv7]=armv7-unknown-linux-gnueabihf)
declare -A GCC=([aarch64]=aarch64-linux-gnu [armv7]=arm-linux-gnueabihf)
declare -A PKGS=([aarch64]="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" [armv7]="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross")

targets=("${@:-aarch64 armv7}")
# shellcheck disable=SC2206
targets=(${targets[*]})

for t in "${targets[@]}"; do
    triple=${TRIPLE[$t]:?unknown target $t (aarch64 or armv7)}
    gcc=${GCC[$t]}
    if [ "${INSTALL:-0}" = 1 ]; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get install -y -q --no-install-recommends ${PKGS[$t]} qemu-user
        rustup target add "$triple"
    fi
    command -v "$gcc-gcc" >/dev/null || { echo "missing $gcc-gcc: apt-get install ${PKGS[$t]} (or INSTALL=1)" >&2; exit 1; }
    upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
    lower=$(echo "$triple" | tr '-' '_')
    # The linker for Rust, the C compiler for bundled SQLite and ring.
    export "CARGO_TARGET_${upper}_LINKER=$gcc-gcc"
    export "CC_${lower}=$gcc-gcc"
    export "AR_${lower}=$gcc-ar"
    echo "==> building $triple"
    cargo build --locked --release --target "$triple"
    ls -l "target/$triple/release/yizhan"
done
