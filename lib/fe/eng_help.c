#include "eng_help.h"

#include "eng_buf.h"
#include "eng_opt.h"

char *eng_help_text(const struct eng_help *h)
{
	struct eng_buf out = ENG_BUF_INIT(65536);
	eng_buf_adds(&out, h->usage ? h->usage : "");
	eng_buf_addc(&out, '\n');
	eng_opt_help(&out, h->options, h->common);
	eng_buf_addc(&out, '\n');
	eng_exit_help(&out, h->exits, h->about);
	return eng_buf_detach(&out);
}
