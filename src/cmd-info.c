/*
 * cmd-info.c — `rankscope info MODEL`: the layer table with norms, ranks
 * and costs, as an aligned table, CSV or JSON.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/calib.h"
#include "rankscope/spectrum.h"
#include "rankscope/util.h"

/* Everything one row shows, computed once for all three formats. */
typedef struct layer_row {
	const rs_layer *layer;
	const rs_spectrum *spectrum;    /* NULL when the layer failed */
	char shape[64], matrix[48], fold[4];
	double fro, spec, stable, effective;
	size_t r90, r99, r999, breakeven;
	/* with calibration (whiten.h): the whitened ranks keeping 90/99/99.9 %
	 * of the output energy, and the plain truncation at r99 measured in
	 * the output norm (how far the weight-energy advice is from the output) */
	const rs_whiten *whiten;
	bool diagonal;
	size_t o90, o99, o999;
	double out_at_r99;
} layer_row;

static void
format_shape(char *buf, size_t len, const rs_tensor *t)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < t->ndim && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%zu", i ? "x" : "", t->shape[i]);
	if (t->ndim == 0)
		snprintf(buf, len, "scalar");
}

static void
fill_row(layer_row *r, const rs_layer *l, const rs_layer_analysis *a)
{
	const rs_spectrum *s = a->spectrum;

	memset(r, 0, sizeof *r);
	r->layer = l;
	r->spectrum = s;
	format_shape(r->shape, sizeof r->shape, l->tensor);
	snprintf(r->matrix, sizeof r->matrix, "%zux%zu", l->rows, l->cols);
	if (l->fold == RS_FOLD_NONE)
		snprintf(r->fold, sizeof r->fold, "-");
	else
		snprintf(r->fold, sizeof r->fold, "%d", l->fold);
	r->breakeven = rs_lowrank_breakeven(l->rows, l->cols);
	if (s == NULL)
		return;
	r->fro = rs_spectrum_fro_norm(s);
	r->spec = rs_spectrum_spec_norm(s);
	r->stable = rs_spectrum_stable_rank(s);
	r->effective = rs_spectrum_effective_rank(s);
	r->r90 = rs_spectrum_rank_for_energy(s, 0.90);
	r->r99 = rs_spectrum_rank_for_energy(s, 0.99);
	r->r999 = rs_spectrum_rank_for_energy(s, 0.999);
	r->whiten = a->whiten;
	r->diagonal = a->diagonal;
	if (a->whiten == NULL)
		return;
	r->o90 = rs_whiten_rank_for_out_err(a->whiten, sqrt(0.10));
	r->o99 = rs_whiten_rank_for_out_err(a->whiten, sqrt(0.01));
	r->o999 = rs_whiten_rank_for_out_err(a->whiten, sqrt(0.001));
	r->out_at_r99 = rs_whiten_plain_out_err(a->whiten, r->r99);
}

static bool
any_diagonal(const cmd_session *s, const layer_row *rows)
{
	size_t i;

	for (i = 0; i < s->nlayers; i++)
		if (rows[i].whiten && rows[i].diagonal)
			return true;
	return false;
}

static void
print_table(const cmd_session *s, const layer_row *rows)
{
	size_t i, name_w = 5, total = 0;
	char params[32], bytes[32], total_s[32];

	for (i = 0; i < s->nlayers; i++) {
		size_t n = strlen(rows[i].layer->name);
		if (n > name_w)
			name_w = n > 48 ? 48 : n;
	}
	rs_format_bytes(bytes, sizeof bytes, s->model->file_size);
	printf("model %s: %s, %zu tensors, %zu layers; spectra: %zu from cache\n",
	       s->model->path, bytes, s->model->ntensors, s->nlayers,
	       rs_engine_cache_hits(s->engine));
	if (s->calib)
		printf("calibration %s: o90/o99 = whitened ranks keeping 90/99%% of the output "
		       "energy, out@r99 = output error at r99%s\n", s->calib->path,
		       any_diagonal(s, rows) ? " (~: diagonal statistics, an estimate)" : "");
	printf("%-*s %-14s %4s %-11s %8s %9s %9s %7s %7s %5s %5s %6s", (int)name_w,
	       "layer", "shape", "fold", "matrix", "params", "fro_norm", "spec_norm",
	       "stable", "eff", "r90", "r99", "breakeven");
	if (s->calib)
		printf(" %5s %5s %8s", "o90", "o99", "out@r99");
	printf("\n");
	for (i = 0; i < s->nlayers; i++) {
		const layer_row *r = &rows[i];
		size_t p = rs_layer_params(r->layer);

		total += p;
		rs_format_count(params, sizeof params, (double)p);
		printf("%-*.*s %-14s %4s %-11s %8s ", (int)name_w, (int)name_w,
		       r->layer->name, r->shape, r->fold, r->matrix, params);
		if (r->spectrum == NULL) {
			printf("%9s\n", "failed");
			continue;
		}
		printf("%9.4g %9.4g %7.2f %7.1f %5zu %5zu %9zu", r->fro, r->spec,
		       r->stable, r->effective, r->r90, r->r99, r->breakeven);
		if (r->whiten)
			printf(" %5zu %5zu %1s%7.4f", r->o90, r->o99, r->diagonal ? "~" : "",
			       r->out_at_r99);
		else if (s->calib)
			printf(" %5s %5s %8s", "-", "-", "-");
		printf("\n");
	}
	rs_format_count(total_s, sizeof total_s, (double)total);
	rs_format_count(params, sizeof params, (double)rs_model_param_count(s->model));
	printf("total: %s params in %zu layers (model: %s params in %zu tensors)\n",
	       total_s, s->nlayers, params, s->model->ntensors);
}

