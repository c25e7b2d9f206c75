/*
 * io-plan.c — plan files; see rankscope/planfile.h and rankscope-plan(5).
 *
 * Output is built with jansson in a fixed key order and 17 significant
 * digits for reals, so the same plan always gives the same bytes (a
 * save-load-save round trip is byte-identical).
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/file.h"
#include "rankscope/calib.h"
#include "rankscope/planfile.h"
#include "rankscope/planrefine.h"
#include "rankscope/plansolve.h"
#include "rankscope/util.h"

/* Plans are small (a few hundred bytes per layer); this bounds hostile input. */
#define PLAN_MAX_BYTES (256u << 20)

void
rs_plan_origin_set(rs_plan_origin *o, const char *strategy,
                   const char *const *params, size_t nparams)
{
	size_t i;

	memset(o, 0, sizeof *o);
	o->strategy = strategy ? rs_xstrdup(strategy) : NULL;
	o->keys = rs_xcalloc(nparams ? nparams : 1, sizeof *o->keys);
	o->values = rs_xcalloc(nparams ? nparams : 1, sizeof *o->values);
	for (i = 0; i < nparams; i++) {
		const char *eq = strchr(params[i], '=');
		if (eq == NULL)
			continue;
		o->keys[o->nparams] = rs_xstrndup(params[i], (size_t)(eq - params[i]));
		o->values[o->nparams] = rs_xstrdup(eq + 1);
		o->nparams++;
	}
}

void
rs_plan_origin_copy(rs_plan_origin *dst, const rs_plan_origin *src)
{
	size_t i;

	rs_plan_origin_set(dst, src->strategy, NULL, 0);
	dst->keys = rs_xreallocarray(dst->keys, src->nparams + 1, sizeof *dst->keys);
	dst->values = rs_xreallocarray(dst->values, src->nparams + 1, sizeof *dst->values);
	for (i = 0; i < src->nparams; i++) {
		dst->keys[i] = rs_xstrdup(src->keys[i]);
		dst->values[i] = rs_xstrdup(src->values[i]);
	}
	dst->nparams = src->nparams;
	dst->calibration_path = src->calibration_path ? rs_xstrdup(src->calibration_path) : NULL;
	dst->calibration_sha256 = src->calibration_sha256 ?
	    rs_xstrdup(src->calibration_sha256) : NULL;
}

void
rs_plan_origin_free(rs_plan_origin *o)
{
	size_t i;

	for (i = 0; i < o->nparams; i++) {
		free(o->keys[i]);
		free(o->values[i]);
	}
	free(o->keys);
	free(o->values);
	free(o->strategy);
	free(o->calibration_path);
	free(o->calibration_sha256);
	memset(o, 0, sizeof *o);
}

/* The plan's "calibration": absent, or {path, sha256} with a hex digest. */
static rs_status
read_calibration(const char *path, json_t *root, rs_plan_origin *origin, rs_error *err)
{
	json_t *c = json_object_get(root, "calibration"), *p, *h;
	size_t i;

	if (c == NULL)
		return RS_OK;
	p = json_object_get(c, "path");
	h = json_object_get(c, "sha256");
	if (!json_is_object(c) || !json_is_string(p) || !json_is_string(h) ||
	    strlen(json_string_value(h)) != 2 * RS_SHA256_LEN)
		return rs_error_set(err, RS_EFORMAT, "%s: calibration must be an object with a "
		                    "path and a 64-digit sha256", path);
	for (i = 0; i < 2 * RS_SHA256_LEN; i++)
		if (!strchr("0123456789abcdef", json_string_value(h)[i]))
			return rs_error_set(err, RS_EFORMAT, "%s: calibration.sha256 is not lower-case "
			                    "hex", path);
	origin->calibration_path = rs_xstrdup(json_string_value(p));
	origin->calibration_sha256 = rs_xstrdup(json_string_value(h));
	return RS_OK;
}

rs_status
rs_plan_check_calibration(const char *plan_path, const rs_plan_origin *origin,
                          const char *sha256, rs_error *err)
{
	char shown[160];

	if (origin->calibration_sha256 == NULL)
		return RS_OK;
	rs_printable(shown, sizeof shown, origin->calibration_path);
	if (sha256 == NULL)
		return rs_error_set(err, RS_EINVAL, "%s: the plan was made in the output norm on "
		                    "the calibration file '%s': open it with --calibration %s",
		                    plan_path, shown, shown);
	if (strcmp(sha256, origin->calibration_sha256) != 0)
		return rs_error_set(err, RS_EINVAL, "%s: the plan was made on the calibration file "
		                    "'%s' (sha256 %.12s...), not on this one (sha256 %.12s...): its "
		                    "output figures would not hold", plan_path, shown,
		                    origin->calibration_sha256, sha256);
	return RS_OK;
}


static json_t *
sizes_json(const size_t *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)v[i]));
	return a;
}

/* A kept layer's bits per weight: its dtype's width, or for a block type
 * (GGUF's Q4_K: 4.5) rounded up; the entry's storage_bits is exact. */
static unsigned
dense_value_bits(rs_dtype dtype)
{
	const rs_dtype_info *d = rs_dtype_get(dtype);

	if (!d->block)
		return d->bits;
	return (unsigned)((rs_dtype_storage_bits(dtype, d->block) + d->block - 1) / d->block);
}

