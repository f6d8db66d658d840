#!/usr/bin/env bash
# Install, upgrade, remove and purge the .deb in a fresh Debian root made
# with debootstrap (needs root and a Debian mirror). Also installs the arm64
# package's files and scripts there (--force-architecture).
#
#   scripts/build-deb.sh native && scripts/build-deb.sh aarch64 && scripts/deb-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
native=$(ls target/deb/yizhan_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1 || true)
arm=$(ls target/deb/yizhan_*_arm64.deb 2>/dev/null | head -1 || true)
# Both packages are required: a missing one fails the test, never skips it.
[ -n "$native" ] || { echo "FAILED: no native .deb (scripts/build-deb.sh native)" >&2; exit 1; }
[ -n "$arm" ] || { echo "FAILED: no arm64 .deb (scripts/build-deb.sh aarch64)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debootstrap --variant=minbase --include=adduser bookworm "$root" "$mirror" >/dev/null
inside() { chroot "$root" "$@"; }
ok() { echo "  ok: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# An upgrade needs a newer version: repackage the same files as <ver>+1.
work=$(mktemp -d)
dpkg-deb -R "$native" "$work/pkg"
sed -i 's/^Version: \(.*\)$/Version: \1+upgrade1/' "$work/pkg/DEBIAN/control"
dpkg-deb --root-owner-group --build "$work/pkg" "$root/tmp/next.deb" >/dev/null
cp "$native" "$root/tmp/yizhan.deb"

echo "==> install"
inside dpkg -i /tmp/yizhan.deb >/dev/null
inside getent passwd yizhan >/dev/null || fail "no yizhan user"; ok "system user yizhan"
[ "$(inside stat -c '%U:%G %a' /var/lib/yizhan)" = "yizhan:yizhan 750" ] || fail "/var/lib/yizhan"; ok "/var/lib/yizhan yizhan:yizhan 0750"
[ "$(inside stat -c '%G %a' /etc/yizhan/yizhan.toml)" = "yizhan 640" ] || fail "config perms"; ok "/etc/yizhan/yizhan.toml group yizhan 0640"
grep -qx /etc/yizhan/yizhan.toml "$root/var/lib/dpkg/info/yizhan.conffiles" || fail "not a conffile"; ok "config is a conffile"
inside /usr/bin/yizhan --version
inside env YIZHAN_CONFIG=/etc/yizhan/yizhan.toml /usr/bin/yizhan config check >/dev/null; ok "config check passes"
[ -f "$root/lib/systemd/system/yizhan.service" ] || fail "no unit"; ok "systemd unit installed"

echo "==> upgrade keeps the operator's config and the data"
echo "# edited by the operator" >> "$root/etc/yizhan/yizhan.toml"
echo "station data" > "$root/var/lib/yizhan/yizhan.db"
inside dpkg -i --force-confold /tmp/next.deb >/dev/null
grep -q "edited by the operator" "$root/etc/yizhan/yizhan.toml" || fail "conffile lost"; ok "conffile kept"
[ -s "$root/var/lib/yizhan/yizhan.db" ] || fail "data lost on upgrade"; ok "data kept"
inside dpkg -s yizhan | grep -q 'Version: .*+upgrade1' || fail "not upgraded"; ok "version upgraded"

echo "==> remove keeps the data, purge deletes it"
inside dpkg -r yizhan >/dev/null
[ ! -e "$root/usr/bin/yizhan" ] || fail "binary left"; ok "binary removed"
[ -s "$root/var/lib/yizhan/yizhan.db" ] || fail "data deleted on remove"; ok "data kept on remove"
inside dpkg -P yizhan >/dev/null
[ ! -e "$root/var/lib/yizhan" ] || fail "data left on purge"; ok "data deleted on purge"
! inside getent passwd yizhan >/dev/null || fail "user left on purge"; ok "user removed on purge"
[ ! -e "$root/etc/yizhan/yizhan.toml" ] || fail "conffile left on purge"; ok "config removed on purge"

echo "==> arm64 package (files and scripts; the binary cannot run here)"
cp "$arm" "$root/tmp/arm.deb"
# libc6:arm64 cannot be satisfied in an amd64 root: force that one.
inside dpkg --force-architecture --force-depends -i /tmp/arm.deb >/dev/null 2>&1
# ELF e_machine (bytes 18-19) 0xb7 = AArch64.
[ "$(od -An -tx1 -j18 -N2 "$root/usr/bin/yizhan" | tr -d ' \n')" = "b700" ] \
    || fail "not an aarch64 ELF"
ok "aarch64 binary installed, user $(inside id -un yizhan) created"
echo "deb install/upgrade/remove/purge: ok"
