/*
 * libengagement: the library every engagement program is built on.
 *
 * Ownership, in one sentence: a string or struct passed *into* a function is
 * borrowed for the duration of the call; anything a function hands back
 * through a pointer (a PGresult, a json_t, a malloc'd string, a struct it
 * filled) is owned by the caller, who frees it with the matching
 * *_release() (contents of a caller-owned struct), *_free() (a heap object),
 * PQclear() or json_decref().
 *
 * Errors: functions that can fail return enum eng_status and fill a
 * caller-owned struct eng_err (status, SQLSTATE, one-line message). The
 * library never prints and never exits (except eng_x* on out-of-memory);
 * programs decide how to present an error and which exit code to use.
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