static json_t *
layer_json(const rs_layer *l, const rs_layer_analysis *a, const rs_plan_entry *e)
{
	json_t *o = json_object(), *pred = json_object();
	size_t matrix[2] = {l->rows, l->cols};
	rs_plan_figures f;
	int fold = l->fold;
	bool ranked, sparse, quant;

	rs_plan_figures_for(l, a, e, &f);
	if (f.method == RS_METHOD_GROUPED) {
		/* a grouped SVD factorises the matrix of its own fold */
		rs_plan_entry_matrix(l, e, &matrix[0], &matrix[1]);
		fold = l->kind == RS_LAYER_CONV ? e->fold : RS_FOLD_NONE;
	}
	/* the effective choice (a choice that does not pay is written dense) */
	ranked = f.method == RS_METHOD_LOWRANK || rs_method_has_lowrank_part(f.method) ||
	         f.method == RS_METHOD_GROUPED || f.method == RS_METHOD_CP;
	sparse = f.method == RS_METHOD_PRUNE || f.method == RS_METHOD_PRUNE_ROWS ||
	         f.method == RS_METHOD_PRUNE_COLS || rs_method_is_combination(f.method);
	quant = rs_method_has_quant_part(f.method);
	json_object_set_new(o, "name", json_string(l->name));
	json_object_set_new(o, "shape", sizes_json(l->tensor->shape, l->tensor->ndim));
	json_object_set_new(o, "matrix", sizes_json(matrix, 2));
	json_object_set_new(o, "fold", fold == RS_FOLD_NONE ? json_null() : json_integer(fold));
	if (l->group != NULL) {
		json_t *names = json_array();
		size_t k;
		for (k = 0; k < l->group->nfactors; k++)
			json_array_append_new(names, json_string(l->group->factors[k]->name));
		json_object_set_new(o, "factors", names);
	}
	json_object_set_new(o, "method", json_string(rs_method_name(f.method)));
	json_object_set_new(o, "rank", ranked ? json_integer((json_int_t)f.rank) : json_null());
	json_object_set_new(o, "groups", json_integer(f.method == RS_METHOD_GROUPED ?
	                                             (json_int_t)e->groups : 1));
	if (f.method == RS_METHOD_LOWRANK && e->whitened)
		json_object_set_new(o, "whitened", json_true());
	if (f.method == RS_METHOD_PRUNE && e->scored)
		json_object_set_new(o, "scored", json_true());
	if (e->refined && f.method == e->method) {
		/* predicted.rel_fro and out_err are the refinement's, read back as
		 * recorded (recomputing them means refining) */
		json_t *r = json_object();
		json_object_set_new(r, "sweeps", json_integer((json_int_t)e->refined_sweeps));
		json_object_set_new(o, "refined", r);
	}
	if (f.method == RS_METHOD_TUCKER2) {
		size_t ranks[2] = {e->rank, e->rank_in};
		json_object_set_new(o, "ranks", sizes_json(ranks, 2));
	}
	if (f.method == RS_METHOD_TT) {
		json_t *tt = json_object();
		json_object_set_new(tt, "rows", sizes_json(e->tt_rows, e->tt_d));
		json_object_set_new(tt, "cols", sizes_json(e->tt_cols, e->tt_d));
		json_object_set_new(tt, "ranks", sizes_json(e->tt_ranks, e->tt_d + 1));
		json_object_set_new(o, "tt", tt);
	}
	json_object_set_new(o, "sparsity", json_real(sparse ? e->sparsity : 0.0));
	json_object_set_new(o, "bits", json_integer(quant ?
	                    (json_int_t)rs_quantizer_bits(e->quantizer, e->bits) :
	                    (json_int_t)dense_value_bits(l->tensor->dtype)));
	json_object_set_new(o, "quantizer", quant ? json_string(rs_quantizer_name(e->quantizer)) :
	                    json_null());
	json_object_set_new(pred, "rel_fro", json_real(f.err_fro));
	json_object_set_new(pred, "rel_spec", json_real(f.err_spec));
	json_object_set_new(pred, "rel_spec_is_bound", json_boolean(f.spec_is_bound));
	if (f.method == RS_METHOD_GROUPED)
		json_object_set_new(pred, "rel_spec_alds", json_real(e->solved_alds));
	if (f.method == RS_METHOD_TUCKER2 || f.method == RS_METHOD_TT)
		json_object_set_new(pred, "rel_fro_bound", json_real(e->solved_fro_bound));
	json_object_set_new(pred, "energy", json_real(f.energy));
	if (!isnan(f.out_err)) {
		json_object_set_new(pred, "out_err", json_real(f.out_err));
		if (f.out_is_estimate)
			json_object_set_new(pred, "out_err_is_estimate", json_true());
	}
	json_object_set_new(pred, "params", json_integer((json_int_t)f.params));
	json_object_set_new(pred, "nonzeros", json_integer((json_int_t)f.nonzeros));
	json_object_set_new(pred, "flops", json_integer((json_int_t)f.flops));
	json_object_set_new(pred, "storage_bits", json_integer((json_int_t)f.bits));
	json_object_set_new(o, "predicted", pred);
	/* how the layer was read, so show, apply and the workbench read it the
	 * same way (rs_plan_read_roles) */
	json_object_set_new(o, "kind", json_string(rs_layer_kind_name(l)));
	json_object_set_new(o, "layout", l->kind == RS_LAYER_LINEAR ||
	                    l->kind == RS_LAYER_EMBEDDING ?
	                    json_string(l->transposed ? "in,out" : "out,in") : json_null());
	json_object_set_new(o, "conv_groups", l->kind == RS_LAYER_CONV ?
	                    json_integer((json_int_t)l->groups) : json_null());

	return o;
}

