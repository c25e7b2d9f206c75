/*
 * test-compose.c — composed layers: grouping by pattern, the product
 * against multiplication written out here, discovery order and filters,
 * the cache key, plan round trips, and one refusal per way a declaration
 * or a factor can be wrong.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/cache.h"
#include "rankscope/compose.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

/* Values of factor k of group g, element (i, j): distinct, small, exact in f32. */
static double
factor_value(int g, int k, size_t i, size_t j)
{
	return (double)((int)(i * 7 + j * 3 + (size_t)k * 5 + (size_t)g) % 11 - 5) / 8.0;
}

static void
add_factor(test_st *st, const char *name, int g, int k, size_t rows, size_t cols)
{
	double *v = rs_xmalloc(rows * cols * sizeof *v);
	size_t shape[2] = {rows, cols}, i, j;

	for (i = 0; i < rows; i++)
		for (j = 0; j < cols; j++)
			v[i * cols + j] = factor_value(g, k, i, j);
	test_st_add_f32(st, name, shape, 2, v);
	free(v);
}

static rs_model *
parse(test_st *st, unsigned char **bytes)
{
	size_t len;
	rs_error err;
	rs_model *m;

	*bytes = test_st_bytes(st, &len);
	m = rs_safetensors_parse("mem.safetensors", *bytes, len, &err);
	CHECK(m != NULL, "parse: %s", m ? "" : err.msg);
	test_st_free(st);
	return m;
}

/* A model like the LoRITa sample: two groups of three factors, a bias and
 * a plain layer between them, the factors out of index order in the file. */
static rs_model *
lorita_like(unsigned char **bytes)
{
	test_st *st = test_st_new();
	size_t bshape[1] = {4};
	double bias[4] = {1, 2, 3, 4};

	add_factor(st, "a.factors.1.weight", 0, 1, 3, 3);
	add_factor(st, "a.factors.0.weight", 0, 0, 3, 5);
	add_factor(st, "a.factors.2.weight", 0, 2, 4, 3);
	test_st_add_f32(st, "a.bias", bshape, 1, bias);
	add_factor(st, "plain.weight", 9, 0, 6, 4);
	add_factor(st, "b.factors.0.weight", 1, 0, 2, 4);
	add_factor(st, "b.factors.1.weight", 1, 1, 6, 2);
	return parse(st, bytes);
}

/* The product F_{N-1} ... F_0 written out with loops. */
static void
expected_product(int g, const size_t *rows, const size_t *cols, size_t n, double *out)
{
	size_t k, i, j, t, r = rows[0], c = cols[0];
	double *acc = rs_xmalloc(64 * 64 * sizeof *acc), *next = rs_xmalloc(64 * 64 * sizeof *next);

	for (i = 0; i < r; i++)
		for (j = 0; j < c; j++)
			acc[i * c + j] = factor_value(g, 0, i, j);
	for (k = 1; k < n; k++) {
		for (i = 0; i < rows[k]; i++)
			for (j = 0; j < c; j++) {
				double s = 0;
				for (t = 0; t < cols[k]; t++)
					s += factor_value(g, (int)k, i, t) * acc[t * c + j];
				next[i * c + j] = s;
			}
		memcpy(acc, next, rows[k] * c * sizeof *acc);
		r = rows[k];
	}
	memcpy(out, acc, r * c * sizeof *acc);
	free(acc);
	free(next);
}

