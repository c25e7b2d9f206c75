/* util.c — see rankscope/util.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/util.h"

static void
out_of_memory(size_t size)
{
	fprintf(stderr, "rankscope: out of memory allocating %zu bytes\n", size);
	abort();
}

void *
rs_xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		out_of_memory(size);
	return p;
}

void *
rs_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);

	if (p == NULL)
		out_of_memory(count * size);
	return p;
}

void *
rs_xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		out_of_memory(size);
	return p;
}

void *
rs_xreallocarray(void *ptr, size_t count, size_t size)
{
	size_t total;

	if (rs_mul_overflows(count, size, &total))
		out_of_memory(SIZE_MAX);
	return rs_xrealloc(ptr, total);
}

char *
rs_xstrdup(const char *s)
{
	return rs_xstrndup(s, strlen(s));
}

char *
rs_xstrndup(const char *s, size_t len)
{
	char *p = rs_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
rs_xasprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		out_of_memory(0);
	p = rs_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

bool
rs_mul_overflows(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

void
rs_format_count(char *buf, size_t len, double value)
{
	static const char suffix[] = {'k', 'M', 'G', 'T'};
	int i = -1;

	while (value >= 999.5 && i < 3) {
		value /= 1000.0;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%.0f", value);
	else if (value < 9.995)
		snprintf(buf, len, "%.2f%c", value, suffix[i]);
	else if (value < 99.95)
		snprintf(buf, len, "%.1f%c", value, suffix[i]);
	else
		snprintf(buf, len, "%.0f%c", value, suffix[i]);
}

void
rs_format_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int i = 0;

	while (v >= 1024.0 && i < 4) {
		v /= 1024.0;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[i]);
}

const char *
rs_escape_controls(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	if (len == 0)
		return "";
	for (; *s != '\0' && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

const char *
rs_printable(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	if (len == 0)
		return "";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		size_t n;

		if (c < 0x20 || c == 0x7f)
			n = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
		else if (c == '\'' || c == '\\')
			n = (size_t)snprintf(tmp, sizeof tmp, "\\%c", c);
		else {
			tmp[0] = (char)c;
			n = 1;
		}
		if (o + n + 4 > len) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

bool
rs_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k, more;

	while (i < n) {
		unsigned c = u[i];
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3, cp = c & 0x07;
		else
			return false;          /* a continuation byte, C0/C1, F5-FF */
		if (n - i - 1 < more)
			return false;          /* cut at the end */
		for (k = 1; k <= more; k++) {
			if ((u[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (u[i + k] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;          /* overlong, surrogate, past U+10FFFF */
		i += more + 1;
	}
	return true;
}

int
rs_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (n > 256 ? 256 : (int)n);
}

size_t
rs_smallest_within(size_t n, double eps, double (*curve)(const void *obj, size_t j),
                   const void *obj)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (curve(obj, mid) <= eps)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

uint64_t
rs_read_le(const unsigned char *p, int nbytes)
{
	uint64_t v = 0;

	while (nbytes-- > 0)
		v = v << 8 | p[nbytes];
	return v;
}

const char *
rs_path_stem(const char *path, const char *suffix, size_t *len)
{
	const char *base = strrchr(path, '/');
	size_t n, ns = strlen(suffix);

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > ns && strcmp(base + n - ns, suffix) == 0)
		n -= ns;
	*len = n;
	return base;
}
