#include "eng_exit.h"

int eng_exit_code(enum eng_status st)
{
	switch (st) {
	case ENG_OK: return ENG_EXIT_OK;
	case ENG_PARTIAL: return ENG_EXIT_PARTIAL;
	case ENG_ECANTCREAT: return ENG_EXIT_CANTCREAT;
	case ENG_EUSAGE: return ENG_EXIT_USAGE;
	case ENG_EDATA: return ENG_EXIT_DATAERR;
	case ENG_ENOUSER: return ENG_EXIT_NOUSER;
	case ENG_EUNAVAIL: return ENG_EXIT_UNAVAILABLE;
	case ENG_EINTERNAL: return ENG_EXIT_SOFTWARE;
	case ENG_ETEMP: return ENG_EXIT_TEMPFAIL;
	case ENG_EPERM: return ENG_EXIT_NOPERM;
	case ENG_ECONFIG: return ENG_EXIT_CONFIG;
	}
	return ENG_EXIT_SOFTWARE;
}