char *
rs_plan_to_json(const rs_model *model, const rs_layer *layers, size_t nlayers,
                const rs_layer_analysis *analyses, const rs_plan *plan,
                const rs_plan_origin *origin, int indent)
{
	json_t *root = json_object(), *m = json_object(), *by = json_object();
	json_t *params = json_object(), *ls = json_array(), *tot = json_object();
	char hex[2 * RS_SHA256_LEN + 1], *text, *out;
	rs_plan_totals t;
	size_t i;

	rs_sha256_hex(model->header_sha256, hex);
	json_object_set_new(root, "format", json_string(RS_PLAN_FORMAT));
	json_object_set_new(root, "version", json_integer(RS_PLAN_VERSION));
	json_object_set_new(m, "path", json_string(model->path));
	json_object_set_new(m, "format", json_string(model->format ? model->format :
	                                             "safetensors"));
	json_object_set_new(m, "size", json_integer((json_int_t)model->file_size));
	json_object_set_new(m, "header_sha256", json_string(hex));
	json_object_set_new(root, "model", m);
	json_object_set_new(by, "tool", json_string("rankscope " PACKAGE_VERSION));
	json_object_set_new(by, "strategy", origin && origin->strategy ?
	                    json_string(origin->strategy) : json_null());
	for (i = 0; origin && i < origin->nparams; i++)
		/* as given: text keeps "0.3" exactly, where a JSON real would
		 * print as 0.29999999999999999 */
		json_object_set_new(params, origin->keys[i], json_string(origin->values[i]));
	json_object_set_new(by, "params", params);
	json_object_set_new(root, "created_by", by);
	if (nlayers > 0 && analyses[0].calib != NULL) {
		/* the inputs the output figures are measured on: a plan made in
		 * the output norm is used with this file only */
		json_t *c = json_object();
		json_object_set_new(c, "path", json_string(analyses[0].calib->path));
		json_object_set_new(c, "sha256", json_string(analyses[0].calib->sha256));
		json_object_set_new(root, "calibration", c);
	}
	if (nlayers > 0 && layers[0].value_dtype_chosen)
		/* --dtype: what the values are costed and written in */
		json_object_set_new(root, "value_dtype",
		                    json_string(rs_dtype_get(layers[0].value_dtype)->name));
	if (model->nsplits > 0) {
		/* the --split rules that made the layers named NAME.PART */
		json_t *splits = json_array();
		for (i = 0; i < model->nsplits; i++)
			json_array_append_new(splits, json_string(model->splits[i]));
		json_object_set_new(root, "split", splits);
	}
	{
		/* the patterns the composed layers came from, each once */
		json_t *patterns = json_array();
		for (i = 0; i < nlayers; i++) {
			size_t j;
			bool seen = layers[i].group == NULL;
			for (j = 0; !seen && j < i; j++)
				seen = layers[j].group != NULL &&
				       strcmp(layers[j].group->pattern, layers[i].group->pattern) == 0;
			if (!seen)
				json_array_append_new(patterns, json_string(layers[i].group->pattern));
		}
		if (json_array_size(patterns) > 0)
			json_object_set_new(root, "compose", patterns);
		else
			json_decref(patterns);
	}
	for (i = 0; i < nlayers; i++)
		json_array_append_new(ls, layer_json(&layers[i], &analyses[i], &plan->entries[i]));
	json_object_set_new(root, "layers", ls);
	rs_plan_totals_compute(plan, layers, analyses, &t);
	json_object_set_new(tot, "params_before", json_integer((json_int_t)t.params_before));
	json_object_set_new(tot, "params_after", json_integer((json_int_t)t.params_after));
	json_object_set_new(tot, "flops_before", json_integer((json_int_t)t.flops_before));
	json_object_set_new(tot, "flops_after", json_integer((json_int_t)t.flops_after));
	json_object_set_new(tot, "bits_before", json_integer((json_int_t)t.bits_before));
	json_object_set_new(tot, "bits_after", json_integer((json_int_t)t.bits_after));
	json_object_set_new(tot, "bits_ratio", json_real(t.bits_ratio));
	json_object_set_new(tot, "ratio", json_real(t.ratio));
	json_object_set_new(tot, "max_rel_spec", json_real(t.worst_err_spec));
	json_object_set_new(tot, "max_rel_fro", json_real(t.worst_err_fro));
	json_object_set_new(tot, "net_bound", json_real(t.net_bound));
	if (nlayers > 0 && analyses[0].calib != NULL)
		json_object_set_new(tot, "max_out_err", isnan(t.worst_out_err) ? json_null() :
		                    json_real(t.worst_out_err));
	json_object_set_new(root, "totals", tot);
	text = json_dumps(root, JSON_INDENT(indent) | JSON_REAL_PRECISION(17) |
	                  (indent ? 0 : JSON_COMPACT));
	json_decref(root);
	if (text == NULL)
		abort();   /* jansson fails only when out of memory */
	out = rs_xasprintf("%s\n", text);
	free(text);
	return out;
}

rs_status
rs_plan_save(const char *path, const rs_model *model, const rs_layer *layers,
             size_t nlayers, const rs_layer_analysis *analyses, const rs_plan *plan,
             const rs_plan_origin *origin, rs_error *err)
{
	char *text = rs_plan_to_json(model, layers, nlayers, analyses, plan, origin, 2);
	rs_status st = rs_file_write_atomic(path, text, strlen(text), true, err);

	free(text);
	return st;
}


/* ---- reading ---- */

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/*
 * Reads path as a plan's JSON: valid JSON (no duplicate keys), an object
 * whose format and version are ours.  *root is the caller's on success.
 */
static rs_status
read_plan_json(const char *path, json_t **root_out, rs_error *err)
{
	unsigned char *bytes;
	size_t len;
	json_error_t jerr;
	json_t *root, *v;
	rs_status st;

	*root_out = NULL;
	st = rs_file_read_all(path, PLAN_MAX_BYTES, &bytes, &len, err);
	if (st != RS_OK)
		return st;
	root = json_loadb((const char *)bytes, len, JSON_REJECT_DUPLICATES, &jerr);
	free(bytes);
	if (root == NULL) {
		char shown[2 * JSON_ERROR_TEXT_LENGTH];
		return rs_error_set(err, RS_EFORMAT, "%s: not valid JSON: %s (line %d, column %d)",
		                    path, rs_escape_controls(shown, sizeof shown, jerr.text),
		                    jerr.line, jerr.column);
	}
	v = json_object_get(root, "format");
	if (!json_is_object(root) || !json_is_string(v) ||
	    strcmp(json_string_value(v), RS_PLAN_FORMAT) != 0)
		st = rs_error_set(err, RS_EFORMAT, "%s: not a rankscope plan (\"format\" must be "
		                  "\"%s\")", path, RS_PLAN_FORMAT);
	else if (!json_is_integer(v = json_object_get(root, "version")))
		st = rs_error_set(err, RS_EFORMAT, "%s: \"version\" must be an integer", path);
	else if (json_integer_value(v) != RS_PLAN_VERSION)
		st = rs_error_set(err, RS_EFORMAT, "%s: plan version %lld is not one this "
		                  "rankscope reads (version %d)", path,
		                  (long long)json_integer_value(v), RS_PLAN_VERSION);
	if (st != RS_OK) {
		json_decref(root);
		return st;
	}
	*root_out = root;
	return RS_OK;
}

