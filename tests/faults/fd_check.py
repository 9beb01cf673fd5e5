#!/usr/bin/env python3
"""The invariants of tests/faults/delivery.bats, checked from what a trial
left behind (the sinks' records, the runs' outputs, the database's rows).
Python 3, standard library only. Used by the fd_ helpers of
tests/faults/lib.sh; each subcommand prints ONE JSON object of figures, with
"violations" (how many invariants broke) and "problems" (what broke).

  fd_check.py relay --sink webhook|stdout --runs RUNS --db-events EVENTS
                    [--records SINK.jsonl] [--batch N] [--timeout-ms MS]

      RUNS: one JSON object per line and run of outbox-relay, in the order
      they ran: k, path (webhook: the URL path the run posted to), out
      (stdout: the file its stdout reader wrote), rc, faulted (the run was
      killed, or lost its database, or was cut off), reconnects (from its
      summary; 0 when it printed none), log (its stderr). EVENTS: "id|published_at as Unix
      seconds, or empty" per outbox row, at the end.

      What must hold (docs/outbox-relay.1.scd, DESIGN.md 2.3):
      - every event reached the sink, accepted, at least once (lost) and is
        marked published (unpublished);
      - no event is marked published before the sink accepted it: for the
        webhook, before the first 2xx answer carrying it (its t_answer,
        1 ms slack); for stdout, an event marked but in no run's output;
      - the events of each request, and of each run, are in id order (a
        run may start over after a reconnect: at most once per reconnect);
      - an event accepted twice (duplicated, at least once) must have been
        accepted first in the last accepted batch of a run that did not end
        well (killed, the database lost or cut: the fault hit between the
        sink's acceptance and the mark; on stdout, among the last --batch
        lines of the run), or in a batch its run published again after
        reconnecting, or answered after the run's --timeout had run out (the
        run logged a timeout then: the relay never saw that answer);
        anything else is an unexplained duplicate;
      - the webhook's signature always verified (no bad_signature, stale or
        missing_headers).

  fd_check.py webhook --posts POSTS --db DB_FACTS --people N

      POSTS: the poster's lines (fd_poster.py). DB_FACTS: one JSON object
      (lib.sh fd_wh_facts). Checks: every delivery answered 200 is stored
      and applied, none broken; each person's messages applied exactly once
      (activity rows, inbound_events, one transition) and statuses moved
      forward once (read, delivered_at <= read_at, one message.delivered
      and one message.read outbox event per message).
"""
import argparse
import json
import sys
import time


def read_lines(path):
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(line)
    except FileNotFoundError:
        pass
    return out


def epoch_ms(ts):
    """RFC 3339 UTC with milliseconds (the logs' ts) in Unix ms."""
    import calendar
    t = time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) * 1000 + int(ts[20:23])


def emit(d, problems):
    d["violations"] = len(problems)
    d["problems"] = "; ".join(problems)
    print(json.dumps(d, separators=(",", ":")))


# ---- outbox-relay ------------------------------------------------------------------

