/*
 * error.h — one way to report failure.
 *
 * Every fallible function takes an `rs_error *` last and returns a status
 * (RS_OK on success).  The message is complete on its own: it names the file,
 * the object (tensor, layer, cache entry) and what was expected, so front ends
 * print it verbatim.  Passing NULL for the error is allowed and discards it.
 */
#ifndef RANKSCOPE_ERROR_H
#define RANKSCOPE_ERROR_H

#include <stddef.h>

typedef enum rs_status {
	RS_OK = 0,
	RS_EIO,        /* the operating system refused (open, read, mmap, write) */
	RS_EFORMAT,    /* a file's contents break its format */
	RS_EINVAL,     /* a caller-supplied value is out of range */
	RS_ENOMEM,     /* an allocation whose size a file controls failed */
	RS_ENUMERIC,   /* LAPACK reported non-convergence, or data is not finite */
	RS_ECANCELLED  /* the work was cancelled before it finished */
} rs_status;

#define RS_ERROR_MAX 1024

typedef struct rs_error {
	rs_status code;
	char msg[RS_ERROR_MAX];
} rs_error;

/* Records code and a printf-style message; returns code for tail calls. */
rs_status rs_error_set(rs_error *err, rs_status code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("model.safetensors: "). */
void rs_error_prefix(rs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void rs_error_clear(rs_error *err);

/* Short name of a status, for logs and tests. */
const char *rs_status_name(rs_status code);

#endif
