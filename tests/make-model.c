/*
 * make-model.c — writes a safetensors file of random float32 tensors of
 * given shapes, for tests that need sizes the samples do not have.
 *
 *   make-model OUT NAME=DIMxDIM[xDIMxDIM][@DECAY] ...
 *
 * With @DECAY (2-D only) the matrix is U diag(s) V^T with random orthogonal
 * U, V and s_i = DECAY^(i-1): a known spectrum (up to float32 rounding).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "testlib.h"

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
		if (at != NULL && ndim == 2) {
			size_t m = shape[0], n = shape[1], k = m < n ? m : n, j;
			double *s = rs_xmalloc(k * sizeof *s), *cm;
			for (i = 0; i < k; i++)
				s[i] = pow(strtod(at + 1, NULL), (double)i);
			cm = test_matrix_with_spectrum(m, n, s);
			for (i = 0; i < m; i++)
				for (j = 0; j < n; j++)
					v[i * n + j] = cm[i + j * m];
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
