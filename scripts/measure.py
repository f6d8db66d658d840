#!/usr/bin/env python3
"""Footprint of a yizhan build: binary size, RSS at idle and under a
check-in load, and cold start to READY=1 with a 100 000-parcel database.

    scripts/measure.py target/release/yizhan
    scripts/measure.py target/aarch64-unknown-linux-gnu/release/yizhan \
        --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"

Under qemu-user the RSS includes the emulator's own memory and its
translation cache, and times are emulated: read them as upper bounds.
"""

import argparse
import json
import os
import shlex
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def post(url, body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


class Daemon:
    def __init__(self, cmd, data, notify=None):
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            YIZHAN_STORAGE__DATA_DIR=data,
            YIZHAN_API__LISTEN=f"127.0.0.1:{self.port}",
            YIZHAN_STATION__MIN_PHOTOS="0",
            YIZHAN_STATION__CLOCK_CHECK="off",
            YIZHAN_STORAGE__MIN_FREE_MB="0",
            YIZHAN_LOG__LEVEL="warn",
        )
        if notify:
            env["NOTIFY_SOCKET"] = notify
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd + ["run"], env=env, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = data

    def token(self):
        """The operator token the daemon wrote for this run (clerk rights)."""
        with open(os.path.join(self.data, "operator.token")) as f:
            return f.read().strip()

    def wait_healthy(self):
        for _ in range(600):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("daemon did not come up")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def populate(db, n):
    c = sqlite3.connect(db)
    now = "2026-11-22T00:00:00.000Z"
    c.executemany(
        "INSERT INTO returns (return_no, merchant_id, order_no, status, phone_last4, items, updated_at)"
        " VALUES (?, 'M1', ?, 'authorized', ?, '[]', ?)",
        ((f"RT-M-{i:06d}", f"O-{i}", f"{i % 10000:04d}", now) for i in range(n)),
    )
    c.executemany(
        "INSERT INTO parcels (id, return_no, merchant_id, state, channel, source, waybill_no, carrier,"
        " receipt_id, receipt_at, custody_at, created_at, updated_at)"
        " VALUES (?, ?, 'M1', 'accepted', 'clerk', 'manifest', ?, 'SF', ?, ?, ?, ?, ?)",
        (
            (f"01P{i:023d}", f"RT-M-{i:06d}", f"SF9{i:011d}", f"01R{i:023d}", now, now, now, now)
            for i in range(n)
        ),
    )
    c.commit()
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runner", default="")
    ap.add_argument("--checkins", type=int, default=300)
    ap.add_argument("--parcels", type=int, default=100_000)
    a = ap.parse_args()
    cmd = shlex.split(a.runner) + [a.binary]
    out = {"binary": a.binary, "bytes": os.path.getsize(a.binary)}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        d = Daemon(cmd, data)
        d.wait_healthy()
        time.sleep(2)
        out["idle_rss_kib"] = rss_kib(d.proc.pid)
        token = d.token()
        t = time.monotonic()
        for i in range(a.checkins):
            scan = post(
                d.base + "/api/v1/scans", {"code": f"RT-LOAD-{i:06d}", "channel": "clerk"}, token
            )
            post(
                d.base + f"/api/v1/parcels/{scan['parcel_id']}/accept",
                {"waybill_no": f"SF{i:013d}"},
                token,
            )
        out["checkins_per_s"] = round(a.checkins / (time.monotonic() - t))
        out["load_rss_kib"] = rss_kib(d.proc.pid)
        out["peak_rss_kib"] = rss_kib(d.proc.pid, "VmHWM")
        d.stop()

        populate(os.path.join(data, "yizhan.db"), a.parcels)
        sock_path = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(60)
        starts = []
        for _ in range(3):
            d = Daemon(cmd, data, notify=sock_path)
            while not sock.recv(256).startswith(b"READY=1"):
                pass
            starts.append(round((time.monotonic() - d.started) * 1000))
            d.stop()
            while True:  # drain STOPPING=1 and the rest
                try:
                    sock.settimeout(0.2)
                    sock.recv(256)
                except OSError:
                    break
            sock.settimeout(60)
        out["ready_ms_with_parcels"] = {"parcels": a.parcels, "runs": starts}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
