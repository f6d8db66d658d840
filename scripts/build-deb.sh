#!/usr/bin/env bash
# Packages a built yizhan as a .deb with dpkg-deb (no extra tools).
#
#   scripts/build-deb.sh aarch64|armv7|native     → target/deb/yizhan_<ver>_<arch>.deb
#
# Contents: /usr/bin/yizhan; /etc/yizhan/yizhan.toml (a conffile: upgrades
# keep the operator's edits); /lib/systemd/system/yizhan.service; docs. The
# maintainer scripts (packaging/debian) create the `yizhan` system user and
# /var/lib/yizhan, and keep the data on remove (only purge deletes it).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-native}" in
    aarch64) triple=aarch64-unknown-linux-gnu; arch=arm64 ;;
    armv7) triple=armv7-unknown-linux-gnueabihf; arch=armhf ;;
    native) triple=""; arch=$(dpkg --print-architecture) ;;
    *) echo "usage: $0 aarch64|armv7|native" >&2; exit 2 ;;
esac
bin="target/${triple:+$triple/}release/yizhan"
[ -x "$bin" ] || { echo "no $bin: build it first (cargo build --release / scripts/build-arm.sh)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/bin/yizhan"
install -D -m 0640 config/yizhan.toml "$root/etc/yizhan/yizhan.toml"
install -D -m 0644 systemd/yizhan.service "$root/lib/systemd/system/yizhan.service"
for doc in README.md docs/OPERATIONS.md docs/PROTOCOL.md; do
    install -D -m 0644 "$doc" "$root/usr/share/doc/yizhan/$(basename "$doc")"
done
install -d "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
echo /etc/yizhan/yizhan.toml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: yizhan
Version: $version
Architecture: $arch
Maintainer: yizhan developers <dev@yizhan.invalid>
Installed-Size: $size
Depends: adduser, libc6
Recommends: systemd
Section: misc
Priority: optional
Homepage: https://yizhan.invalid
Description: edge agent for parcel drop-off stations (returns check-in)
 Scans return codes, records parcels with photos and waybills in a local
 SQLite database, works offline, and syncs to the merchant platform over
 MQTT and HTTPS. Runs as the systemd service yizhan.
CONTROL
mkdir -p target/deb
out="target/deb/yizhan_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "$out"
