/* error.c — see rankscope/error.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rankscope/error.h"

rs_status
rs_error_set(rs_error *err, rs_status code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

void
rs_error_prefix(rs_error *err, const char *fmt, ...)
{
	char prefix[RS_ERROR_MAX];
	size_t plen, mlen;
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	/* Shift the message right and put the prefix in front, cutting the
	 * end of the message if the two do not fit. */
	plen = strlen(prefix);
	mlen = strlen(err->msg);
	if (plen > sizeof err->msg - 1)
		plen = sizeof err->msg - 1;
	if (mlen > sizeof err->msg - 1 - plen)
		mlen = sizeof err->msg - 1 - plen;
	memmove(err->msg + plen, err->msg, mlen);
	memcpy(err->msg, prefix, plen);
	err->msg[plen + mlen] = '\0';
}

void
rs_error_clear(rs_error *err)
{
	if (err == NULL)
		return;
	err->code = RS_OK;
	err->msg[0] = '\0';
}

const char *
rs_status_name(rs_status code)
{
	static const char *const names[] = {
		[RS_OK] = "ok", [RS_EIO] = "io", [RS_EFORMAT] = "format",
		[RS_EINVAL] = "invalid", [RS_ENOMEM] = "nomem",
		[RS_ENUMERIC] = "numeric", [RS_ECANCELLED] = "cancelled",
	};
	if ((unsigned)code < sizeof names / sizeof names[0] && names[code])
		return names[code];
	return "unknown";
}
