#!/usr/bin/env python3
"""A receiver of Standard Webhooks, as a team would write it: the check of
outbox-relay's signing by an independent implementation (Python's hmac and
base64, following https://www.standardwebhooks.com, not our C code).
Standard library only. Test infrastructure; see README.md here.

    sw_receiver.py --secret-file F --port-file P --out OUT
                   [--tolerance SECONDS] [--fail N] [--clock-offset SECONDS]

The secret file holds one secret per line, "whsec_" + base64 of the key;
any of them may have signed. A POST is accepted when:
- webhook-id, webhook-timestamp and webhook-signature are present (else 400);
- one "v1,<base64>" in webhook-signature equals base64(HMAC-SHA256(key,
  "{id}.{timestamp}.{raw body}")) for one of the keys (else 401);
- the timestamp is within --tolerance (300 s) of now, either way (else 401:
  a stale or future delivery is refused, whatever its signature);
- its webhook-id was not accepted before (else 200 with {"duplicate": true},
  and its events are not processed again: a replay changes nothing).

--clock-offset: the receiver's clock runs that many seconds ahead (a
delivery replayed later, without waiting). The first --fail accepted-looking POSTs get 503 (after verification, so
that the retry's id can be compared). Each --out line: {"n", "id",
"timestamp", "signatures" (how many v1 entries), "verdict" ("accepted",
"duplicate", "bad_signature", "stale", "missing_headers", "failed"),
"answered", "events" (the event_ids of the body, or null)}.
"""
import argparse
import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback import answer_json, serve


def load_keys(path):
    keys = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("whsec_"):
                keys.append(base64.b64decode(line[len("whsec_"):], validate=True))
    if not keys:
        raise SystemExit("sw_receiver.py: no whsec_ secret in " + path)
    return keys


def verify(keys, msg_id, ts, raw, header):
    signed = msg_id.encode() + b"." + ts.encode() + b"." + raw
    wanted = [base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode()
              for k in keys]
    for entry in header.split(" "):
        version, _, sig = entry.partition(",")
        if version != "v1":
            continue
        for w in wanted:
            if hmac.compare_digest(sig, w):
                return True
    return False


def read_delivery(handler):
    """A POST's raw body, its Standard Webhooks headers (id, timestamp,
    signature: None when missing) and the event ids of its body (None when
    it is not {"events": [{"event_id": ...}, ...]})."""
    n = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(n)
    events = None
    try:
        events = [e["event_id"] for e in json.loads(raw)["events"]]
    except (ValueError, KeyError, TypeError):
        pass
    return (raw, handler.headers.get("webhook-id"), handler.headers.get("webhook-timestamp"),
            handler.headers.get("webhook-signature"), events)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--tolerance", type=int, default=300)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--clock-offset", type=int, default=0)
    args = ap.parse_args()

    keys = load_keys(args.secret_file)
    lock = threading.Lock()
    state = {"n": 0, "failed": 0, "seen": set()}
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet
            pass

        def do_POST(self):
            raw, msg_id, ts, header, events = read_delivery(self)
            with lock:
                state["n"] += 1
                if not (msg_id and ts and header):
                    verdict, answer = "missing_headers", 400
                elif not verify(keys, msg_id, ts, raw, header):
                    verdict, answer = "bad_signature", 401
                elif not ts.isdigit() or abs(time.time() + args.clock_offset - int(ts)) > args.tolerance:
                    verdict, answer = "stale", 401
                elif msg_id in state["seen"]:
                    verdict, answer = "duplicate", 200
                elif state["failed"] < args.fail:
                    state["failed"] += 1
                    verdict, answer = "failed", 503
                else:
                    state["seen"].add(msg_id)
                    verdict, answer = "accepted", 200
                out.write(json.dumps({
                    "n": state["n"], "id": msg_id, "timestamp": ts,
                    "signatures": len(header.split(" ")) if header else 0,
                    "verdict": verdict, "answered": answer, "events": events,
                }, separators=(",", ":")) + "\n")
                out.flush()
            answer_json(self, answer, {"duplicate": verdict == "duplicate"})

    serve(args.listen, args.port_file, Handler)


if __name__ == "__main__":
    main()