static void
check_grouping_and_product(void)
{
	unsigned char *bytes;
	rs_model *m = lorita_like(&bytes);
	const char *pattern[] = {"*.factors.#.weight"};
	rs_compose_set *set;
	rs_layer *layers;
	rs_error err;
	size_t n, i, j;
	size_t arows[3] = {3, 3, 4}, acols[3] = {5, 3, 3}, brows[2] = {2, 6}, bcols[2] = {4, 2};
	double want[64], got[64];

	set = rs_compose_new(m, pattern, 1, &err);
	CHECK(set != NULL, "compose: %s", set ? "" : err.msg);
	if (set == NULL)
		return;
	CHECK(set->ngroups == 2, "two groups, got %zu", set->ngroups);
	CHECK(strcmp(set->groups[0].name, "a.factors.weight") == 0, "name %s", set->groups[0].name);
	CHECK(strcmp(set->groups[1].name, "b.factors.weight") == 0, "name %s", set->groups[1].name);
	CHECK(set->groups[0].nfactors == 3 && set->groups[1].nfactors == 2, "factor counts");
	CHECK(strcmp(set->groups[0].factors[0]->name, "a.factors.0.weight") == 0 &&
	      strcmp(set->groups[0].factors[2]->name, "a.factors.2.weight") == 0,
	      "factors sorted by index");
	CHECK(rs_compose_stored_count(&set->groups[0]) == 15 + 9 + 12, "stored count");

	n = rs_layers_discover(m, NULL, 0, set, &layers);
	/* a stands where its earliest factor (a.factors.1) stands */
	CHECK(n == 3, "3 layers, got %zu", n);
	CHECK(n == 3 && strcmp(layers[0].name, "a.factors.weight") == 0 &&
	      strcmp(layers[1].name, "plain.weight") == 0 &&
	      strcmp(layers[2].name, "b.factors.weight") == 0, "file order");
	CHECK(layers[0].kind == RS_LAYER_COMPOSED && layers[0].rows == 4 && layers[0].cols == 5,
	      "a is 4x5 composed");
	CHECK(strcmp(rs_layer_kind_name(&layers[0]), "composed") == 0, "kind name");
	CHECK(!rs_layer_loads_transposed(&layers[0]), "composed loads W itself");
	CHECK(rs_layer_params(&layers[0]) == 36 && rs_layer_params(&layers[1]) == 24, "params");
	CHECK(rs_layer_of_tensor(layers, n, rs_model_find(m, "a.factors.2.weight")) == &layers[0],
	      "a factor's layer");
	CHECK(rs_layer_of_tensor(layers, n, rs_model_find(m, "a.bias")) == NULL, "bias has none");

	expected_product(0, arows, acols, 3, want);
	CHECK(rs_layer_load(&layers[0], got, 4, "mem", &err) == RS_OK, "load a: %s", err.msg);
	for (i = 0; i < 4; i++)
		for (j = 0; j < 5; j++)
			CHECK_NEAR(got[i + j * 4], want[i * 5 + j], 1e-12, "a product element");
	expected_product(1, brows, bcols, 2, want);
	{
		size_t lr, lc;
		CHECK(rs_layer_load_for_spectrum(&layers[2], got, &lr, &lc, "mem", &err) == RS_OK &&
		      lr == 6 && lc == 4, "spectrum load of b");
		for (i = 0; i < 6; i++)
			for (j = 0; j < 4; j++)
				CHECK_NEAR(got[i + j * 6], want[i * 4 + j], 1e-12, "b product element");
		CHECK(rs_layer_tensor_index(&layers[2], 5, 3) == 23, "row-major index of the product");
		CHECK(rs_layer_load_tensor(&layers[2], got, "mem", &err) == RS_OK, "tensor load of b");
		for (i = 0; i < 24; i++)
			CHECK_NEAR(got[i], want[i], 1e-12, "b product, row-major");
	}
	free(layers);

	/* filters see the composed name, not the factors' */
	{
		const char *inc[] = {"b.*"};
		rs_layer_filter filter = {.include = inc, .ninclude = 1};
		n = rs_layers_discover(m, &filter, 0, set, &layers);
		CHECK(n == 1 && strcmp(layers[0].name, "b.factors.weight") == 0, "filter by name");
		free(layers);
	}
	/* the cache key follows the factors: one bit of one factor changes it */
	{
		rs_cache_key k1, k2;
		unsigned char *data = (unsigned char *)set->groups[1].factors[1]->data;
		n = rs_layers_discover(m, NULL, 0, set, &layers);
		rs_cache_key_for(&layers[2], RS_SVD_GESDD, &k1);
		data[3] ^= 1;
		rs_cache_key_for(&layers[2], RS_SVD_GESDD, &k2);
		data[3] ^= 1;
		CHECK(memcmp(k1.digest, k2.digest, sizeof k1.digest) != 0, "cache key sees factors");
		rs_cache_key_for(&layers[1], RS_SVD_GESDD, &k2);
		CHECK(memcmp(k1.digest, k2.digest, sizeof k1.digest) != 0, "keys of layers differ");
		free(layers);
	}
	rs_compose_free(set);
	/* no patterns: every factor is its own layer */
	set = rs_compose_new(m, NULL, 0, &err);
	n = rs_layers_discover(m, NULL, 0, set, &layers);
	CHECK(set != NULL && set->ngroups == 0 && n == 6, "no composition: %zu layers", n);
	free(layers);
	rs_compose_free(set);
	rs_model_close(m);
	free(bytes);
}

