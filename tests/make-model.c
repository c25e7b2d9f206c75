/*
 * make-model.c — writes a safetensors file of random float32 tensors of
 * given shapes, for tests that need sizes the samples do not have.
 *
 *   make-model OUT NAME=DIMxDIM[xDIMxDIM][@DECAY] ...
 *
 * With @DECAY the matrix is U diag(s) V^T with random orthogonal U, V and
 * s_i = DECAY^(i-1): a known spectrum (up to float32 rounding).  For a 4-D
 * kernel, @DECAY:F gives that spectrum to the kernel's matrix under fold
 * scheme F (0..3, default 0; DESIGN.md section 4), whatever the others get.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "testlib.h"

/* The matrix shape and element positions of DESIGN.md's four folds,
 * written from the definitions (first-named index slowest). */
static void
fold_shape(const size_t *s, int fold, size_t *m, size_t *n)
{
	switch (fold) {
	case 1: *m = s[0] * s[2]; *n = s[1] * s[3]; break;
	case 2: *m = s[0] * s[3]; *n = s[1] * s[2]; break;
	case 3: *m = s[0] * s[2] * s[3]; *n = s[1]; break;
	default: *m = s[0]; *n = s[1] * s[2] * s[3]; break;
	}
}

static size_t
tensor_index(const size_t *s, int fold, size_t row, size_t col)
{
	size_t f, c, h, w;

	switch (fold) {
	case 1: f = row / s[2]; h = row % s[2]; c = col / s[3]; w = col % s[3]; break;
	case 2: f = row / s[3]; w = row % s[3]; c = col / s[2]; h = col % s[2]; break;
	case 3: f = row / (s[2] * s[3]); h = row / s[3] % s[2]; w = row % s[3]; c = col; break;
	default: f = row; c = col / (s[2] * s[3]); h = col / s[3] % s[2]; w = col % s[3]; break;
	}
	return ((f * s[1] + c) * s[2] + h) * s[3] + w;
}

int
main(int argc, char **argv)
{
	test_st *st = test_st_new();
	unsigned char *bytes;
	size_t len;
	int a;

	if (argc < 3) {
		fprintf(stderr, "usage: make-model OUT NAME=DIMxDIM[xDIMxDIM] ...\n");
		return 2;
	}
	test_seed(1);
	for (a = 2; a < argc; a++) {
		char *spec = rs_xstrdup(argv[a]), *eq = strchr(spec, '='), *tok, *save;
		char *at = strchr(spec, '@');
		size_t shape[4], ndim = 0, count = 1, i;
		double *v;

		if (eq == NULL) {
			fprintf(stderr, "make-model: '%s' is not NAME=SHAPE\n", argv[a]);
			return 2;
		}
		*eq = '\0';
		if (at != NULL)
			*at = '\0';
		for (tok = strtok_r(eq + 1, "x", &save); tok && ndim < 4;
		     tok = strtok_r(NULL, "x", &save)) {
			shape[ndim] = strtoul(tok, NULL, 10);
			count *= shape[ndim++];
		}
		v = rs_xmalloc(count * sizeof *v);
		if (at != NULL && (ndim == 2 || ndim == 4)) {
			char *colon = strchr(at + 1, ':');
			int fold = colon ? atoi(colon + 1) : 0;
			size_t m = shape[0], n = shape[1], k, j;
			double *s, *cm;
			if (ndim == 4)
				fold_shape(shape, fold, &m, &n);
			k = m < n ? m : n;
			s = rs_xmalloc(k * sizeof *s);
			for (i = 0; i < k; i++)
				s[i] = pow(strtod(at + 1, NULL), (double)i);
			cm = test_matrix_with_spectrum(m, n, s);
			for (i = 0; i < m; i++)
				for (j = 0; j < n; j++)
					v[ndim == 2 ? i * n + j : tensor_index(shape, fold, i, j)] = cm[i + j * m];
			free(cm);
			free(s);
		} else {
			for (i = 0; i < count; i++)
				v[i] = test_gaussian() / sqrt((double)shape[ndim > 1 ? 1 : 0]);
		}
		test_st_add_f32(st, spec, shape, ndim, v);
		free(v);
		free(spec);
	}
	bytes = test_st_bytes(st, &len);
	test_write_file(argv[1], bytes, len);
	free(bytes);
	test_st_free(st);
	return 0;
}
