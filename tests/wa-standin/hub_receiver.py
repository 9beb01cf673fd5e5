#!/usr/bin/env python3
"""A tiny receiver of Meta-style webhooks, for testing wa-standin.

Verifies X-Hub-Signature-256 on its own (Python's hmac, not the stand-in's
code), appends one JSON line per POST to --out and answers as told.
Standard library only. Test infrastructure; see README.md here.

    hub_receiver.py --secret-file F --port-file P --out OUT
                    [--status N] [--fail N] [--fail-status N] [--hang]

Each --out line: {"n", "path", "signature" (the header or null), "valid"
(the header is sha256=HEX(HMAC-SHA256(secret, raw body))), "content_type",
"user_agent", "answered" (the status given; null with --hang), "body" (the
raw body as text), "json" (the body parsed, or null)}.

Answers: the first --fail POSTs get --fail-status (default 500); then a
POST whose signature is missing or wrong gets 401; the others get --status
(default 200). --hang: read the request, record it, never answer.
"""
import argparse
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback import answer_json, serve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=500)
    ap.add_argument("--hang", action="store_true")
    args = ap.parse_args()

    with open(args.secret_file, "rb") as f:
        secret = f.read().strip()
    lock = threading.Lock()
    seen = [0]
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
            sig = self.headers.get("X-Hub-Signature-256")
            want = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
            valid = sig is not None and hmac.compare_digest(sig, want)
            with lock:
                seen[0] += 1
                k = seen[0]
                if args.hang:
                    answer = None
                elif k <= args.fail:
                    answer = args.fail_status
                elif not valid:
                    answer = 401
                else:
                    answer = args.status
                text = raw.decode("utf-8", errors="replace")
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                out.write(json.dumps({
                    "n": k, "path": self.path, "signature": sig, "valid": valid,
                    "content_type": self.headers.get("Content-Type"),
                    "user_agent": self.headers.get("User-Agent"),
                    "answered": answer, "body": text, "json": parsed,
                }, separators=(",", ":")) + "\n")
                out.flush()
            if answer is None:
                while True:  # never answer; the process is killed
                    time.sleep(3600)
            answer_json(self, answer, {"received": k})

    serve(args.listen, args.port_file, Handler)


if __name__ == "__main__":
    main()
