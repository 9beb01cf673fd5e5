/*
 * What every harness shares: the libFuzzer entry points, a NUL-terminated
 * copy of the input (the parsers under test take C strings; the copy is
 * exactly as long as it needs to be, so ASan sees a read past its end), and
 * CHECK, which turns a broken property into a crash libFuzzer saves.
 */
#ifndef ENG_FUZZ_H
#define ENG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The input as a C string (it ends at its first NUL byte, if any). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: property failed: %s\n",      \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

#endif