def relay(a):
    runs = [json.loads(l) for l in read_lines(a.runs)]
    published = {}
    for l in read_lines(a.db_events):
        i, _, p = l.partition("|")
        published[int(i)] = float(p) if p else None
    problems = []
    # deliveries[k] = [(events, t_answer)] accepted, in order, per run
    deliveries = {r["k"]: [] for r in runs}
    bad_sig = stale = missing = replays = posts = refused = 0
    partial = 0
    unordered_requests = 0
    if a.sink == "webhook":
        by_path = {r["path"]: r["k"] for r in runs}
        for l in read_lines(a.records):
            rec = json.loads(l)
            posts += 1
            v = rec["verdict"]
            bad_sig += v == "bad_signature"
            stale += v == "stale"
            missing += v == "missing_headers"
            ev = rec.get("events") or []
            if any(x >= y for x, y in zip(ev, ev[1:])):
                unordered_requests += 1
            if not rec["accepted"]:
                refused += 1
                continue
            replays += bool(rec.get("replay"))
            k = by_path.get(rec["path"])
            if k is None:
                problems.append("a delivery to an unknown path " + rec["path"])
                continue
            deliveries[k].append((ev, rec["t_answer"]))
    else:
        for r in runs:
            events, cur = [], []
            for l in read_lines(r["out"]):
                try:
                    o = json.loads(l)
                except ValueError:
                    problems.append("run %d wrote a line that is not JSON" % r["k"])
                    continue
                if "event_id" in o:
                    events.append(o["event_id"])
            try:
                with open(r["out"] + ".partial", "rb") as f:
                    partial += 1 if f.read() else 0
            except FileNotFoundError:
                pass
            # stdout has no request boundaries: a run is one long delivery,
            # split where it starts over (a reconnect)
            for e in events:
                if cur and e <= cur[-1]:
                    deliveries[r["k"]].append((cur, None))
                    cur = []
                cur.append(e)
            if cur:
                deliveries[r["k"]].append((cur, None))
            posts += len(events)

    if bad_sig or stale or missing:
        problems.append("signature refused: %d bad, %d stale, %d without headers"
                        % (bad_sig, stale, missing))
    if unordered_requests:
        problems.append("%d requests with events out of id order" % unordered_requests)

    # acceptances per event: (run, index of the delivery in its run, t)
    acc = {}
    resets = 0
    for r in runs:
        k, ds = r["k"], deliveries[r["k"]]
        last = None
        run_resets = 0
        for i, (ev, t) in enumerate(ds):
            if last is not None and ev and ev[0] <= last:
                run_resets += 1
            if ev:
                last = ev[-1]
            for e in ev:
                acc.setdefault(e, []).append((k, i, t))
        resets += run_resets
        if run_resets > r.get("reconnects", 0):
            problems.append("run %d started over %d times with %d reconnects (events out of order)"
                            % (k, run_resets, r.get("reconnects", 0)))

    rc = {r["k"]: r for r in runs}
    # when each run gave up waiting for an answer (a receiver that takes a
    # batch after the relay's --timeout: the relay must send it again)
    timeouts = {}
    for r in runs:
        for l in read_lines(r.get("log", "")):
            try:
                o = json.loads(l)
            except ValueError:
                continue
            if o.get("event") == "delivery_failed" and "imeout" in (o.get("error") or ""):
                timeouts.setdefault(r["k"], []).append(epoch_ms(o["ts"]) / 1000.0)
    lost = [e for e in published if e not in acc]
    unpublished = [e for e, p in published.items() if p is None]
    early = []
    for e, p in published.items():
        if p is None:
            continue
        if e not in acc:
            early.append(e)
        elif a.sink == "webhook" and min(t for _, _, t in acc[e]) > p + 0.001:
            early.append(e)
    dup_events = {e: v for e, v in acc.items() if len(v) > 1}
    explained = unexplained = 0
    redelivered = set()
    for e, v in dup_events.items():
        k, i, _ = v[0]
        run = rc[k]
        ds = deliveries[k]
        last_of_run = i == len(ds) - 1
        if a.sink == "stdout" and last_of_run:
            # no request boundaries on stdout: the batch in hand at the
            # fault is among the last --batch lines the run wrote
            tail = ds[i][0][-a.batch:]
            last_of_run = e in tail
        again_in_run = any(k2 == k for k2, _, _ in v[1:])
        ok = False
        t = v[0][2]
        if t is not None and any(t - 0.002 <= x <= t + a.timeout_ms / 1000.0 + 0.5
                                 for x in timeouts.get(k, [])):
            ok = True  # answered after the relay's --timeout: not accepted
        elif again_in_run:
            ok = run.get("reconnects", 0) > 0
        elif last_of_run and (run["rc"] != 0 or run.get("faulted")):
            ok = True
        if ok:
            explained += 1
            redelivered.add((k, i))
        else:
            unexplained += 1
    extra = sum(len(v) - 1 for v in dup_events.values())

    if lost:
        problems.append("%d events never accepted by the sink: %s" % (len(lost), lost[:10]))
    if unpublished:
        problems.append("%d events left unpublished: %s" % (len(unpublished), unpublished[:10]))
    if early:
        problems.append("%d events marked published before the sink accepted them: %s"
                        % (len(early), early[:10]))
    if unexplained:
        problems.append("%d events delivered twice without a fault between acceptance and mark: %s"
                        % (unexplained, sorted(e for e, v in dup_events.items())[:10]))
    emit({"events": len(published), "deliveries": sum(len(d) for d in deliveries.values()),
          "posts": posts, "refused_posts": refused, "lost": len(lost),
          "unpublished": len(unpublished), "marked_early": len(early),
          "duplicated": len(dup_events), "extra_copies": extra,
          "dup_explained": explained, "dup_unexplained": unexplained,
          "redelivered_batches": len(redelivered), "replayed_ids": replays,
          "restarts_in_run": resets, "partial_lines": partial,
          "bad_signature": bad_sig + stale + missing}, problems)