/* The plan's "compose" patterns or "split" rules: absent, or an array of
 * strings. */
static rs_status
read_strings(const char *path, json_t *root, const char *key, char ***out, size_t *n,
             rs_error *err)
{
	json_t *c = json_object_get(root, key), *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (c == NULL)
		return RS_OK;
	if (!json_is_array(c))
		return rs_error_set(err, RS_EFORMAT, "%s: \"%s\" must be an array of "
		                    "strings", path, key);
	json_array_foreach(c, i, v)
		if (!json_is_string(v))
			return rs_error_set(err, RS_EFORMAT, "%s: %s[%zu] must be a string, "
			                    "not %s", path, key, i, type_name(v));
	*out = rs_xcalloc(json_array_size(c) + 1, sizeof **out);
	json_array_foreach(c, i, v)
		(*out)[(*n)++] = rs_xstrdup(json_string_value(v));
	return RS_OK;
}

rs_status
rs_plan_read_compose(const char *path, char ***patterns, size_t *npatterns, rs_error *err)
{
	json_t *root;
	rs_status st;

	*patterns = NULL;
	*npatterns = 0;
	if ((st = read_plan_json(path, &root, err)) != RS_OK)
		return st;
	st = read_strings(path, root, "compose", patterns, npatterns, err);
	json_decref(root);
	return st;
}

rs_status
rs_plan_read_value_dtype(const char *path, char **name, rs_error *err)
{
	json_t *root, *v;
	rs_status st = RS_OK;
	rs_dtype d;

	*name = NULL;
	if ((st = read_plan_json(path, &root, err)) != RS_OK)
		return st;
	v = json_object_get(root, "value_dtype");
	if (v != NULL && (!json_is_string(v) || !rs_dtype_parse(json_string_value(v), &d) ||
	                  (d != RS_DTYPE_F16 && d != RS_DTYPE_BF16 && d != RS_DTYPE_F32)))
		st = rs_error_set(err, RS_EFORMAT, "%s: \"value_dtype\" must be \"F16\", \"BF16\" "
		                  "or \"F32\"", path);
	else if (v != NULL)
		*name = rs_xstrdup(json_string_value(v));
	json_decref(root);
	return st;
}

rs_status
rs_plan_read_splits(const char *path, char ***rules, size_t *nrules, rs_error *err)
{
	json_t *root;
	rs_status st;

	*rules = NULL;
	*nrules = 0;
	if ((st = read_plan_json(path, &root, err)) != RS_OK)
		return st;
	st = read_strings(path, root, "split", rules, nrules, err);
	json_decref(root);
	return st;
}

/* A tensor name as an fnmatch pattern matching only itself. */
static char *
exact_pattern(const char *name)
{
	size_t n = strlen(name), i, o = 0;
	char *p = rs_xmalloc(2 * n + 1);

	for (i = 0; i < n; i++) {
		if (strchr("*?[]\\", name[i]) != NULL)
			p[o++] = '\\';
		p[o++] = name[i];
	}
	p[o] = '\0';
	return p;
}

/* Appends "NAME=VALUE" to the rule list. */
static void
push_rule(char ***rules, size_t *n, const char *name, const char *value)
{
	char *pat = exact_pattern(name);

	*rules = rs_xrealloc(*rules, (*n + 2) * sizeof **rules);
	(*rules)[(*n)++] = rs_xasprintf("%s=%s", pat, value);
	(*rules)[*n] = NULL;
	free(pat);
}

rs_status
rs_plan_read_roles(const char *path, char ***layouts, size_t *nlayouts, char ***kinds,
                   size_t *nkinds, rs_error *err)
{
	json_t *root, *ls, *o;
	size_t i;
	rs_status st;

	*layouts = *kinds = NULL;
	*nlayouts = *nkinds = 0;
	if ((st = read_plan_json(path, &root, err)) != RS_OK)
		return st;
	ls = json_object_get(root, "layers");
	json_array_foreach(ls, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		const char *kind = json_string_value(json_object_get(o, "kind"));
		const char *layout = json_string_value(json_object_get(o, "layout"));
		json_t *g = json_object_get(o, "conv_groups");

		if (name == NULL || json_object_get(o, "factors") != NULL)
			continue;
		if (layout != NULL && (strcmp(layout, "in,out") == 0 ||
		                       strcmp(layout, "out,in") == 0))
			push_rule(layouts, nlayouts, name, layout);
		if (kind != NULL && (strcmp(kind, "linear") == 0 || strcmp(kind, "embedding") == 0))
			push_rule(kinds, nkinds, name, kind);
		if (kind != NULL && strcmp(kind, "conv") == 0 && json_is_integer(g) &&
		    json_integer_value(g) >= 1 && json_integer_value(g) <= (1 << 24)) {
			char value[32];
			snprintf(value, sizeof value, "groups:%lld", (long long)json_integer_value(g));
			push_rule(kinds, nkinds, name, value);
		}
	}
	json_decref(root);
	return RS_OK;
}

/* obj.key as a size_t into *out; false when absent or not a non-negative integer. */
static bool
get_size(json_t *obj, const char *key, size_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (size_t)json_integer_value(v);
	return true;
}

/* An array of 1..max non-negative integers into v; its length, 0 if not one. */
static size_t
get_sizes(json_t *a, size_t *v, size_t max)
{
	size_t i;
	json_t *x;

	if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > max)
		return 0;
	json_array_foreach(a, i, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0)
			return 0;
		v[i] = (size_t)json_integer_value(x);
	}
	return json_array_size(a);
}

/* A recorded figure: a finite number >= 0 (NaN when absent and optional). */
static rs_status
get_figure(const char *where, json_t *pred, const char *key, bool required,
           double *out, rs_error *err)
{
	json_t *v = json_object_get(pred, key);

	if (v == NULL && !required) {
		*out = NAN;
		return RS_OK;
	}
	if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
		return rs_error_set(err, RS_EINVAL, "%s: predicted.%s (recorded from the "
		                    "decomposition) must be a number >= 0", where, key);
	*out = json_number_value(v);
	return RS_OK;
}