static void
print_csv(const cmd_session *s, const layer_row *rows)
{
	size_t i;

	printf("layer,shape,fold,rows,cols,params,fro_norm,spec_norm,stable_rank,"
	       "effective_rank,rank_90,rank_99,rank_999,breakeven_rank%s\n",
	       s->calib ? ",calibration,out_rank_90,out_rank_99,out_rank_999,out_err_at_rank_99" :
	       "");
	for (i = 0; i < s->nlayers; i++) {
		const layer_row *r = &rows[i];
		cmd_csv_field(stdout, r->layer->name);
		printf(",%s,%s,%zu,%zu,%zu,", r->shape,
		       r->layer->fold == RS_FOLD_NONE ? "" : r->fold, r->layer->rows,
		       r->layer->cols, rs_layer_params(r->layer));
		if (r->spectrum == NULL)
			printf(",,,,,,,%zu", r->breakeven);
		else
			printf("%.17g,%.17g,%.17g,%.17g,%zu,%zu,%zu,%zu", r->fro, r->spec,
			       r->stable, r->effective, r->r90, r->r99, r->r999,
			       r->breakeven);
		if (r->whiten)
			printf(",%s,%zu,%zu,%zu,%.17g", r->diagonal ? "diag" : "full", r->o90, r->o99,
			       r->o999, r->out_at_r99);
		else if (s->calib)
			printf(",none,,,,");
		printf("\n");
	}
}

