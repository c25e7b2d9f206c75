/* compose.c — composed layers; see rankscope/compose.h. */
#include "config.h"

#include <cblas.h>
#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/compose.h"
#include "rankscope/guard.h"
#include "rankscope/util.h"

/* Factor indices above this are taken for a typo rather than a model. */
#define MAX_FACTORS 64

/* One tensor that matched a pattern: its group key and factor index. */
typedef struct match {
	const rs_tensor *tensor;
	char *key;                /* the name with the index replaced by '#' */
	long index;
	bool leading_zero;
	size_t pattern;
} match;

/*
 * Whether name matches pattern (prefix '#' suffix): the first maximal run
 * of digits at which the prefix glob matches what comes before and the
 * suffix glob what comes after.  Taking the first such run keeps the
 * grouping deterministic when a pattern could split a name two ways.
 */
static bool
match_name(const char *pattern, const char *name, match *m)
{
	const char *hash = strchr(pattern, '#');
	char *prefix = rs_xstrndup(pattern, (size_t)(hash - pattern));
	const char *suffix = hash + 1;
	size_t len = strlen(name), i, j;
	bool found = false;

	for (i = 0; i < len && !found; i = j > i ? j : i + 1) {
		char *before;
		j = i;
		if (!isdigit((unsigned char)name[i]) || (i > 0 && isdigit((unsigned char)name[i - 1])))
			continue;
		while (j < len && isdigit((unsigned char)name[j]))
			j++;
		before = rs_xstrndup(name, i);
		if (fnmatch(prefix, before, 0) == 0 && fnmatch(suffix, name + j, 0) == 0) {
			found = true;
			m->index = j - i > 6 ? MAX_FACTORS : strtol(name + i, NULL, 10);
			m->leading_zero = name[i] == '0' && j - i > 1;
			m->key = rs_xasprintf("%s#%s", before, name + j);
		}
		free(before);
	}
	free(prefix);
	return found;
}

/* The group key with '#' and one '.' beside it removed. */
static char *
composed_name(const char *key)
{
	const char *hash = strchr(key, '#');
	size_t at = (size_t)(hash - key), cut = 1;

	if (at > 0 && key[at - 1] == '.' && hash[1] == '.')
		cut = 2;                       /* "a.#.b" -> "a.b" */
	else if (at > 0 && key[at - 1] == '.' && hash[1] == '\0')
		at--, cut = 2;                 /* "a.#" -> "a" */
	else if (at == 0 && hash[1] == '.')
		cut = 2;                       /* "#.b" -> "b" */
	return rs_xasprintf("%.*s%s", (int)at, key, key + at + cut);
}

static int
by_key_then_index(const void *pa, const void *pb)
{
	const match *a = pa, *b = pb;
	int c = strcmp(a->key, b->key);

	if (c != 0)
		return c;
	return (a->index > b->index) - (a->index < b->index);
}

static int
by_first_factor(const void *pa, const void *pb)
{
	const rs_compose_group *a = pa, *b = pb;
	const rs_tensor *ta = a->factors[0], *tb = b->factors[0];
	size_t i;

	/* the group's earliest tensor in the file decides its place */
	for (i = 1; i < a->nfactors; i++)
		if (a->factors[i] < ta)
			ta = a->factors[i];
	for (i = 1; i < b->nfactors; i++)
		if (b->factors[i] < tb)
			tb = b->factors[i];
	return (ta > tb) - (ta < tb);
}

static rs_status
check_patterns(const rs_model *model, const char *const *patterns, size_t n, rs_error *err)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *hash = strchr(patterns[i], '#');
		if (hash == NULL || strchr(hash + 1, '#') != NULL)
			return rs_error_set(err, RS_EINVAL,
			    "%s: compose pattern '%s' needs exactly one '#' marking the factor index",
			    model->path, patterns[i]);
	}
	return RS_OK;
}