/*
 * The recorded TT ranks are those the TT-SVD reached, so each is at most
 * what its step can give: min(r_(k-1) m_k n_k, m_(k+1) n_(k+1) ... m_d n_d),
 * the sides of the unfolding it splits.  A larger one would be read, shown
 * with its params, and only refused by apply when the solve reaches less.
 * The modes multiply to the layer's sides (checked before), so no product
 * here overflows.
 */
static rs_status
check_tt_reach(const char *where, const rs_plan_entry *e, rs_error *err)
{
	size_t k, j, rest, reach;

	for (k = 1; k < e->tt_d; k++) {
		for (rest = 1, j = k; j < e->tt_d; j++)
			rest *= e->tt_rows[j] * e->tt_cols[j];
		reach = e->tt_ranks[k - 1] * e->tt_rows[k - 1] * e->tt_cols[k - 1];
		if (rest < reach)
			reach = rest;
		if (e->tt_ranks[k] > reach)
			return rs_error_set(err, RS_EINVAL, "%s: TT rank r_%zu = %zu is more than "
			                    "the TT-SVD can reach (%zu)", where, k, e->tt_ranks[k],
			                    reach);
	}
	return RS_OK;
}

/*
 * A decomposition's parameters (rank, groups, ranks, tt) and its recorded
 * figures: recomputing them would mean solving again, so they are read
 * (as a combination's error is) and checked for range; apply measures.
 */
static rs_status
read_decomposition(const char *where, json_t *o, const rs_layer *l, rs_plan_entry *e,
                   rs_error *err)
{
	json_t *pred = json_object_get(o, "predicted"), *tt;
	size_t ranks[2], n;
	rs_error check;
	rs_status st;

	switch (e->method) {
	case RS_METHOD_GROUPED:
		if (!get_size(o, "rank", &e->rank) || !get_size(o, "groups", &e->groups))
			return rs_error_set(err, RS_EFORMAT, "%s: method 'grouped' needs an integer "
			                    "rank and groups", where);
		break;
	case RS_METHOD_CP:
		if (!get_size(o, "rank", &e->rank))
			return rs_error_set(err, RS_EFORMAT, "%s: method 'cp' needs an integer rank",
			                    where);
		break;
	case RS_METHOD_TUCKER2:
		if (get_sizes(json_object_get(o, "ranks"), ranks, 2) != 2)
			return rs_error_set(err, RS_EFORMAT, "%s: method 'tucker2' needs ranks "
			                    "[r_out, r_in]", where);
		e->rank = ranks[0];
		e->rank_in = ranks[1];
		break;
	default:
		tt = json_object_get(o, "tt");
		e->tt_d = get_sizes(json_object_get(tt, "rows"), e->tt_rows, RS_PLAN_TT_MAX_D);
		n = get_sizes(json_object_get(tt, "cols"), e->tt_cols, RS_PLAN_TT_MAX_D);
		if (e->tt_d < 2 || n != e->tt_d ||
		    get_sizes(json_object_get(tt, "ranks"), e->tt_ranks, RS_PLAN_TT_MAX_D + 1) !=
		    e->tt_d + 1)
			return rs_error_set(err, RS_EFORMAT, "%s: method 'tt' needs tt {rows, cols: "
			    "d >= 2 modes each; ranks: d + 1 values}", where);
		for (n = 0; n <= e->tt_d; n++)
			if (e->tt_ranks[n] < 1 || ((n == 0 || n == e->tt_d) && e->tt_ranks[n] != 1))
				return rs_error_set(err, RS_EINVAL, "%s: TT ranks must be >= 1 and "
				                    "start and end with 1", where);
		break;
	}
	if (rs_plan_entry_check(l, e, &check) != RS_OK)
		return rs_error_set(err, RS_EINVAL, "%s: %s", where, check.msg);
	if (e->method == RS_METHOD_TT && (st = check_tt_reach(where, e, err)) != RS_OK)
		return st;
	if ((st = get_figure(where, pred, "rel_fro", true, &e->solved_error, err)) != RS_OK ||
	    (st = get_figure(where, pred, "rel_spec", true, &e->solved_spec, err)) != RS_OK ||
	    (st = get_figure(where, pred, "rel_fro_bound", e->method == RS_METHOD_TUCKER2 ||
	                     e->method == RS_METHOD_TT, &e->solved_fro_bound, err)) != RS_OK ||
	    (st = get_figure(where, pred, "rel_spec_alds", e->method == RS_METHOD_GROUPED,
	                     &e->solved_alds, err)) != RS_OK)
		return st;
	return RS_OK;
}

