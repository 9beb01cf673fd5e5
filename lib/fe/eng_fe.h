/*
 * The front end of the engagement programs: what each program in cmd/ includes. It
 * owns options, the run's lifecycle (connect, schema check, job_runs, the
 * single-run lease, signals), the output (help, version, logs' format, the
 * summary) and the choice of exit code; the core (eng.h) does the work and
 * returns what happened.
 */
#ifndef ENG_FE_H
#define ENG_FE_H

#include "eng.h"
#include "eng_exit.h"
#include "eng_help.h"
#include "eng_opt.h"
#include "eng_run.h"

#endif
