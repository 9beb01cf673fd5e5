#!/usr/bin/env python3
"""A signed poster of Meta's webhook, for engagement-webhook's fault trials
(tests/faults/delivery.bats through lib.sh's fd_ helpers). Python 3,
standard library only. Test infrastructure, never installed.

    fd_poster.py --url-file U --secret-file F --bodies B --out OUT
                 [--conns C] [--interval-ms MS] [--timeout-s S]
                 [--deadline-s S] [--seed N]

Posts every line of B (one delivery each, Meta's envelope) with
X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(app secret, raw body)) over C
keep-alive connections at once, in an order shuffled by --seed, waiting
--interval-ms between deliveries on each connection. As Meta does, a
delivery that is not answered 200 (another status, no answer, no
connection, a timeout after --timeout-s) is posted again, the same bytes,
after 100 ms, 200 ms, ... doubling to 1 s, until it is answered 200 or
--deadline-s (60) after the poster started; the URL is read from U before
every attempt (a receiver restarted on another port is found).

One JSON line per attempt in OUT, written as soon as the answer is in: i
(the line of B, from 0), key (entry[0].id of the body), attempt, status
(0 when there was no answer), error, t_sent and t_done (Unix seconds).
The last line is {"done": true, "answered": N, "gave_up": [i, ...]}.
"""
import argparse
import hashlib
import hmac
import http.client
import json
import random
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url-file", required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--bodies", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--interval-ms", type=float, default=0)
    ap.add_argument("--timeout-s", type=float, default=10)
    ap.add_argument("--deadline-s", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    with open(a.secret_file, "rb") as f:
        key = f.read().strip()
    with open(a.bodies, "rb") as f:
        bodies = [l.rstrip(b"\n") for l in f if l.strip()]
    order = list(range(len(bodies)))
    random.Random(a.seed).shuffle(order)
    keys = [json.loads(b)["entry"][0]["id"] for b in bodies]
    start = time.monotonic()
    lock = threading.Lock()
    out = open(a.out, "a", encoding="utf-8")
    answered = set()
    gave_up = []

    def url():
        with open(a.url_file, encoding="utf-8") as f:
            return urllib.parse.urlsplit(f.read().strip())

    def write(rec):
        with lock:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            out.flush()

    def worker():
        conn, where = None, None
        while True:
            with lock:
                if not order:
                    break
                i = order.pop(0)
            body = bodies[i]
            sig = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
            attempt, wait = 0, 0.1
            while True:
                attempt += 1
                u = url()
                if conn is None or where != (u.hostname, u.port):
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=a.timeout_s)
                    where = (u.hostname, u.port)
                t_sent = time.time()
                status, error = 0, None
                try:
                    conn.request("POST", u.path or "/", body=body, headers={
                        "Content-Type": "application/json",
                        "User-Agent": "facebookexternalua",
                        "X-Hub-Signature-256": sig})
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except Exception as e:  # noqa: BLE001 - no answer: retried
                    error = "%s: %s" % (type(e).__name__, e)
                    conn.close()
                    conn = None
                write({"i": i, "key": keys[i], "attempt": attempt, "status": status,
                       "error": error, "t_sent": round(t_sent, 6), "t_done": round(time.time(), 6)})
                if status == 200:
                    with lock:
                        answered.add(i)
                    break
                if time.monotonic() - start > a.deadline_s:
                    with lock:
                        gave_up.append(i)
                    break
                time.sleep(wait)
                wait = min(1.0, wait * 2)
            if a.interval_ms:
                time.sleep(a.interval_ms / 1000.0)
        if conn is not None:
            conn.close()

    ts = [threading.Thread(target=worker) for _ in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    write({"done": True, "answered": len(answered), "gave_up": sorted(gave_up)})


if __name__ == "__main__":
    main()
