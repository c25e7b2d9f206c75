/* fuzzlib.c — see fuzzlib.h. */
#include "config.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzzlib.h"
#include "rankscope/dtype.h"
#include "rankscope/util.h"
#include "../testlib.h"

void
fuzz_fail(const char *file, int line, const char *cond, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n  %s\n", file, line, cond,
	        what ? what : "");
	abort();
}

bool
fuzz_has_control_byte(const char *s, bool layout_ok)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (layout_ok && (c == '\n' || c == '\t'))
			continue;
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

void
fuzz_check_refusal(rs_status st, const rs_error *err)
{
	FUZZ_ASSERT(st != RS_OK, "a refusal without a status");
	FUZZ_ASSERT(err->code == st, err->msg);
	FUZZ_ASSERT(err->msg[0] != '\0', "a refusal without a message");
	FUZZ_ASSERT(!fuzz_has_control_byte(err->msg, true), err->msg);
}

/* ---- scratch directory ---- */

static char *scratch;

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
remove_scratch(void)
{
	if (scratch != NULL)
		nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_scratch_dir(void)
{
	const char *base = getenv("TMPDIR");

	if (scratch != NULL)
		return scratch;
	/* tmpfs when there is one: a target writes a file per input */
	if (base == NULL || base[0] == '\0')
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	scratch = rs_xasprintf("%s/rankscope-fuzz-XXXXXX", base);
	if (mkdtemp(scratch) == NULL) {
		perror(scratch);
		abort();
	}
	atexit(remove_scratch);
	return scratch;
}

void
fuzz_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

/* ---- the tiny model ---- */

/* Values k/8, |k| <= 15: exact in every floating dtype of the model. */
static double
small_value(void)
{
	return floor(test_uniform() * 31.0 - 15.0) / 8.0;
}

static uint16_t
to_half(double v)
{
	int e;
	double m;

	if (v == 0)
		return 0;
	m = frexp(fabs(v), &e);     /* |v| = m 2^e, m in [0.5, 1) */
	return (uint16_t)((v < 0) << 15 | (unsigned)(e - 1 + 15) << 10 |
	                  (unsigned)((2 * m - 1) * 1024));
}

static uint16_t
to_bfloat16(double v)
{
	float f = (float)v;
	uint32_t w;

	memcpy(&w, &f, sizeof w);
	return (uint16_t)(w >> 16);
}

static void
add(test_st *st, const char *name, const char *dtype, const size_t *shape, size_t ndim)
{
	size_t count = 1, i, esize = strcmp(dtype, "F64") == 0 || strcmp(dtype, "I64") == 0 ?
	                               8 : strcmp(dtype, "F32") == 0 ? 4 : 2;
	unsigned char *data;

	for (i = 0; i < ndim; i++)
		count *= shape[i];
	data = rs_xcalloc(count, esize);
	for (i = 0; i < count; i++) {
		double v = small_value();
		if (strcmp(dtype, "F64") == 0) {
			memcpy(data + 8 * i, &v, 8);
		} else if (strcmp(dtype, "F32") == 0) {
			float f = (float)v;
			memcpy(data + 4 * i, &f, 4);
		} else if (strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0) {
			uint16_t h = dtype[0] == 'F' ? to_half(v) : to_bfloat16(v);
			memcpy(data + 2 * i, &h, 2);
		} else {
			int64_t n = (int64_t)i + 1;
			memcpy(data + 8 * i, &n, 8);
		}
	}
	test_st_add(st, name, dtype, shape, ndim, data, count * esize);
	free(data);
}

void
fuzz_session_open(fuzz_session *s, int fold, bool composed)
{
	static const size_t conv[4] = {4, 2, 3, 3}, bias[1] = {4}, fc[2] = {6, 8};
	static const size_t head[2] = {3, 6}, lora0[2] = {2, 8}, lora1[2] = {5, 2};
	static const size_t steps[1] = {1};
	const char *pattern = FUZZ_COMPOSE_PATTERN;
	rs_engine_options eo = {.threads = 1, .method = RS_SVD_AUTO, .statistics = true};
	test_st *st = test_st_new();
	rs_error err;
	size_t i;

	memset(s, 0, sizeof *s);
	test_seed(20240601);
	test_st_metadata(st, "format", "pt");
	add(st, "conv1.weight", "F32", conv, 4);
	add(st, "conv1.bias", "F32", bias, 1);
	add(st, "fc.weight", "F16", fc, 2);
	add(st, "head.weight", "F64", head, 2);
	add(st, "lora.0.weight", "F32", lora0, 2);
	add(st, "lora.1.weight", "BF16", lora1, 2);
	add(st, "steps", "I64", steps, 1);
	s->bytes = test_st_bytes(st, &s->len);
	test_st_free(st);
	s->model = rs_safetensors_parse(FUZZ_MODEL_PATH, s->bytes, s->len, &err);
	if (s->model == NULL)
		fuzz_fail(__FILE__, __LINE__, "the tiny model opens", err.msg);
	s->compose = rs_compose_new(s->model, &pattern, composed ? 1 : 0, &err);
	if (s->compose == NULL)
		fuzz_fail(__FILE__, __LINE__, "the tiny model composes", err.msg);
	s->nlayers = rs_layers_discover(s->model, NULL, fold, s->compose, &s->layers);
	s->engine = rs_engine_start(s->layers, s->nlayers, FUZZ_MODEL_PATH, &eo);
	rs_engine_wait(s->engine);
	s->analyses = rs_xcalloc(s->nlayers, sizeof *s->analyses);
	for (i = 0; i < s->nlayers; i++) {
		if (rs_engine_state(s->engine, i) != RS_JOB_DONE)
			fuzz_fail(__FILE__, __LINE__, "every spectrum of the tiny model",
			          rs_engine_error(s->engine, i));
		s->analyses[i] = rs_engine_analysis(s->engine, i);
	}
}

void
fuzz_session_close(fuzz_session *s)
{
	free(s->analyses);
	rs_engine_free(s->engine);
	free(s->layers);
	rs_compose_free(s->compose);
	rs_model_close(s->model);
	free(s->bytes);
	memset(s, 0, sizeof *s);
}

/*
 * Under the address sanitizer a malloc beyond 256 MiB returns NULL, as it
 * would on a machine without the memory, instead of ending the run: the
 * code under test must report RS_ENOMEM for what it cannot get.  (No
 * input of these targets needs that much; -rss_limit_mb is 2048.)
 */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=256";
}

