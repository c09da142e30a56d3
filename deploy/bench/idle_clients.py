#!/usr/bin/env python3
"""Open N client connections to a Redis-protocol server and hold them idle.

Two phases, for two memory readings:
1. idle: every connection is opened and sends nothing. Then one more
   connection sends a PING; servers accept connections in arrival order, so
   once it is answered every earlier connection has been accepted. The
   program prints "idle N" on stdout and waits for SIGUSR1.
2. after a command: each connection sends one PING and waits for its reply,
   so the server (or proxy) has set up its per-client state for a command;
   then all of them stay open and silent. The program prints "ready N" and
   holds them until it gets SIGTERM or SIGINT.
Used by run.sh to measure a proxy's RSS with 10,000 idle clients.

Usage: idle_clients.py --port 6380 [--host 127.0.0.1] [--count 10000]
"""

import argparse
import resource
import selectors
import signal
import socket
import sys
import time

BATCH = 500  # connections in flight at once while opening


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 64
    if soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"idle_clients: need {want} file descriptors, hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


PING = b"*1\r\n$4\r\nPING\r\n"  # multibulk: twemproxy has no inline commands


def connect_batch(host, port, count):
    """Connect count sockets; return them once every connect completed."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    pending = count
    deadline = time.monotonic() + 30
    while pending:
        if time.monotonic() > deadline:
            sys.exit(f"idle_clients: {pending} connections not connected after 30s")
        for key, _ in sel.select(timeout=1):
            err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                sys.exit(f"idle_clients: connect: {err}")
            sel.unregister(key.fileobj)
            pending -= 1
    sel.close()
    return socks


def ping_all(socks):
    """PING on every socket; return once each got its reply."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.send(PING)
        sel.register(s, selectors.EVENT_READ, b"")
    pending = len(socks)
    deadline = time.monotonic() + 60
    while pending:
        if time.monotonic() > deadline:
            sys.exit(f"idle_clients: {pending} PINGs unanswered after 60s")
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = key.data + s.recv(64)
            if not data:
                sys.exit("idle_clients: server closed a connection")
            if data.startswith(b"-"):
                sys.exit(f"idle_clients: server replied {data!r}")
            if data.endswith(b"\r\n"):
                sel.unregister(s)
                pending -= 1
            else:
                sel.modify(s, selectors.EVENT_READ, data)
    sel.close()
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    args = ap.parse_args()

    raise_fd_limit(args.count + 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proceed = []
    signal.signal(signal.SIGUSR1, lambda *_: proceed.append(True))
    held = []
    while len(held) < args.count:
        held += connect_batch(args.host, args.port, min(BATCH, args.count - len(held)))
    probe = connect_batch(args.host, args.port, 1)
    ping_all(probe)  # answered: every earlier connection was accepted
    probe[0].close()
    print(f"idle {len(held)}", flush=True)
    while not proceed:
        signal.pause()
    for i in range(0, len(held), BATCH):
        ping_all(held[i:i + BATCH])
    print(f"ready {len(held)}", flush=True)
    try:
        while True:
            signal.pause()  # hold until SIGTERM or SIGINT
    except (KeyboardInterrupt, SystemExit):
        pass
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
