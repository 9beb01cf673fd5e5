/* Shared includes for the cmocka unit suites (cmocka 1.1 wants these
 * before <cmocka.h>). */
#ifndef ENG_UNIT_H
#define ENG_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