void
fuzz_check_tensor(const rs_tensor *t)
{
	size_t count = 1, j;

	for (j = 0; j < t->ndim; j++)
		FUZZ_ASSERT(!rs_mul_overflows(count, t->shape[j], &count), t->name);
	FUZZ_ASSERT(count == t->count, t->name);
	FUZZ_ASSERT(t->nbytes == rs_dtype_nbytes(t->dtype, count), t->name);
	FUZZ_ASSERT(t->data != NULL || t->nbytes == 0, t->name);
	if (t->nbytes > 0) {
		volatile unsigned char sink = t->data[0];
		sink = t->data[t->nbytes - 1];
		(void)sink;
	}
}

void
fuzz_load_layers(const rs_model *m, const char *path)
{
	rs_layer *layers = NULL;
	size_t n = rs_layers_discover(m, NULL, 0, NULL, &layers), i;
	rs_error err;

	for (i = 0; i < n; i++) {
		size_t count = layers[i].rows * layers[i].cols;
		double *a;
		rs_status st;

		if (count > FUZZ_MAX_LAYER_ELEMENTS)
			continue;
		a = rs_xmalloc(count * sizeof *a + 1);
		st = rs_layer_load(&layers[i], a, layers[i].rows, path, &err);
		if (st != RS_OK)
			fuzz_check_refusal(st, &err);
		free(a);
	}
	free(layers);
}
