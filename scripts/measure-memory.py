#!/usr/bin/env python3
"""What topics and retained history cost the server in memory (RSS), measured.

Not a test: figures for README ("Limits and abuse", "Positions, history and resume").

    scripts/measure-memory.py [--bin target/release/ringcast] [--conns 1000] [--topics 64]
                              [--messages 100000] [--big-messages 20000]

* Per topic: two fresh servers (--workers 1); on one, CONNS connections subscribe to one
  shared topic each; on the other, CONNS connections subscribe to TOPICS unique 16-byte
  topics each. Per topic = (RSS growth of the second - of the first) / (CONNS x TOPICS - 1).
* Per retained message: a fresh server with history large enough to keep everything;
  MESSAGES 64-byte (then BIG 4 KiB) messages published on one /pub WebSocket to one topic;
  RSS growth and the server's own charge (ringcast_history_bytes) divided by the messages
  retained (ringcast_history_messages).

Loopback only; every server it starts is stopped by its PID.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid, quiet=1.0, deadline=20.0):
    """RSS once it has not moved by more than 64 KiB for `quiet` seconds."""
    end = time.monotonic() + deadline
    last, since = rss(pid), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.1)
        now = rss(pid)
        if abs(now - last) > 65536:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return rss(pid)


class Server:
    def __init__(self, binary, args):
        self.p = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--workers", "1"] + args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        end = time.monotonic() + 10
        while time.monotonic() < end:
            line = self.p.stdout.readline()
            m = re.match(r"listening on (\S+):(\d+)", line)
            if m:
                self.port = int(m.group(2))
                return
        self.stop()
        raise RuntimeError("ringcast did not start")

    def metric(self, name):
        body = http(self.port, f"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        m = re.search(rf"^{name} (\S+)$", body, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def http(port, req):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req.encode())
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode(errors="replace")


def upgrade(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b:
            raise RuntimeError(f"closed during the handshake of {path}")
        head += b
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"{path}: {head.splitlines()[0]!r}")
    return s


def masked_frame(payload):
    """A client binary frame with the all-zero mask (the payload goes through unchanged)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def per_topic(binary, conns, topics):
    growth = []
    for unique in (False, True):
        srv = Server(binary, ["--max-connections", str(conns * 2), "--max-topics", str(conns * topics * 2)])
        try:
            base = settled_rss(srv.p.pid)
            socks = []
            for c in range(conns):
                if unique:
                    path = "/sub/" + ",".join(f"t{c:06d}-{i:08d}" for i in range(topics))
                else:
                    path = "/sub/shared"
                socks.append(upgrade(srv.port, path))
            growth.append(settled_rss(srv.p.pid) - base)
            n = srv.metric("ringcast_topics")
            for s in socks:
                s.close()
        finally:
            srv.stop()
    shared, unique = growth
    n_topics = conns * topics
    print(
        f"topics: {conns} connections x 1 shared topic: +{shared} B; x {topics} unique 16-byte "
        f"topics ({n_topics} topics, server counts {n and int(n)}): +{unique} B; "
        f"per topic {(unique - shared) / (n_topics - 1):.0f} B"
    )


def per_message(binary, count, size):
    srv = Server(
        binary,
        ["--history-size", str(count * 2), "--history-memory", "4GiB", "--history-ttl", "0"],
    )
    try:
        sub = upgrade(srv.port, "/sub/h")  # the topic exists before the publishes
        base = settled_rss(srv.p.pid)
        pub = upgrade(srv.port, "/pub/h")
        payload = b"x" * size
        frame = masked_frame(payload)
        batch = frame * max(1, 65536 // len(frame))
        per = len(batch) // len(frame)
        sent = 0
        sub.setblocking(False)
        while sent < count:
            k = min(per, count - sent)
            pub.sendall(frame * k if k < per else batch)
            sent += k
            try:
                while sub.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
        end = time.monotonic() + 30
        kept = 0
        while time.monotonic() < end:
            try:
                while sub.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
            kept = srv.metric("ringcast_history_messages") or 0
            if kept >= count:
                break
            time.sleep(0.1)
        sub.close()
        time.sleep(0.5)
        grown = settled_rss(srv.p.pid) - base
        charged = srv.metric("ringcast_history_bytes") or 0
        print(
            f"history: {int(kept)} retained {size}-byte messages: RSS +{grown} B = "
            f"{grown / kept:.0f} B per message; charged to --history-memory "
            f"{charged / kept:.0f} B per message"
        )
        pub.close()
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.path.join(here, "..", "target", "release", "ringcast"))
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--topics", type=int, default=64)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--big-messages", type=int, default=20000)
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        print(f"measure-memory: no ringcast binary at {a.bin} (--bin)", file=sys.stderr)
        sys.exit(2)
    per_topic(a.bin, a.conns, a.topics)
    per_message(a.bin, a.messages, 64)
    per_message(a.bin, a.big_messages, 4096)


if __name__ == "__main__":
    main()
