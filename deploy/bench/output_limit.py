#!/usr/bin/env python3
"""Measure respguard's memory when clients never read their replies.

Starts a redis-server holding one 1 MB value and a respguard binary in front
of it (default configuration: client.output_buffer_limit 256MB), then opens
N clients that each send GET of that value --gets times and never read. It
samples respguard's RSS for --seconds, checks that another client is served
(and how long its PING takes), and reports the peak RSS (VmHWM) and whether
the non-reading clients were closed.

Usage: output_limit.py --respguard ./respguard [--clients 1] [--gets 800]
"""

import argparse
import atexit
import os
import socket
import subprocess
import time


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    return 0


def closed_after_reading(sock):
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):
            pass
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--respguard", required=True)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--gets", type=int, default=800)
    ap.add_argument("--seconds", type=float, default=25)
    ap.add_argument("--redis-port", type=int, default=17101)
    ap.add_argument("--port", type=int, default=17102)
    a = ap.parse_args()

    redis = subprocess.Popen(["redis-server", "--port", str(a.redis_port), "--save", "",
                              "--appendonly", "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL)
    atexit.register(lambda: (redis.kill(), redis.wait()))
    wait_port(a.redis_port)
    value = b"v" * (1 << 20)
    with socket.create_connection(("127.0.0.1", a.redis_port)) as c:
        c.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n" % (len(value), value))
        c.recv(16)
    env = dict(os.environ, RESPGUARD_LISTEN=f"127.0.0.1:{a.port}",
               RESPGUARD_UPSTREAM_ADDRESS=f"127.0.0.1:{a.redis_port}", RESPGUARD_ADMIN_LISTEN="127.0.0.1:0")
    proxy = subprocess.Popen([a.respguard], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(lambda: (proxy.kill(), proxy.wait()))
    wait_port(a.port)

    base = status(proxy.pid, "VmRSS")
    clients = []
    for _ in range(a.clients):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(b"GET big\r\n" * a.gets)
        clients.append(s)
    time.sleep(a.seconds)
    other = socket.create_connection(("127.0.0.1", a.port))
    other.settimeout(120)
    start = time.time()
    other.sendall(b"PING\r\n")
    pong = other.recv(16)
    ping_s = time.time() - start
    peak = status(proxy.pid, "VmHWM")
    closed = sum(closed_after_reading(s) for s in clients)
    print(f"clients={a.clients} gets={a.gets}: RSS {base} MiB at start, peak {peak} MiB; "
          f"another client's PING {pong!r} took {ping_s:.1f} s; {closed} of {a.clients} closed")


if __name__ == "__main__":
    main()
