/*
 * util.h — bookkeeping allocation and small string helpers.
 *
 * rs_xmalloc and friends abort on failure: they are for small allocations
 * whose size the program controls.  Anything sized by a user's file must use
 * plain malloc and report RS_ENOMEM instead (see error.h).
 */
#ifndef RANKSCOPE_UTIL_H
#define RANKSCOPE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *rs_xmalloc(size_t size);
void *rs_xcalloc(size_t count, size_t size);
void *rs_xrealloc(void *ptr, size_t size);
void *rs_xreallocarray(void *ptr, size_t count, size_t size);
char *rs_xstrdup(const char *s);
char *rs_xstrndup(const char *s, size_t len);
/* Returns a newly allocated formatted string. */
char *rs_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* a * b into *out; false on overflow. */
bool rs_mul_overflows(size_t a, size_t b, size_t *out);

/* The smallest j in 0..n with curve(obj, j) <= eps, for a curve that does
 * not rise with j and is <= eps at n (an error against rank): O(log n)
 * bisection.  n when no smaller j qualifies. */
size_t rs_smallest_within(size_t n, double eps, double (*curve)(const void *obj, size_t j),
                          const void *obj);

/* Shortens a count for tables: 21793 -> "21.8k", 1204792 -> "1.20M". */
void rs_format_count(char *buf, size_t len, double value);
/* Human byte size: 1204792 -> "1.1 MiB". */
void rs_format_bytes(char *buf, size_t len, uint64_t bytes);

/*
 * Copies `s` into buf so it can be shown in a one-line message: control
 * characters and quotes are escaped, long strings are cut with "...".
 * Tensor names come from untrusted files and end up in terminals.
 */
const char *rs_printable(char *buf, size_t len, const char *s);
/* s[0..n) is strict UTF-8: no overlong forms, no surrogates, nothing past
 * U+10FFFF, no sequence cut at the end (NUL is a character like any other:
 * callers that refuse it check for it). */
bool rs_utf8_valid(const char *s, size_t n);
/* s with control bytes as \xNN and nothing else changed (cut to fit): for
 * text that quotes a file, such as jansson's error near the fault. */
const char *rs_escape_controls(char *buf, size_t len, const char *s);

/* The unsigned little-endian integer in p[0..nbytes) (nbytes <= 8), read
 * byte by byte: file fields need no alignment. */
uint64_t rs_read_le(const unsigned char *p, int nbytes);

/* The last component of `path` without `suffix` (when it ends so): its
 * start, and its length in *len.  "dir/w.npy", ".npy" -> "w". */
const char *rs_path_stem(const char *path, const char *suffix, size_t *len);

/* Number of online processors, at least 1. */
int rs_cpu_count(void);

#endif