/* Checks one layer entry against the model's layer; fills the entry. */
static rs_status
read_layer(const char *path, const char *model_path, size_t index, json_t *o,
           const rs_layer *l, rs_plan_entry *e, rs_error *err)
{
	json_t *v;
	const char *method;
	size_t k = l->rows < l->cols ? l->rows : l->cols, d, rows, cols;
	char where[160];

	snprintf(where, sizeof where, "%s: layers[%zu] ('%s')", path, index, l->name);
	v = json_object_get(o, "method");
	if (!json_is_string(v))
		return rs_error_set(err, RS_EFORMAT, "%s: method must be a string, not %s",
		                    where, v ? type_name(v) : "missing");
	method = json_string_value(v);
	*e = rs_plan_entry_dense();
	if (!rs_method_parse(method, &e->method))
		return rs_error_set(err, RS_EINVAL, "%s: unknown method '%s' (known: dense, "
		                    "lowrank, prune, prune-rows, prune-cols, quant, lowrank+sparse, "
		                    "grouped, tucker2, cp, tt, quant+sparse, lowrank+sparse+quant)",
		                    where, method);
	v = json_object_get(o, "fold");
	if (e->method == RS_METHOD_GROUPED && l->kind == RS_LAYER_CONV) {
		/* a grouped SVD names its own fold, which may not be the session's */
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) >= RS_FOLD_COUNT)
			return rs_error_set(err, RS_EINVAL, "%s: a grouped SVD of a kernel needs "
			                    "fold 0..%d", where, RS_FOLD_COUNT - 1);
		e->fold = (int)json_integer_value(v);
	} else if (v != NULL && l->fold == RS_FOLD_NONE && !json_is_null(v)) {
		return rs_error_set(err, RS_EINVAL, "%s: the plan gives a fold, but the layer is "
		                    "a %s layer (its fold must be null)", where, rs_layer_kind_name(l));
	} else if (v != NULL && l->fold != RS_FOLD_NONE &&
	           !(json_is_integer(v) && json_integer_value(v) == l->fold)) {
		return rs_error_set(err, RS_EINVAL, "%s: fold %s in the plan, but the layer is "
		    "opened with fold %d (use --fold)", where, json_is_integer(v) ? "differs" :
		    "is not a scheme number", l->fold);
	}
	rs_plan_entry_matrix(l, e, &rows, &cols);
	v = json_object_get(o, "matrix");
	if (v != NULL) {
		if (!json_is_array(v) || json_array_size(v) != 2 ||
		    !json_is_integer(json_array_get(v, 0)) || !json_is_integer(json_array_get(v, 1)))
			return rs_error_set(err, RS_EFORMAT, "%s: matrix must be [rows, cols]", where);
		if ((size_t)json_integer_value(json_array_get(v, 0)) != rows ||
		    (size_t)json_integer_value(json_array_get(v, 1)) != cols)
			return rs_error_set(err, RS_EINVAL, "%s: the plan's matrix is %lldx%lld but "
			    "the layer is %zux%zu in %s", where,
			    (long long)json_integer_value(json_array_get(v, 0)),
			    (long long)json_integer_value(json_array_get(v, 1)), rows, cols,
			    model_path);
	}
	v = json_object_get(o, "shape");
	if (v != NULL) {
		bool same = json_is_array(v) && json_array_size(v) == l->tensor->ndim;
		for (d = 0; same && d < l->tensor->ndim; d++)
			same = json_is_integer(json_array_get(v, d)) &&
			       (size_t)json_integer_value(json_array_get(v, d)) == l->tensor->shape[d];
		if (!same)
			return rs_error_set(err, RS_EINVAL, "%s: the plan's tensor shape differs "
			                    "from the tensor in %s", where, model_path);
	}
	v = json_object_get(o, "factors");
	if (v != NULL || l->group != NULL) {
		bool same = json_is_array(v) && l->group != NULL &&
		            json_array_size(v) == l->group->nfactors;
		for (d = 0; same && d < l->group->nfactors; d++)
			same = json_is_string(json_array_get(v, d)) &&
			       strcmp(json_string_value(json_array_get(v, d)),
			              l->group->factors[d]->name) == 0;
		if (!same)
			return rs_error_set(err, RS_EINVAL, "%s: the plan's factors (in order, "
			    "factor 0 first) differ from the layer's in %s", where, model_path);
	}
	if (e->method == RS_METHOD_LOWRANK || rs_method_has_lowrank_part(e->method)) {
		json_int_t r;
		v = json_object_get(o, "rank");
		if (!json_is_integer(v))
			return rs_error_set(err, RS_EFORMAT, "%s: rank must be an integer, not %s",
			                    where, v ? type_name(v) : "missing");
		r = json_integer_value(v);
		if (r < 1 || (size_t)r >= k)
			return rs_error_set(err, RS_EINVAL, "%s: rank %lld out of range 1..%zu",
			                    where, (long long)r, k - 1);
		if (e->method == RS_METHOD_LOWRANK && !rs_lowrank_pays(l->rows, l->cols, (size_t)r))
			return rs_error_set(err, RS_EINVAL, "%s: rank %lld costs at least as much as "
			    "the dense layer (break-even %zu)", where, (long long)r,
			    rs_lowrank_breakeven(l->rows, l->cols));
		e->rank = (size_t)r;
	}
	v = json_object_get(o, "whitened");
	if (v != NULL) {
		if (!json_is_boolean(v) || (json_is_true(v) && e->method != RS_METHOD_LOWRANK))
			return rs_error_set(err, RS_EINVAL, "%s: whitened must be true or false, and "
			                    "true only for method lowrank", where);
		e->whitened = json_is_true(v);
	}
	v = json_object_get(o, "refined");
	if (v != NULL) {
		json_t *sw = json_object_get(v, "sweeps"), *pred = json_object_get(o, "predicted");
		json_t *po = json_object_get(pred, "out_err"), *pf = json_object_get(pred, "rel_fro");

		if (!json_is_object(v) || !rs_method_refinable(e->method) || !json_is_integer(sw) ||
		    json_integer_value(sw) < 1 || json_integer_value(sw) > RS_REFINE_MAX_SWEEPS)
			return rs_error_set(err, RS_EINVAL, "%s: refined must be {\"sweeps\": 1..%d} on "
			                    "a " RS_REFINABLE_METHODS " layer", where,
			                    RS_REFINE_MAX_SWEEPS);
		if (!json_is_number(po) || json_number_value(po) < 0 || !json_is_number(pf) ||
		    json_number_value(pf) < 0)
			return rs_error_set(err, RS_EINVAL, "%s: a refined layer needs predicted.out_err "
			                    "and predicted.rel_fro (the refinement's) as numbers >= 0",
			                    where);
		e->refined = true;
		e->refined_sweeps = (size_t)json_integer_value(sw);
		e->refined_out = json_number_value(po);
		e->refined_fro = json_number_value(pf);
	}
	v = json_object_get(o, "scored");
	if (v != NULL) {
		if (!json_is_boolean(v) || (json_is_true(v) && e->method != RS_METHOD_PRUNE))
			return rs_error_set(err, RS_EINVAL, "%s: scored must be true or false, and "
			                    "true only for method prune", where);
		e->scored = json_is_true(v);
	}
	if (e->method == RS_METHOD_PRUNE || e->method == RS_METHOD_PRUNE_ROWS ||
	    e->method == RS_METHOD_PRUNE_COLS || rs_method_is_combination(e->method)) {
		v = json_object_get(o, "sparsity");
		if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) >= 1)
			return rs_error_set(err, RS_EINVAL, "%s: sparsity must be a number in [0, 1) "
			                    "for method '%s'", where, method);
		e->sparsity = json_number_value(v);
	}
	if (rs_method_has_quant_part(e->method)) {
		json_t *q = json_object_get(o, "quantizer");
		v = json_object_get(o, "bits");
		if (!json_is_string(q) || !rs_quantizer_parse(json_string_value(q), &e->quantizer))
			return rs_error_set(err, RS_EINVAL, "%s: quantizer must be one of "
			                    "uniform-tensor, uniform-channel, kmeans, binary, ternary", where);
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > RS_QUANT_CURVE_BITS)
			return rs_error_set(err, RS_EINVAL, "%s: bits must be an integer 1..%d for "
			                    "method '%s'", where, RS_QUANT_CURVE_BITS, method);
		e->bits = (unsigned)json_integer_value(v);
	}
	if (rs_method_is_combination(e->method)) {
		/* the solve's error: recorded, since recomputing it means solving */
		v = json_object_get(json_object_get(o, "predicted"), "rel_fro");
		if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
			return rs_error_set(err, RS_EINVAL, "%s: predicted.rel_fro (the solve's "
			                    "error) must be a number in [0, 1]", where);
		e->solved_error = json_number_value(v);
	}
	if (rs_method_is_solved(e->method)) {
		/* measured on the parts when the plan was made with calibration */
		rs_status fst = get_figure(where, json_object_get(o, "predicted"), "out_err", false,
		                           &e->solved_out, err);
		if (fst != RS_OK)
			return fst;
	}
	v = json_object_get(o, "groups");
	if (e->method != RS_METHOD_GROUPED && v != NULL &&
	    !(json_is_integer(v) && json_integer_value(v) == 1))
		return rs_error_set(err, RS_EINVAL, "%s: groups other than 1 belong to method "
		                    "'grouped'", where);
	if (rs_method_is_decomposition(e->method))
		return read_decomposition(where, o, l, e, err);
	return RS_OK;
}

