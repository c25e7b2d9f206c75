/* testlib.c — see testlib.h. */
#include "config.h"

#include <ftw.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/util.h"
#include "testlib.h"

int test_failures;
int test_checks;

static char *scratch[64];
static int nscratch;

void
test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	test_failures++;
	fprintf(stderr, "FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

int
test_done(const char *name)
{
	int i;

	for (i = 0; i < nscratch; i++) {
		nftw(scratch[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(scratch[i]);
	}
	printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
	return test_failures ? 1 : 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void
test_seed(uint64_t seed)
{
	rng_state = seed ? seed : 1;
}

double
test_uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
}

double
test_gaussian(void)
{
	double u = test_uniform(), v = test_uniform();

	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

double *
test_gaussian_matrix(size_t m, size_t n)
{
	double *a = rs_xmalloc((m * n + 1) * sizeof *a);
	size_t i;

	for (i = 0; i < m * n; i++)
		a[i] = test_gaussian();
	return a;
}

double *
test_orthogonal(size_t n)
{
	double *q = rs_xmalloc(n * n * sizeof *q), *tau = rs_xmalloc(n * sizeof *tau);
	size_t i;

	for (i = 0; i < n * n; i++)
		q[i] = test_gaussian();
	if (LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (int)n, (int)n, q, (int)n, tau) != 0 ||
	    LAPACKE_dorgqr(LAPACK_COL_MAJOR, (int)n, (int)n, (int)n, q, (int)n, tau) != 0)
		abort();
	free(tau);
	return q;
}

double *
test_matrix_with_spectrum(size_t m, size_t n, const double *s)
{
	double *u = test_orthogonal(m), *v = test_orthogonal(n);
	double *a = rs_xcalloc(m * n, sizeof *a);
	size_t k = m < n ? m : n, i, j, r;

	/* a = sum_r s_r u_r v_r^T */
	for (r = 0; r < k; r++)
		for (j = 0; j < n; j++) {
			double f = s[r] * v[j + r * n];
			for (i = 0; i < m; i++)
				a[i + j * m] += f * u[i + r * m];
		}
	free(u);
	free(v);
	return a;
}

/* ---- safetensors builder ---- */

struct test_st_tensor {
	char *name, *dtype;
	size_t shape[8], ndim;
	unsigned char *data;
	size_t nbytes;
};

struct test_st {
	struct test_st_tensor t[64];
	size_t n;
	char *meta[16][2];
	size_t nmeta;
};

test_st *
test_st_new(void)
{
	return rs_xcalloc(1, sizeof(test_st));
}

void
test_st_metadata(test_st *st, const char *key, const char *value)
{
	st->meta[st->nmeta][0] = rs_xstrdup(key);
	st->meta[st->nmeta][1] = rs_xstrdup(value);
	st->nmeta++;
}

void
test_st_add(test_st *st, const char *name, const char *dtype, const size_t *shape,
            size_t ndim, const void *data, size_t nbytes)
{
	struct test_st_tensor *t = &st->t[st->n++];

	t->name = rs_xstrdup(name);
	t->dtype = rs_xstrdup(dtype);
	memcpy(t->shape, shape, ndim * sizeof *shape);
	t->ndim = ndim;
	t->data = rs_xmalloc(nbytes);
	memcpy(t->data, data, nbytes);
	t->nbytes = nbytes;
}

void
test_st_add_f32(test_st *st, const char *name, const size_t *shape, size_t ndim,
                const double *values)
{
	size_t count = 1, i;
	float *f;

	for (i = 0; i < ndim; i++)
		count *= shape[i];
	f = rs_xmalloc(count * sizeof *f);
	for (i = 0; i < count; i++)
		f[i] = (float)values[i];
	test_st_add(st, name, "F32", shape, ndim, f, count * sizeof *f);
	free(f);
}

unsigned char *
test_st_bytes(test_st *st, size_t *len)
{
	char *h = rs_xmalloc(65536);
	size_t o = 0, off = 0, i, j, hlen, total;
	unsigned char *out;

	o += (size_t)snprintf(h + o, 65536 - o, "{");
	if (st->nmeta) {
		o += (size_t)snprintf(h + o, 65536 - o, "\"__metadata__\":{");
		for (i = 0; i < st->nmeta; i++)
			o += (size_t)snprintf(h + o, 65536 - o, "%s\"%s\":\"%s\"", i ? "," : "",
			                      st->meta[i][0], st->meta[i][1]);
		o += (size_t)snprintf(h + o, 65536 - o, "}%s", st->n ? "," : "");
	}
	for (i = 0; i < st->n; i++) {
		struct test_st_tensor *t = &st->t[i];
		o += (size_t)snprintf(h + o, 65536 - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
		                      i ? "," : "", t->name, t->dtype);
		for (j = 0; j < t->ndim; j++)
			o += (size_t)snprintf(h + o, 65536 - o, "%s%zu", j ? "," : "", t->shape[j]);
		o += (size_t)snprintf(h + o, 65536 - o, "],\"data_offsets\":[%zu,%zu]}",
		                      off, off + t->nbytes);
		off += t->nbytes;
	}
	o += (size_t)snprintf(h + o, 65536 - o, "}");
	hlen = (o + 7) / 8 * 8;
	total = 8 + hlen + off;
	out = rs_xmalloc(total);
	for (i = 0; i < 8; i++)
		out[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
	memcpy(out + 8, h, o);
	memset(out + 8 + o, ' ', hlen - o);
	off = 8 + hlen;
	for (i = 0; i < st->n; i++) {
		memcpy(out + off, st->t[i].data, st->t[i].nbytes);
		off += st->t[i].nbytes;
	}
	free(h);
	*len = total;
	return out;
}

void
test_st_free(test_st *st)
{
	size_t i;

	for (i = 0; i < st->n; i++) {
		free(st->t[i].name);
		free(st->t[i].dtype);
		free(st->t[i].data);
	}
	for (i = 0; i < st->nmeta; i++) {
		free(st->meta[i][0]);
		free(st->meta[i][1]);
	}
	free(st);
}

char *
test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir = rs_xasprintf("%s/rankscope-test-XXXXXX", base && *base ? base : "/tmp");

	if (mkdtemp(dir) == NULL)
		abort();
	scratch[nscratch++] = rs_xstrdup(dir);
	return dir;
}

void
test_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		abort();
}
