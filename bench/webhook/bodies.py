#!/usr/bin/env python3
"""Pre-signed Meta webhook deliveries for bench/webhook.sh.

    bodies.py N USERS SECRET_FILE OUT [SEED]

Writes N lines to OUT, each "sha256=HEX<TAB>BODY": BODY is one delivery as
Meta posts it for the WhatsApp Business Account's `messages` field
(WHATSAPP.md, "Webhooks"), HEX the HMAC-SHA256 of its bytes with the app
secret. The mix, in a shuffled order:

  70%  one delivery status of a message we sent; status items take the
       queue's messages in turn, two each: delivered and read (every 25th
       message: sent and failed 131026, every 500th failed 131050, the
       person said stop), so a message's read may come before its delivered
  15%  one inbound text message from a user (1 in 100 "parar lembretes")
   5%  one inbound message from a number that is no user
   5%  one inbound quick-reply button tap from a user
   5%  two statuses in one delivery

Every wamid is distinct, and so is every (wamid, status): a delivery is
never a repeat of another. Users are numbered 1..USERS (phone
+5511 and the number on 9 digits); queued message m (1..) has
provider_message_id wamid.BENCH<m on 12 digits> and queue id m. Prints one
JSON line: how many status items and queue messages the bodies need.
"""
import hashlib
import hmac
import json
import random
import sys
import time

n, users, secret_file, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 1
secret = open(secret_file, "rb").read().strip()
rng = random.Random(seed)
now = int(time.time())

PHONE_ID, DISPLAY = "106540352242922", "15550783881"
TEXTS = ["ok", "thanks!", "what time tomorrow?", "hello", "obrigado", "\U0001F44D", "sure, see you"]
NAMES = ["Ana", "Bruno", "Carla", "Diego", "Eva", "Jo\u00e3o"]


def phone(u):
    return "5511%09d" % u


def envelope(value):
    value = dict({"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID}},
                 **value)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}


status_item = 0  # the next status item: message status_item // 2 + 1


def next_status():
    global status_item
    s = status_item
    status_item += 1
    m = s // 2 + 1
    first = s % 2 == 0
    u = (m - 1) % users + 1
    x = {"id": "wamid.BENCH%012d" % m, "timestamp": str(now - rng.randint(0, 600)),
         "recipient_id": phone(u), "biz_opaque_callback_data": "mq:%d" % m}
    if m % 25 == 0:
        x["status"] = "sent" if first else "failed"
        if not first:
            code = 131050 if m % 500 == 0 else 131026
            x["errors"] = [{"code": code, "title": "Message undeliverable",
                            "message": "Message undeliverable",
                            "error_data": {"details": "Message failed to send."}}]
    else:
        x["status"] = "delivered" if first else "read"
    if x["status"] != "failed":
        x["conversation"] = {"id": "conv%012d" % m, "origin": {"type": "marketing"}}
        x["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
    return x


def inbound(i, kind):
    u = rng.randint(1, users) if kind != "stranger" else users + rng.randint(1, 10 ** 6)
    m = {"from": phone(u), "id": "wamid.IN%012d" % i, "timestamp": str(now - rng.randint(0, 600))}
    if kind == "button":
        m.update(type="button", button={"payload": "goodbye_%d" % rng.randint(1, 3), "text": "Busy"},
                 context={"from": DISPLAY, "id": "wamid.OF_THE_TEMPLATE%d" % i})
    else:
        text = "parar lembretes" if rng.random() < 0.01 else rng.choice(TEXTS)
        m.update(type="text", text={"body": text})
    return {"contacts": [{"profile": {"name": rng.choice(NAMES)}, "wa_id": phone(u)}],
            "messages": [m]}


bodies = []
for i in range(n):
    r = rng.random()
    if r < 0.70:
        v = {"statuses": [next_status()]}
    elif r < 0.85:
        v = inbound(i, "text")
    elif r < 0.90:
        v = inbound(i, "stranger")
    elif r < 0.95:
        v = inbound(i, "button")
    else:
        v = {"statuses": [next_status(), next_status()]}
    bodies.append(json.dumps(envelope(v), ensure_ascii=False, separators=(",", ":")).encode())
rng.shuffle(bodies)
with open(out, "wb") as f:
    for b in bodies:
        assert b"\t" not in b and b"\n" not in b
        f.write(b"sha256=" + hmac.new(secret, b, hashlib.sha256).hexdigest().encode() + b"\t" + b + b"\n")
print(json.dumps({"bodies": n, "status_items": status_item, "messages": status_item // 2 + 1,
                  "bytes_avg": sum(map(len, bodies)) // max(n, 1)}))
