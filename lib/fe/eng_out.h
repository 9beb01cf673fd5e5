/* What the programs write on stdout besides their summary. */
#ifndef ENG_OUT_H
#define ENG_OUT_H

#include <stddef.h>

#include "eng_err.h"
#include "eng_relay.h"

/* outbox-relay --stdout: one JSON line per event, flushed per batch
 * (ENG_ETEMP when stdout cannot be written: the events stay unpublished). */
extern const struct eng_relay_sink eng_stdout_sink;

#endif