/* Checks one group's factors (sorted by index) and fills in its product. */
static rs_status
build_group(const rs_model *model, rs_compose_group *g, const match *ms, size_t n,
            const char *pattern, rs_error *err)
{
	size_t k, widest = 0;
	char buf[128];

	g->name = composed_name(ms[0].key);
	g->pattern = pattern;
	g->nfactors = n;
	g->factors = rs_xcalloc(n, sizeof *g->factors);
	for (k = 0; k < n; k++) {
		const rs_tensor *t = ms[k].tensor;
		const rs_dtype_info *di = rs_dtype_get(t->dtype);

		if (ms[k].leading_zero)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: composed layer '%s': factor '%s' has a leading zero in its index",
			    model->path, g->name, rs_printable(buf, sizeof buf, t->name));
		if (ms[k].index != (long)k)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: composed layer '%s' has no factor %zu (factors are numbered from 0 "
			    "without gaps; found %ld next)", model->path, g->name, k, ms[k].index);
		if (!di->is_float || t->ndim != 2 || t->count == 0)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: composed layer '%s': factor '%s' is not a non-empty 2-D "
			    "floating-point tensor", model->path, g->name,
			    rs_printable(buf, sizeof buf, t->name));
		if (k > 0 && t->shape[1] != ms[k - 1].tensor->shape[0])
			return rs_error_set(err, RS_EFORMAT,
			    "%s: composed layer '%s': factor %zu is %zux%zu but factor %zu gives "
			    "%zu rows; W = F_%zu ... F_0 needs them equal", model->path, g->name,
			    k, t->shape[0], t->shape[1], k - 1, ms[k - 1].tensor->shape[0], n - 1);
		if (di->bits > rs_dtype_get(ms[widest].tensor->dtype)->bits)
			widest = k;   /* W is described in the widest factor dtype */
		g->factors[k] = t;
	}
	g->product_shape[0] = g->factors[n - 1]->shape[0];
	g->product_shape[1] = g->factors[0]->shape[1];
	g->product.name = g->name;
	g->product.dtype = g->factors[widest]->dtype;
	g->product.ndim = 2;
	g->product.shape = g->product_shape;
	g->product.count = g->product_shape[0] * g->product_shape[1];
	if (rs_model_find(model, g->name) != NULL)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: composed layer '%s' would have the name of a tensor in the file; "
		    "choose a pattern whose composed name is new", model->path, g->name);
	return RS_OK;
}

rs_compose_set *
rs_compose_new(const rs_model *model, const char *const *patterns, size_t npatterns,
               rs_error *err)
{
	rs_compose_set *set = rs_xcalloc(1, sizeof *set);
	match *ms = rs_xcalloc(model->ntensors + 1, sizeof *ms);
	size_t nm = 0, i, p, start;
	char buf[128];

	set->npatterns = npatterns;
	set->patterns = rs_xcalloc(npatterns + 1, sizeof *set->patterns);
	for (i = 0; i < npatterns; i++)
		set->patterns[i] = rs_xstrdup(patterns[i]);
	if (check_patterns(model, patterns, npatterns, err) != RS_OK)
		goto fail;
	for (p = 0; p < npatterns; p++) {
		size_t found = 0;
		for (i = 0; i < model->ntensors; i++) {
			match m = {.tensor = &model->tensors[i], .pattern = p};
			size_t q;
			if (!match_name(patterns[p], m.tensor->name, &m))
				continue;
			for (q = 0; q < nm; q++)
				if (ms[q].tensor == m.tensor) {
					rs_error_set(err, RS_EINVAL,
					    "%s: tensor '%s' matches both compose patterns '%s' and '%s'",
					    model->path, rs_printable(buf, sizeof buf, m.tensor->name),
					    patterns[ms[q].pattern], patterns[p]);
					free(m.key);
					goto fail;
				}
			if (m.index >= MAX_FACTORS) {
				rs_error_set(err, RS_EFORMAT,
				    "%s: tensor '%s': factor index beyond %d for compose pattern '%s'",
				    model->path, rs_printable(buf, sizeof buf, m.tensor->name),
				    MAX_FACTORS - 1, patterns[p]);
				free(m.key);
				goto fail;
			}
			ms[nm++] = m;
			found++;
		}
		if (found == 0) {
			rs_error_set(err, RS_EINVAL, "%s: compose pattern '%s' matches no tensor",
			             model->path, patterns[p]);
			goto fail;
		}
	}
	qsort(ms, nm, sizeof *ms, by_key_then_index);
	set->groups = rs_xcalloc(nm + 1, sizeof *set->groups);
	for (start = 0; start < nm; start = i) {
		for (i = start; i < nm && strcmp(ms[i].key, ms[start].key) == 0; i++)
			;
		if (build_group(model, &set->groups[set->ngroups++], ms + start, i - start,
		                set->patterns[ms[start].pattern], err) != RS_OK)
			goto fail;
	}
	for (i = 0; i + 1 < set->ngroups; i++)
		for (p = i + 1; p < set->ngroups; p++)
			if (strcmp(set->groups[i].name, set->groups[p].name) == 0) {
				rs_error_set(err, RS_EINVAL,
				    "%s: two factor groups would both be called '%s'",
				    model->path, set->groups[i].name);
				goto fail;
			}
	qsort(set->groups, set->ngroups, sizeof *set->groups, by_first_factor);
	for (i = 0; i < nm; i++)
		free(ms[i].key);
	free(ms);
	return set;
fail:
	for (i = 0; i < nm; i++)
		free(ms[i].key);
	free(ms);
	rs_compose_free(set);
	return NULL;
}

