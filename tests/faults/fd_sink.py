#!/usr/bin/env python3
"""Sinks for outbox-relay's fault trials (tests/faults/delivery.bats and
bench/faults-delivery.sh, through the fd_ helpers of tests/faults/lib.sh).
Python 3, standard library only. Test infrastructure, never installed.

  fd_sink.py webhook --secret-file F --port-file P --out OUT
                     [--plan LIST] [--then ACTION] [--random SPEC --seed N]
                     [--slow-s S] [--delay-ms MS] [--tolerance S]

      A Standard Webhooks receiver (as tests/wa-standin/sw_receiver.py:
      webhook-id, webhook-timestamp, webhook-signature "v1,<base64>" of
      HMAC-SHA256(key, "{id}.{timestamp}.{raw body}"), the keys from a file
      of "whsec_"+base64 lines) that misbehaves on demand. Every POST is
      verified first: no headers 400, a signature no key made 401, a
      timestamp over --tolerance (300 s) away 401. A verified POST then
      gets the next ACTION of --plan (comma-separated, "ACTION*N" repeats),
      then, once the plan is used up, a random fault of --random
      ("drop=0.1,slow=0.05,s503=0.1": each with that probability, from
      --seed), else --then (default ok). ACTIONs:

        ok       200 {"accepted":true} after --delay-ms (default 0)
        ok202    202, empty body
        junk     200 with a body that is not JSON (text/html): 2xx accepts
        sNNN     HTTP NNN (e.g. s500, s503, s429, s400), a JSON body
        slow     wait --slow-s (default 2), then 200: after the client's
                 --timeout, so the client never sees it
        hang     never answer; the connection is closed after --slow-s
        drop     read the request, close the connection without a byte
        garbage  answer bytes that are not HTTP, then close

      --path is free: the trials post each run to its own path (/r1, /r2,
      ...). One JSON line per POST in OUT, written before the answer (a
      client that has its answer finds its line): n, path, id, timestamp,
      verdict (the action, or missing_headers / bad_signature / stale),
      status (answered; 0 for none), accepted (2xx answered at once: ok,
      ok202, junk), replay (this webhook-id was accepted before), events
      (the event_ids of the body, or null), t_recv (Unix seconds, when the
      body was read) and t_answer (just before the answer was written).

  fd_sink.py stdout --out OUT [--delay-ms MS]

      The reader of "outbox-relay --stdout" through a pipe: copies every
      complete line of stdin to OUT (flushed each), sleeping --delay-ms
      after each (a slow consumer: the relay blocks on a full pipe), and a
      last line without its newline (a writer killed mid-line) to
      OUT.partial. Ends at EOF.
"""
import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

# the signature check of the independent receiver the relay's tests use
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wa-standin"))
from loopback import serve  # noqa: E402
from sw_receiver import load_keys, read_delivery, verify  # noqa: E402


def parse_plan(text):
    plan = []
    for item in filter(None, (text or "").split(",")):
        action, _, n = item.partition("*")
        plan.extend([action.strip()] * (int(n) if n else 1))
    return plan


def parse_random(text):
    out = []
    for item in filter(None, (text or "").split(",")):
        action, _, p = item.partition("=")
        out.append((action.strip(), float(p)))
    return out


ACCEPTING = {"ok", "ok202", "junk"}


def webhook(a):
    keys = load_keys(a.secret_file)
    plan = parse_plan(a.plan)
    faults = parse_random(a.random)
    rng = random.Random(a.seed)
    lock = threading.Lock()
    state = {"n": 0, "seen": set()}
    out = open(a.out, "a", encoding="utf-8")

    def next_action():
        if plan:
            return plan.pop(0)
        x = rng.random()
        for action, p in faults:
            if x < p:
                return action
            x -= p
        return a.then

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def reply(self, status, body=b"", ctype="application/json"):
            self.send_response(status)
            if body or status != 202:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            self.wfile.flush()

        def do_POST(self):
            raw, msg_id, ts, header, events = read_delivery(self)
            t_recv = time.time()
            with lock:
                state["n"] += 1
                k = state["n"]
                if not (msg_id and ts and header):
                    verdict = "missing_headers"
                elif not verify(keys, msg_id, ts, raw, header):
                    verdict = "bad_signature"
                elif not ts.isdigit() or abs(time.time() - int(ts)) > a.tolerance:
                    verdict = "stale"
                else:
                    verdict = next_action()
                replay = False
                if verdict in ACCEPTING:
                    replay = msg_id in state["seen"]
                    state["seen"].add(msg_id)
            status = {"missing_headers": 400, "bad_signature": 401, "stale": 401,
                      "ok": 200, "ok202": 202, "junk": 200, "slow": 200}.get(verdict)
            if status is None and verdict.startswith("s") and verdict[1:].isdigit():
                status = int(verdict[1:])
            if status is None and verdict not in ("hang", "drop", "garbage"):
                verdict, status = "unknown_action:" + verdict, 500
            if verdict == "ok" and a.delay_ms:
                time.sleep(a.delay_ms / 1000.0)
            rec = {"n": k, "path": self.path, "id": msg_id, "timestamp": ts,
                   "verdict": verdict, "status": status or 0,
                   "accepted": verdict in ACCEPTING, "replay": replay,
                   "events": events, "t_recv": round(t_recv, 6),
                   "t_answer": round(time.time(), 6)}
            with lock:
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                out.flush()
            try:
                if verdict == "drop":
                    self.close_connection = True
                elif verdict == "garbage":
                    self.wfile.write(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                elif verdict == "hang":
                    time.sleep(a.slow_s)
                    self.close_connection = True
                elif verdict == "slow":
                    time.sleep(a.slow_s)
                    self.reply(200, b'{"accepted":true,"late":true}')
                elif verdict == "junk":
                    self.reply(200, b"<html><body>thanks!!! {{{ not json", "text/html")
                elif verdict == "ok202":
                    self.reply(202)
                else:
                    self.reply(status, json.dumps({"accepted": verdict == "ok"}).encode())
            except OSError:
                self.close_connection = True

    serve(a.listen, a.port_file, Handler)


def stdout_reader(a):
    delay = a.delay_ms / 1000.0
    inp = sys.stdin.buffer
    with open(a.out, "ab") as out:
        for line in inp:
            if not line.endswith(b"\n"):
                with open(a.out + ".partial", "ab") as p:
                    p.write(line)
                break
            out.write(line)
            out.flush()
            if delay:
                time.sleep(delay)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("webhook")
    w.add_argument("--secret-file", required=True)
    w.add_argument("--port-file", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--listen", default="127.0.0.1")
    w.add_argument("--plan", default="")
    w.add_argument("--then", default="ok")
    w.add_argument("--random", default="")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--slow-s", type=float, default=2.0)
    w.add_argument("--delay-ms", type=float, default=0)
    w.add_argument("--tolerance", type=int, default=300)
    s = sub.add_parser("stdout")
    s.add_argument("--out", required=True)
    s.add_argument("--delay-ms", type=float, default=0)
    a = p.parse_args()
    if a.cmd == "webhook":
        webhook(a)
    else:
        stdout_reader(a)


if __name__ == "__main__":
    main()
