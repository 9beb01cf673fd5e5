#include "eng_out.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static enum eng_status print_lines(void *ctx, const char *const *lines, size_t n,
				   struct eng_err *err)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		fputs(lines[i], stdout);
		fputc('\n', stdout);
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		return eng_err_set(err, ENG_ETEMP,
				   "cannot write to stdout (%s): events stay unpublished",
				   strerror(errno));
	return ENG_OK;
}

const struct eng_relay_sink eng_stdout_sink = {"stdout", print_lines, NULL};