/* One model per refusal; the message must name the problem. */
static void
refuse(test_st *st, const char *pattern1, const char *pattern2, const char *needle)
{
	unsigned char *bytes;
	rs_model *m = parse(st, &bytes);
	const char *patterns[2] = {pattern1, pattern2};
	rs_error err = {0};
	rs_compose_set *set = rs_compose_new(m, patterns, pattern2 ? 2 : 1, &err);

	CHECK(set == NULL, "'%s' should be refused", pattern1);
	CHECK_CONTAINS(err.msg, needle);
	CHECK_CONTAINS(err.msg, "mem.safetensors");
	rs_compose_free(set);
	rs_model_close(m);
	free(bytes);
}

static void
check_refusals(void)
{
	test_st *st;
	size_t s3[3] = {2, 2, 2};
	double v8[8] = {0};

	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	refuse(st, "x.*.w", NULL, "exactly one '#'");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	refuse(st, "x.#.#", NULL, "exactly one '#'");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	refuse(st, "y.#.w", NULL, "matches no tensor");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	add_factor(st, "x.2.w", 0, 2, 2, 2);
	refuse(st, "x.#.w", NULL, "has no factor 1");
	st = test_st_new();
	add_factor(st, "x.1.w", 0, 1, 2, 2);
	refuse(st, "x.#.w", NULL, "has no factor 0");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	add_factor(st, "x.01.w", 0, 1, 2, 2);
	refuse(st, "x.#.w", NULL, "leading zero");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 3);
	add_factor(st, "x.1.w", 0, 1, 4, 3);
	refuse(st, "x.#.w", NULL, "factor 1 is 4x3 but factor 0 gives 2 rows");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	test_st_add_f32(st, "x.1.w", s3, 3, v8);
	refuse(st, "x.#.w", NULL, "2-D floating-point");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	add_factor(st, "x.1.w", 0, 1, 2, 2);
	refuse(st, "x.#.w", "*.#.w", "matches both compose patterns");
	st = test_st_new();
	add_factor(st, "x.0.w", 0, 0, 2, 2);
	add_factor(st, "x.w", 0, 1, 2, 2);
	refuse(st, "x.#.w", NULL, "would have the name of a tensor");
	st = test_st_new();
	add_factor(st, "x.99.w", 0, 0, 2, 2);
	refuse(st, "x.#.w", NULL, "factor index beyond");

	/* a non-finite factor element fails the load, naming factor and element */
	{
		unsigned char *bytes;
		rs_model *m;
		rs_compose_set *set;
		rs_layer *layers;
		const char *p[] = {"x.#.w"};
		double v[4] = {1, 2, NAN, 4}, out[4];
		size_t sh[2] = {2, 2};
		rs_error err = {0};

		st = test_st_new();
		add_factor(st, "x.0.w", 0, 0, 2, 2);
		test_st_add_f32(st, "x.1.w", sh, 2, v);
		m = parse(st, &bytes);
		set = rs_compose_new(m, p, 1, &err);
		CHECK(set != NULL, "compose: %s", err.msg);
		if (set != NULL) {
			rs_layers_discover(m, NULL, 0, set, &layers);
			CHECK(rs_layer_load(&layers[0], out, 2, "mem", &err) == RS_ENUMERIC,
			      "NaN factor refused");
			CHECK_CONTAINS(err.msg, "element (1, 0) of factor 'x.1.w' is NaN");
			free(layers);
		}
		rs_compose_free(set);
		rs_model_close(m);
		free(bytes);
	}
}

int
main(void)
{
	check_grouping_and_product();
	check_refusals();
	return test_done("test-compose");
}