void
rs_compose_free(rs_compose_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->npatterns; i++)
		free(set->patterns[i]);
	free(set->patterns);
	for (i = 0; i < set->ngroups; i++) {
		free(set->groups[i].name);
		free(set->groups[i].factors);
	}
	free(set->groups);
	free(set);
}

const rs_compose_group *
rs_compose_group_of(const rs_compose_set *set, const rs_tensor *tensor)
{
	size_t i, k;

	if (set == NULL)
		return NULL;
	for (i = 0; i < set->ngroups; i++)
		for (k = 0; k < set->groups[i].nfactors; k++)
			if (set->groups[i].factors[k] == tensor)
				return &set->groups[i];
	return NULL;
}

size_t
rs_compose_stored_count(const rs_compose_group *g)
{
	size_t k, total = 0;

	for (k = 0; k < g->nfactors; k++)
		total += g->factors[k]->count;
	return total;
}

typedef struct factor_args {
	const rs_tensor *t;
	double *dst;
} factor_args;

/* Row i of the row-major factor to row i of dst (column-major); reads the
 * map, so it runs under the SIGBUS guard (guard.h). */
static void
convert_factor(void *arg)
{
	const factor_args *a = arg;
	const rs_tensor *t = a->t;
	size_t rows = t->shape[0], cols = t->shape[1];
	size_t rowbytes = rs_dtype_nbytes(t->dtype, cols), i;

	for (i = 0; i < rows; i++)
		rs_dtype_to_double(t->dtype, t->data + i * rowbytes, cols, a->dst + i, rows);
}

/* A factor as a column-major double matrix (row-major tensor read across). */
static rs_status
load_factor(const rs_compose_group *g, size_t k, double *dst, const char *path,
            rs_error *err)
{
	const rs_tensor *t = g->factors[k];
	size_t rows = t->shape[0], cols = t->shape[1], i, j;
	factor_args args = {t, dst};
	char buf[128];
	rs_status st;

	if ((st = rs_guard_run(t->data, t->nbytes, convert_factor, &args, path, t->name,
	                       err)) != RS_OK)
		return st;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++)
			if (!isfinite(dst[i + j * rows]))
				return rs_error_set(err, RS_ENUMERIC,
				    "%s: composed layer '%s': element (%zu, %zu) of factor '%s' is %s; "
				    "spectra need finite weights", path, g->name, i, j,
				    rs_printable(buf, sizeof buf, t->name),
				    isnan(dst[i + j * rows]) ? "NaN" : "infinite");
	return RS_OK;
}

rs_status
rs_compose_product(const rs_compose_group *g, double *dst, size_t ld, const char *path,
                   rs_error *err)
{
	size_t rows = g->product_shape[0], cols = g->product_shape[1];
	size_t k, i, j, cur_rows, size = 0;
	double *acc, *next, *factor;
	rs_status st = RS_OK;

	/* acc holds F_k ... F_0 (rows of F_k x cols), the factor being
	 * multiplied in at most its own count: one size serves all three */
	for (k = 0; k < g->nfactors; k++) {
		size_t t = g->factors[k]->shape[0] * cols;
		if (t > size)
			size = t;
		if (g->factors[k]->count > size)
			size = g->factors[k]->count;
	}
	acc = malloc(size * sizeof *acc);
	next = malloc(size * sizeof *next);
	factor = malloc(size * sizeof *factor);
	if (!acc || !next || !factor) {
		st = rs_error_set(err, RS_ENOMEM, "%s: composed layer '%s': out of memory",
		                  path, g->name);
		goto out;
	}
	if ((st = load_factor(g, 0, acc, path, err)) != RS_OK)
		goto out;
	cur_rows = g->factors[0]->shape[0];
	for (k = 1; k < g->nfactors; k++) {
		size_t r = g->factors[k]->shape[0];
		double *swap;
		if ((st = load_factor(g, k, factor, path, err)) != RS_OK)
			goto out;
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)r,
		            (blasint)cols, (blasint)cur_rows, 1.0, factor, (blasint)r, acc,
		            (blasint)cur_rows, 0.0, next, (blasint)r);
		swap = acc, acc = next, next = swap;
		cur_rows = r;
	}
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double v = acc[i + j * rows];
			if (!isfinite(v)) {
				st = rs_error_set(err, RS_ENUMERIC,
				    "%s: composed layer '%s': the product of its factors overflows "
				    "at element (%zu, %zu)", path, g->name, i, j);
				goto out;
			}
			dst[i + j * ld] = v;
		}
out:
	free(acc);
	free(next);
	free(factor);
	return st;
}