static rs_status
read_origin(const char *path, json_t *root, rs_plan_origin *origin, rs_error *err)
{
	json_t *by = json_object_get(root, "created_by"), *s, *params, *v;
	const char *key;
	size_t n = 0;

	memset(origin, 0, sizeof *origin);
	if (by == NULL)
		return RS_OK;
	if (!json_is_object(by))
		return rs_error_set(err, RS_EFORMAT, "%s: created_by must be an object", path);
	s = json_object_get(by, "strategy");
	if (s != NULL && !json_is_null(s) && !json_is_string(s))
		return rs_error_set(err, RS_EFORMAT, "%s: created_by.strategy must be a string "
		                    "or null", path);
	params = json_object_get(by, "params");
	if (params != NULL && !json_is_object(params))
		return rs_error_set(err, RS_EFORMAT, "%s: created_by.params must be an object", path);
	origin->strategy = json_is_string(s) ? rs_xstrdup(json_string_value(s)) : NULL;
	n = params ? json_object_size(params) : 0;
	origin->keys = rs_xcalloc(n ? n : 1, sizeof *origin->keys);
	origin->values = rs_xcalloc(n ? n : 1, sizeof *origin->values);
	if (params == NULL)
		return RS_OK;
	json_object_foreach(params, key, v) {
		char *text;
		if (json_is_string(v))
			text = rs_xstrdup(json_string_value(v));
		else if (json_is_number(v) || json_is_boolean(v))
			text = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
		else
			return rs_error_set(err, RS_EFORMAT, "%s: created_by.params.%s must be a "
			                    "string, number or boolean", path, key);
		origin->keys[origin->nparams] = rs_xstrdup(key);
		origin->values[origin->nparams] = text;
		origin->nparams++;
	}
	return RS_OK;
}

rs_status
rs_plan_load(const char *path, const rs_model *model, const rs_layer *layers,
             size_t nlayers, rs_plan *plan, rs_plan_origin *origin, rs_error *err)
{
	size_t i, j;
	json_t *root = NULL, *v, *ls;
	rs_plan_origin ignored;
	rs_status st;

	rs_plan_init(plan, nlayers);
	if (origin == NULL)
		origin = &ignored;
	memset(origin, 0, sizeof *origin);
	if ((st = read_plan_json(path, &root, err)) != RS_OK)
		goto fail;
	ls = json_object_get(root, "layers");
	if (!json_is_array(ls)) {
		st = rs_error_set(err, RS_EFORMAT, "%s: \"layers\" must be an array", path);
		goto fail;
	}
	/* Every plan layer must be a model layer, in any order ... */
	{
		bool *seen = rs_xcalloc(nlayers ? nlayers : 1, sizeof *seen);
		json_array_foreach(ls, i, v) {
			json_t *name = json_object_get(v, "name");
			if (!json_is_object(v) || !json_is_string(name)) {
				st = rs_error_set(err, RS_EFORMAT, "%s: layers[%zu] must be an object "
				                  "with a \"name\" string", path, i);
				break;
			}
			for (j = 0; j < nlayers; j++)
				if (strcmp(layers[j].name, json_string_value(name)) == 0)
					break;
			if (j == nlayers) {
				st = rs_error_set(err, RS_EINVAL, "%s: layer '%s' is not a layer of %s%s",
				                  path, json_string_value(name), model->path,
				                  json_object_get(v, "factors") ? " (the plan composes it "
				                  "from factors: open the model with the plan's --compose "
				                  "patterns)" : "");
				break;
			}
			if (seen[j]) {
				st = rs_error_set(err, RS_EFORMAT, "%s: layer '%s' appears twice",
				                  path, layers[j].name);
				break;
			}
			seen[j] = true;
			st = read_layer(path, model->path, i, v, &layers[j], &plan->entries[j], err);
			if (st != RS_OK)
				break;
		}
		/* ... and every model layer must have an entry. */
		for (j = 0; st == RS_OK && j < nlayers; j++)
			if (!seen[j])
				st = rs_error_set(err, RS_EINVAL, "%s: layer '%s' of %s has no entry "
				                  "in the plan", path, layers[j].name, model->path);
		free(seen);
		if (st != RS_OK)
			goto fail;
	}
	st = read_origin(path, root, origin, err);
	if (st == RS_OK)
		st = read_calibration(path, root, origin, err);
	if (st != RS_OK)
		goto fail;
	if (origin == &ignored)
		rs_plan_origin_free(&ignored);
	json_decref(root);
	return RS_OK;
fail:
	json_decref(root);
	rs_plan_origin_free(origin);
	rs_plan_free(plan);
	return st;
}

