/* error.c — see rankscope/error.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rankscope/error.h"

/*
 * Messages name tensors and layers from files (and whatever a script
 * passed), and front ends print them verbatim, so a control byte in a
 * name (an escape sequence, say) must not reach the terminal raw.  The
 * readers show names through rs_printable; everything after them (a
 * layer's load, solve or plan-file error) names layers as they are, so
 * every message is cleaned here.  Newlines and tabs stay: Lua tracebacks
 * are laid out with them.
 */
static void
copy_printable(char *dst, size_t len, const char *src)
{
	size_t o = 0;

	for (; *src != '\0' && o + 1 < len; src++) {
		unsigned char c = (unsigned char)*src;

		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
			if (o + 4 >= len)
				break;
			snprintf(dst + o, len - o, "\\x%02x", c);
			o += 4;
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
}

rs_status
rs_error_set(rs_error *err, rs_status code, const char *fmt, ...)
{
	char raw[RS_ERROR_MAX];
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	copy_printable(err->msg, sizeof err->msg, raw);
	return code;
}

void
rs_error_prefix(rs_error *err, const char *fmt, ...)
{
	char raw[RS_ERROR_MAX], prefix[RS_ERROR_MAX];
	size_t plen, mlen;
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	copy_printable(prefix, sizeof prefix, raw);
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
