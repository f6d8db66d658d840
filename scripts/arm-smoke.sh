#!/usr/bin/env bash
# Smoke test of an ARM build under qemu-user: --version, then a real daemon
# on a temporary data directory, a clerk and their session, one check-in over
# HTTP (scan → accept with no photo required), the receipt, a clean SIGTERM,
# and `db check`. A failing step names itself (curl's exit status alone
# does not say which request failed).
#
#   scripts/arm-smoke.sh aarch64|armv7
set -euo pipefail
trap 'echo "arm-smoke: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
case "${1:-aarch64}" in
    aarch64) triple=aarch64-unknown-linux-gnu; qemu="qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
    armv7) triple=armv7-unknown-linux-gnueabihf; qemu="qemu-arm -L /usr/arm-linux-gnueabihf" ;;
    *) echo "usage: $0 aarch64|armv7" >&2; exit 2 ;;
esac
bin="target/$triple/release/yizhan"
[ -x "$bin" ] || { echo "no $bin: run scripts/build-arm.sh ${1:-aarch64} first" >&2; exit 1; }
$qemu "$bin" --version

dir=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export YIZHAN_STORAGE__DATA_DIR="$dir/data" YIZHAN_API__LISTEN="127.0.0.1:$port" \
       YIZHAN_STATION__MIN_PHOTOS=0 YIZHAN_STATION__CLOCK_CHECK=off YIZHAN_STORAGE__MIN_FREE_MB=0
$qemu "$bin" run > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
api="http://127.0.0.1:$port/api/v1"
# A clerk (Argon2 on this architecture) and their session.
echo 2468 | $qemu "$bin" clerk add smoke --name "Smoke test" > /dev/null
token=$(curl -fs "$api/sessions" -H 'content-type: application/json' \
      -d '{"clerk_id":"smoke","pin":"2468"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
auth="Authorization: Bearer $token"
id=$(curl -fs "$api/scans" -H "$auth" -H 'content-type: application/json' \
      -d '{"code":"RT2026112200123","channel":"clerk"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["parcel_id"])')
curl -fs "$api/parcels/$id/accept" -H "$auth" -H 'content-type: application/json' \
     -d '{"waybill_no":"SF1234567890123"}' | grep -q '"receipt_id"'
# The receipt is the clerk's to show (or the customer's, with the draft's
# key or the receipt's own token: SPEC §7, issue 24).
curl -fs "$api/parcels/$id/receipt.png" -H "$auth" -o "$dir/receipt.png"
[ -s "$dir/receipt.png" ]
kill -TERM $pid
wait $pid
$qemu "$bin" db check > /dev/null
echo "ARM smoke test ($triple): ok"