/* ---- summaries ---- */

void
rs_plan_summary_free(rs_plan_summary *s)
{
	size_t i;

	for (i = 0; i < s->nlayers; i++) {
		free(s->layers[i].name);
		free(s->layers[i].method);
	}
	free(s->layers);
	free(s->model_path);
	free(s->header_sha256);
	free(s->strategy);
	memset(s, 0, sizeof *s);
}

/* obj.key as a number (integer or real); false when absent or not one. */
static bool
get_number(json_t *obj, const char *key, double *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

/* A count (parameters) from a number a file gave: whole, finite and in
 * 0..2^53, where a double holds every integer exactly (and far below
 * LLONG_MAX, so the conversion is defined). */
static bool
get_count(json_t *obj, const char *key, long long *out)
{
	double d;

	if (!get_number(obj, key, &d) || !(d >= 0 && d <= 9007199254740992.0) || d != floor(d))
		return false;
	*out = (long long)d;
	return true;
}

rs_status
rs_plan_summary_read(const char *path, rs_plan_summary *out, rs_error *err)
{
	size_t i;
	json_t *root, *v, *ls, *model, *totals;
	rs_status st;

	memset(out, 0, sizeof *out);
	if ((st = read_plan_json(path, &root, err)) != RS_OK)
		return st;
	model = json_object_get(root, "model");
	if (json_is_object(model)) {
		if (json_is_string(json_object_get(model, "path")))
			out->model_path = rs_xstrdup(json_string_value(json_object_get(model, "path")));
		if (json_is_string(json_object_get(model, "header_sha256")))
			out->header_sha256 = rs_xstrdup(json_string_value(
			    json_object_get(model, "header_sha256")));
	}
	v = json_object_get(json_object_get(root, "created_by"), "strategy");
	if (json_is_string(v))
		out->strategy = rs_xstrdup(json_string_value(v));
	ls = json_object_get(root, "layers");
	if (!json_is_array(ls)) {
		st = rs_error_set(err, RS_EFORMAT, "%s: \"layers\" must be an array", path);
		goto out;
	}
	out->layers = rs_xcalloc(json_array_size(ls) + 1, sizeof *out->layers);
	json_array_foreach(ls, i, v) {
		rs_plan_summary_layer *l = &out->layers[out->nlayers];
		json_t *name = json_object_get(v, "name"), *method = json_object_get(v, "method");
		json_t *rank = json_object_get(v, "rank"), *pred = json_object_get(v, "predicted");

		if (!json_is_string(name) || !json_is_string(method) || !json_is_object(pred) ||
		    !get_number(pred, "rel_fro", &l->rel_fro) ||
		    !get_number(pred, "rel_spec", &l->rel_spec) ||
		    !json_is_number(json_object_get(pred, "params")) ||
		    !(json_is_integer(rank) || json_is_null(rank))) {
			st = rs_error_set(err, RS_EFORMAT, "%s: layers[%zu] needs name, method, rank "
			                  "and predicted {rel_fro, rel_spec, params}", path, i);
			goto out;
		}
		if (!get_count(pred, "params", &l->params)) {
			st = rs_error_set(err, RS_EFORMAT, "%s: layers[%zu].predicted.params must be a "
			                  "whole number from 0 to 2^53, not %g", path, i,
			                  json_number_value(json_object_get(pred, "params")));
			goto out;
		}
		l->name = rs_xstrdup(json_string_value(name));
		l->method = rs_xstrdup(json_string_value(method));
		{
			/* what else distinguishes two choices of one method */
			json_t *sp = json_object_get(v, "sparsity"), *q = json_object_get(v, "quantizer");
			json_t *b = json_object_get(v, "bits");
			if (json_is_string(q) && json_is_integer(b))
				snprintf(l->detail, sizeof l->detail, "%s/%lldb", json_string_value(q),
				         (long long)json_integer_value(b));
			else if (json_is_number(sp) && json_number_value(sp) > 0)
				snprintf(l->detail, sizeof l->detail, "p=%.4g", json_number_value(sp));
		}
		l->rank = json_is_integer(rank) ? json_integer_value(rank) : -1;
		out->nlayers++;
	}
	totals = json_object_get(root, "totals");
	if (!json_is_object(totals) || !get_number(totals, "ratio", &out->ratio) ||
	    !get_number(totals, "max_rel_spec", &out->max_rel_spec) ||
	    !json_is_number(json_object_get(totals, "params_before")) ||
	    !json_is_number(json_object_get(totals, "params_after"))) {
		st = rs_error_set(err, RS_EFORMAT, "%s: \"totals\" needs params_before, "
		                  "params_after, ratio and max_rel_spec", path);
		goto out;
	}
	if (!get_count(totals, "params_before", &out->params_before) ||
	    !get_count(totals, "params_after", &out->params_after)) {
		const char *key = get_count(totals, "params_before", &out->params_before) ?
		                  "params_after" : "params_before";
		st = rs_error_set(err, RS_EFORMAT, "%s: totals.%s must be a whole number from 0 "
		                  "to 2^53, not %g", path, key,
		                  json_number_value(json_object_get(totals, key)));
		goto out;
	}
out:
	json_decref(root);
	if (st != RS_OK)
		rs_plan_summary_free(out);
	return st;
}
