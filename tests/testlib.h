/*
 * testlib.h — the little the C tests share: checks that count failures,
 * a deterministic random source, matrices with known singular values, a
 * safetensors image builder and scratch directories.
 */
#ifndef RANKSCOPE_TESTLIB_H
#define RANKSCOPE_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/dtype.h"

extern int test_failures;
extern int test_checks;

void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define CHECK(cond, ...) do { test_checks++; \
	if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
/* |a - b| <= tol */
#define CHECK_NEAR(a, b, tol, what) do { double a_ = (a), b_ = (b); test_checks++; \
	if (!(fabs(a_ - b_) <= (tol))) test_fail(__FILE__, __LINE__, \
	    "%s: %.17g vs %.17g (diff %.3g > %.3g)", (what), a_, b_, fabs(a_ - b_), \
	    (double)(tol)); } while (0)
/* s contains needle */
#define CHECK_CONTAINS(s, needle) do { const char *s_ = (s); test_checks++; \
	if (s_ == NULL || strstr(s_, (needle)) == NULL) test_fail(__FILE__, __LINE__, \
	    "expected '%s' in '%s'", (needle), s_ ? s_ : "(null)"); } while (0)

/* Prints the summary line and returns the exit status for main. */
int test_done(const char *name);

/* Deterministic generator (xorshift64*), seeded per test. */
void test_seed(uint64_t seed);
double test_uniform(void);     /* [0, 1) */
double test_gaussian(void);
/* An m x n matrix of independent standard normal values (rs_xmalloc'd). */
double *test_gaussian_matrix(size_t m, size_t n);

/* A random orthogonal n x n matrix (QR of a Gaussian), column-major. */
double *test_orthogonal(size_t n);
/* A = U diag(s) V^T, m x n column-major, k = min(m, n) values in s. */
double *test_matrix_with_spectrum(size_t m, size_t n, const double *s);

/* ---- safetensors images ---- */
typedef struct test_st test_st;
test_st *test_st_new(void);
void test_st_metadata(test_st *st, const char *key, const char *value);
/* Adds a tensor; data is copied (nbytes bytes). */
void test_st_add(test_st *st, const char *name, const char *dtype,
                 const size_t *shape, size_t ndim, const void *data, size_t nbytes);
/* Adds a float32 tensor from doubles given in row-major order. */
void test_st_add_f32(test_st *st, const char *name, const size_t *shape,
                     size_t ndim, const double *values);
/* Serialises: 8-byte length, header JSON (padded to 8), data.  Caller frees. */
unsigned char *test_st_bytes(test_st *st, size_t *len);
void test_st_free(test_st *st);

/* ---- files ---- */
/* A fresh scratch directory (removed by test_done); caller frees. */
char *test_tmpdir(void);
void test_write_file(const char *path, const void *data, size_t len);

#endif