static void
print_json(const cmd_session *s, const layer_row *rows)
{
	json_t *root = json_object(), *model = json_object(), *meta = json_object();
	json_t *layers = json_array(), *others = json_array();
	char hex[2 * RS_SHA256_LEN + 1];
	size_t i, total = 0;

	rs_sha256_hex(s->model->header_sha256, hex);
	json_object_set_new(model, "path", json_string(s->model->path));
	json_object_set_new(model, "format", json_string(s->model->format ? s->model->format : "safetensors"));
	json_object_set_new(model, "size", json_integer((json_int_t)s->model->file_size));
	json_object_set_new(model, "header_sha256", json_string(hex));
	json_object_set_new(model, "tensors", json_integer((json_int_t)s->model->ntensors));
	json_object_set_new(model, "params",
	                    json_integer((json_int_t)rs_model_param_count(s->model)));
	for (i = 0; i < s->model->nmetadata; i++)
		json_object_set_new(meta, s->model->metadata[i].key,
		                    json_string(s->model->metadata[i].value));
	json_object_set_new(model, "metadata", meta);
	json_object_set_new(root, "model", model);
	if (s->calib) {
		json_t *c = json_object();

		json_object_set_new(c, "path", json_string(s->calib->path));
		json_object_set_new(c, "sha256", json_string(s->calib->sha256));
		json_object_set_new(root, "calibration", c);
	}

	for (i = 0; i < s->nlayers; i++) {
		const layer_row *r = &rows[i];
		const rs_layer *l = r->layer;
		json_t *o = json_object();

		total += rs_layer_params(l);
		json_object_set_new(o, "name", json_string(l->name));
		json_object_set_new(o, "dtype", json_string(rs_dtype_get(l->tensor->dtype)->name));
		json_object_set_new(o, "shape", cmd_shape_json(l->tensor));
		json_object_set_new(o, "kind", json_string(rs_layer_kind_name(l)));
		json_object_set_new(o, "fold", l->fold == RS_FOLD_NONE ? json_null() : json_integer(l->fold));
		if (l->group != NULL) {
			json_t *names = json_array();
			size_t k;
			for (k = 0; k < l->group->nfactors; k++)
				json_array_append_new(names, json_string(l->group->factors[k]->name));
			json_object_set_new(o, "factors", names);
		}
		json_object_set_new(o, "rows", json_integer((json_int_t)l->rows));
		json_object_set_new(o, "cols", json_integer((json_int_t)l->cols));
		json_object_set_new(o, "params", json_integer((json_int_t)rs_layer_params(l)));
		json_object_set_new(o, "breakeven_rank", json_integer((json_int_t)r->breakeven));
		if (r->spectrum != NULL) {
			json_object_set_new(o, "fro_norm", json_real(r->fro));
			json_object_set_new(o, "spec_norm", json_real(r->spec));
			json_object_set_new(o, "stable_rank", json_real(r->stable));
			json_object_set_new(o, "effective_rank", json_real(r->effective));
			json_object_set_new(o, "rank_90", json_integer((json_int_t)r->r90));
			json_object_set_new(o, "rank_99", json_integer((json_int_t)r->r99));
			json_object_set_new(o, "rank_999", json_integer((json_int_t)r->r999));
		} else {
			json_object_set_new(o, "error", json_string(rs_engine_error(s->engine,
			    (size_t)(l - s->layers))));
		}
		if (r->whiten) {
			json_t *c = json_object();

			json_object_set_new(c, "statistics", json_string(r->diagonal ? "diag" : "full"));
			json_object_set_new(c, "shift", json_real(r->whiten->shift));
			json_object_set_new(c, "out_rank_90", json_integer((json_int_t)r->o90));
			json_object_set_new(c, "out_rank_99", json_integer((json_int_t)r->o99));
			json_object_set_new(c, "out_rank_999", json_integer((json_int_t)r->o999));
			json_object_set_new(c, "out_err_at_rank_99", json_real(r->out_at_r99));
			json_object_set_new(o, "calibration", c);
		} else if (s->calib) {
			json_object_set_new(o, "calibration", json_null());
		}
		cmd_tensor_role_json(o, l->tensor);
		json_object_set_new(o, "groups", l->kind == RS_LAYER_CONV ?
		                    json_integer((json_int_t)l->groups) : json_null());
		json_array_append_new(layers, o);
	}
	json_object_set_new(root, "layers", layers);

	for (i = 0; i < s->model->ntensors; i++) {
		const rs_tensor *t = &s->model->tensors[i];
		const char *why = rs_layer_ineligible_reason(t);
		json_t *o;

		if (why == NULL)
			continue;
		o = json_object();
		json_object_set_new(o, "name", json_string(t->name));
		json_object_set_new(o, "dtype", json_string(rs_dtype_get(t->dtype)->name));
		json_object_set_new(o, "shape", cmd_shape_json(t));
		json_object_set_new(o, "not_a_layer", json_string(why));
		cmd_tensor_role_json(o, t);
		json_array_append_new(others, o);
	}
	json_object_set_new(root, "other_tensors", others);
	json_object_set_new(root, "layer_params", json_integer((json_int_t)total));
	cmd_json_print(root);
	json_decref(root);
}

static int
info_run(const cmd_entry *self, cmd_options *opts)
{
	cmd_session s;
	layer_row *rows;
	size_t i, failed;

	if (!cmd_session_open(&s, opts->args[0], opts))
		return CMD_EXIT_FAILURE;
	rows = rs_xcalloc(s.nlayers ? s.nlayers : 1, sizeof *rows);
	for (i = 0; i < s.nlayers; i++) {
		rs_layer_analysis a = rs_engine_analysis(s.engine, i);

		fill_row(&rows[i], &s.layers[i], &a);
	}
	if (strcmp(opts->format, "csv") == 0)
		print_csv(&s, rows);
	else if (strcmp(opts->format, "json") == 0)
		print_json(&s, rows);
	else
		print_table(&s, rows);
	(void)self;
	fflush(stdout);
	failed = cmd_session_report_failures(&s);
	free(rows);
	cmd_session_close(&s);
	return failed ? CMD_EXIT_FAILURE : CMD_EXIT_OK;
}

static const char *const info_formats[] = {"table", "csv", "json", NULL};

const cmd_entry cmd_info_entry = {
	.name = "info",
	.usage = "MODEL",
	.summary = "Print the model's layers: shape, fold, params, norms, stable and "
	           "effective rank, ranks keeping 90/99% energy, break-even rank.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_FORMAT),
	.formats = info_formats,
	.min_args = 1, .max_args = 1,
	.run = info_run,
};
