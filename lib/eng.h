/*
 * libengagement, the core every engagement program is built on.
 *
 * Layers, each a static library that sees only those it links (so an
 * include that goes up does not compile):
 *   base/        errors, buffers, JSON, logs, masking, parsers, time, crypto
 *   db/          the connection, statements, migrations, job runs and the
 *                lease, batches, and struct eng_job (what a job gets)
 *   http/        the HTTP client pool, URL and secret rules
 *   engagement/  the domain: the state machine, daily, weekly, events,
 *                opt-outs, and what an inbound message means (eng_inbound.h)
 * Then one folder per program's core, each named for what it does:
 *   outbound/    queue-send: claim, fence, decide, the Cloud API, the loop
 *   inbound/     engagement-webhook: the receiver, its inbox, Meta's payloads
 *   outbox/      outbox-relay: the transactional outbox's publisher
 *   report/      engagement-status: the operator's report and metrics
 *   operator/    engagement-ctl: the operator's commands, one person's history
 * Above them (lib/fe): the front end, which owns options, help, the run's
 * lifecycle, what is printed and the exit code. This header sits outside
 * every layer: it is what the front end includes of the core.
 *
 * Ownership, in one sentence: a string or struct passed *into* a function is
 * borrowed for the duration of the call; anything a function hands back
 * through a pointer (a PGresult, a json_t, a malloc'd string, a struct it
 * filled) is owned by the caller, who frees it with the matching
 * *_release() (contents of a caller-owned struct), *_free() (a heap object),
 * PQclear() or json_decref().
 *
 * Errors: functions that can fail return enum eng_status and fill a
 * caller-owned struct eng_err (status, SQLSTATE, one-line message, and the
 * log event that should report it). A job returns ENG_OK (done),
 * ENG_PARTIAL (done, some items failed) or an error (refused or stopped).
 * The core never prints to stdout and never exits (except eng_x* on
 * out-of-memory); it writes log lines through eng_log and counts into the
 * job's summary object. The front end decides how to present an outcome
 * and which exit code it gets.
 */
#ifndef ENG_H
#define ENG_H

#include "eng_err.h"
#include "eng_buf.h"
#include "eng_json.h"
#include "eng_mask.h"
#include "eng_log.h"
#include "eng_time.h"
#include "eng_parse.h"
#include "eng_db.h"

#endif
