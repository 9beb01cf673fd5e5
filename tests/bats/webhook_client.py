#!/usr/bin/env python3
"""Clients for tests/bats/webhook.bats (Python 3, standard library only).

  webhook_client.py burst --port P --secret-file F [--path /] [--conns C] BODIES
      POST every line of BODIES (one delivery per line), signed, over C
      keep-alive connections at once; print one HTTP status per line, in
      the order of BODIES.

  webhook_client.py inflight --port P --secret-file F --ready R --go G BODIES
      One connection per line of BODIES: send the headers and the first half
      of the signed body, then create R and wait (120 s at most: a loaded
      machine is slow) for G to exist; then send the rest and print each
      answer as "STATUS BODY".

  webhook_client.py slow --port P --count N [--wait S]
      N slow clients (slowloris): half of them send part of the request
      line and headers, the others whole headers announcing a body of
      100 bytes and only 10 of them; then nothing. Print "ready", then
      wait up to S seconds (default 30) for the server to close each and
      print "closed I" or "open I" per connection.

  webhook_client.py trickle --port P [--count N] [--every-ms M] [--source A] [--wait S]
      N clients from address A that send a request one byte every M ms,
      for ever (a slow read of the body, never idle); print "ready", then
      "closed I SECONDS" for each the server closed, "open I" for the rest
      after S seconds, "refused I" for those it would not accept.
"""
import argparse
import hashlib
import hmac
import http.client
import os
import socket
import sys
import threading
import time


def secret(path):
    with open(path, "rb") as f:
        return f.read().strip()


def sign(key, body):
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def lines(path):
    with open(path, "rb") as f:
        return [l.rstrip(b"\n") for l in f if l.strip()]


def burst(a):
    key = secret(a.secret_file)
    bodies = lines(a.bodies)
    out = [None] * len(bodies)
    nxt = [0]
    mu = threading.Lock()

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        while True:
            with mu:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(bodies):
                break
            b = bodies[i]
            try:
                c.request("POST", a.path, body=b, headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(key, b)})
                r = c.getresponse()
                r.read()
                out[i] = r.status
            except Exception as e:  # noqa: BLE001 - reported as 0
                print("request %d: %s" % (i, e), file=sys.stderr)
                out[i] = 0
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        c.close()

    ts = [threading.Thread(target=worker) for _ in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in out:
        print(s)


def read_answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return 0, "(closed without an answer)"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = 0
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length].decode("utf-8", "replace")


def inflight(a):
    key = secret(a.secret_file)
    bodies = lines(a.bodies)
    socks = []
    for b in bodies:
        s = socket.create_connection(("127.0.0.1", a.port), timeout=60)
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "X-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n"
                % (a.path, sign(key, b), len(b))).encode()
        s.sendall(head + b[: len(b) // 2])
        socks.append(s)
    open(a.ready, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(a.go):
        if time.monotonic() > deadline:
            print("no go file", file=sys.stderr)
            sys.exit(2)
        time.sleep(0.02)
    for s, b in zip(socks, bodies):
        s.sendall(b[len(b) // 2:])
    for s in socks:
        try:
            st, body = read_answer(s)
        except OSError as e:
            st, body = 0, str(e)
        print(st, body)
        s.close()


def slow(a):
    socks = []
    for i in range(a.count):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        if i % 2 == 0:
            s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        else:
            s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"X-Hub-Signature-256: sha256=" + b"0" * 64 +
                      b"\r\nContent-Length: 100\r\n\r\n{\"object\":")
        socks.append(s)
    print("ready", flush=True)
    deadline = time.monotonic() + a.wait
    state = ["open"] * len(socks)
    for i, s in enumerate(socks):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(min(left, 1.0))
            try:
                if not s.recv(65536):
                    state[i] = "closed"
                    break
                # an answer (a 408, say) is also being cut off; keep reading
            except socket.timeout:
                continue
            except OSError:
                state[i] = "closed"
                break
    for i, st in enumerate(state):
        print(st, i, flush=True)
        socks[i].close()


def trickle(a):
    """N connections from --source that send a request a byte every
    --every-ms, for ever; print "ready" once all are open, then per
    connection "closed I SECONDS" when the server closed it (SECONDS since
    it opened) or "open I" at the end of --wait seconds."""
    req = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\nContent-Length: 100000\r\n\r\n" +
           b"x" * 100000)
    socks, t0, pos, state = [], [], [], []
    for i in range(a.count):
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=10,
                                         source_address=(a.source, 0))
        except OSError:
            state.append("refused")
            socks.append(None)
            t0.append(0)
            pos.append(0)
            continue
        s.setblocking(False)
        socks.append(s)
        t0.append(time.monotonic())
        pos.append(0)
        state.append("open")
    print("ready", flush=True)
    deadline = time.monotonic() + a.wait
    while time.monotonic() < deadline and "open" in state:
        for i, s in enumerate(socks):
            if state[i] != "open":
                continue
            try:
                if s.recv(65536) == b"":
                    state[i] = "closed %.1f" % (time.monotonic() - t0[i])
                    continue
            except BlockingIOError:
                pass
            except OSError:
                state[i] = "closed %.1f" % (time.monotonic() - t0[i])
                continue
            try:
                s.send(req[pos[i]:pos[i] + 1])
                pos[i] += 1
            except BlockingIOError:
                pass
            except OSError:
                state[i] = "closed %.1f" % (time.monotonic() - t0[i])
        time.sleep(a.every_ms / 1000.0)
    for i, st in enumerate(state):
        print(st.split(" ")[0], i, *st.split(" ")[1:], flush=True)
        if socks[i] is not None:
            socks[i].close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("burst")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--secret-file", required=True)
    b.add_argument("--path", default="/")
    b.add_argument("--conns", type=int, default=4)
    b.add_argument("bodies")
    f = sub.add_parser("inflight")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--secret-file", required=True)
    f.add_argument("--path", default="/")
    f.add_argument("--ready", required=True)
    f.add_argument("--go", required=True)
    f.add_argument("bodies")
    s = sub.add_parser("slow")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, default=4)
    s.add_argument("--wait", type=float, default=30)
    t = sub.add_parser("trickle")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--count", type=int, default=1)
    t.add_argument("--every-ms", type=int, default=300)
    t.add_argument("--source", default="127.0.0.1")
    t.add_argument("--wait", type=float, default=60)
    a = p.parse_args()
    {"burst": burst, "inflight": inflight, "slow": slow, "trickle": trickle}[a.cmd](a)


if __name__ == "__main__":
    main()