# ---- engagement-webhook ------------------------------------------------------------

def webhook(a):
    posts = [p for p in (json.loads(l) for l in read_lines(a.posts)) if "i" in p]
    with open(a.db, encoding="utf-8") as f:
        db = json.load(f)
    problems = []
    answered = {}  # delivery index -> first time answered 200
    attempts = {}
    for p in posts:
        attempts[p["i"]] = attempts.get(p["i"], 0) + 1
        if p["status"] == 200 and p["i"] not in answered:
            answered[p["i"]] = p
    n = a.deliveries
    not_answered = [i for i in range(n) if i not in answered]
    stored = set(db.get("stored_keys") or [])
    applied = set(db.get("applied_keys") or [])
    keys = {p["i"]: p["key"] for p in posts}
    lost = [i for i in answered if keys[i] not in stored]
    unapplied = [i for i in answered if keys[i] not in applied]
    if not_answered:
        problems.append("%d deliveries never answered 200 (the poster gave up): %s"
                        % (len(not_answered), not_answered[:10]))
    if lost:
        problems.append("%d deliveries answered 200 but not in the inbox: %s" % (len(lost), lost[:10]))
    if unapplied:
        problems.append("%d deliveries answered 200 but not applied: %s"
                        % (len(unapplied), unapplied[:10]))
    if db["broken"]:
        problems.append("%d deliveries marked broken" % db["broken"])
    people = a.people
    want = {"activity_events": 2 * people, "inbound_events": 2 * people,
            "transitions": people, "active_at_last": people, "read": people,
            "read_ordered": people, "outbox_delivered": people, "outbox_read": people,
            "pending": 0}
    for k, v in want.items():
        if db[k] != v:
            problems.append("%s %s, expected %s" % (k, db[k], v))
    for k in ("max_activity_per_wamid", "max_outbox_per_message_status"):
        if db[k] > 1:
            problems.append("%s %s: something applied twice" % (k, db[k]))
    emit({"deliveries": n, "answered_200": len(answered),
          "answers_non200": sum(1 for p in posts if p["status"] != 200),
          "answers_503": sum(1 for p in posts if p["status"] == 503),
          "no_answer": sum(1 for p in posts if p["status"] == 0),
          "attempts": len(posts), "stored_rows": db["inbox_rows"],
          "lost": len(lost), "unapplied": len(unapplied),
          "stored_twice": db["inbox_rows"] - len(stored),
          "activity_events": db["activity_events"], "transitions": db["transitions"]},
         problems)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--sink", choices=["webhook", "stdout"], required=True)
    r.add_argument("--runs", required=True)
    r.add_argument("--db-events", required=True)
    r.add_argument("--records")
    r.add_argument("--batch", type=int, default=100)
    r.add_argument("--timeout-ms", type=int, default=10000)
    w = sub.add_parser("webhook")
    w.add_argument("--posts", required=True)
    w.add_argument("--db", required=True)
    w.add_argument("--people", type=int, required=True)
    w.add_argument("--deliveries", type=int, required=True)
    a = p.parse_args()
    {"relay": relay, "webhook": webhook}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
