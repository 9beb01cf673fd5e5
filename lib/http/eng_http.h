/* What the HTTP clients (queue-send, outbox-relay) share: URL policy and
 * secrets read from files. */
#ifndef ENG_HTTP_H
#define ENG_HTTP_H

#include <stddef.h>

#include "eng_err.h"

/* Accept an https URL, or plain http to a loopback host only (a secret
 * must not travel in clear). Copies it without trailing slashes into out.
 * what names the setting in messages. ENG_ECONFIG otherwise. */
enum eng_status eng_http_check_url(const char *url, const char *what,
				   char *out, size_t outsz, struct eng_err *err);

/* Read a secret from a file (at most 16 KiB, trailing whitespace removed).
 * The file must be a regular file (a symlink to one will do) readable by
 * its owner only. what names the setting in messages; the secret never
 * appears in one. ENG_ECONFIG when unreadable, not a regular file,
 * readable by group or others, or empty. Caller frees *out with
 * eng_http_wipe. */
enum eng_status eng_http_read_secret(const char *path, const char *what,
				     char **out, struct eng_err *err);

/* Zero and free a secret. */
void eng_http_wipe(char *secret);

#endif
