/* cmd-output.c — small output helpers shared by the CLI commands. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "rankscope/util.h"

#include "cmd.h"

void
cmd_csv_field(FILE *out, const char *text)
{
	/* RFC 4180: quote only when needed, doubling embedded quotes. */
	if (strpbrk(text, ",\"\r\n") == NULL) {
		fputs(text, out);
		return;
	}
	fputc('"', out);
	for (; *text; text++) {
		if (*text == '"')
			fputc('"', out);
		fputc(*text, out);
	}
	fputc('"', out);
}

json_t *
cmd_shape_json(const rs_tensor *t)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < t->ndim; i++)
		json_array_append_new(a, json_integer((json_int_t)t->shape[i]));
	return a;
}

void
cmd_tensor_role_json(json_t *o, const rs_tensor *t)
{
	json_object_set_new(o, "layout", json_string(rs_tensor_layout_name(t->layout)));
	json_object_set_new(o, "role", json_string(rs_tensor_role_name(t->role)));
	json_object_set_new(o, "groups", t->groups ? json_integer((json_int_t)t->groups) :
	                    json_null());
}

void
cmd_json_print(json_t *root)
{
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	putchar('\n');
}

/* The matrix (and fold) an effective choice factorises: a grouped SVD's
 * own fold, else the layer's. */
static void
figures_matrix(const rs_layer *l, const rs_plan_entry *e, const rs_plan_figures *f,
               size_t *rows, size_t *cols, int *fold)
{
	rs_plan_entry effective = *e;

	if (f->method != e->method)
		effective = rs_plan_entry_dense();
	rs_plan_entry_matrix(l, &effective, rows, cols);
	if (fold != NULL)
		*fold = f->method == RS_METHOD_GROUPED && l->kind == RS_LAYER_CONV ? e->fold : l->fold;
}

void
cmd_print_plan(const rs_layer *layers, size_t nlayers,
               const rs_layer_analysis *analyses, const rs_plan *plan)
{
	size_t i, name_w = 5;
	rs_plan_totals t;
	char before[16], after[16], bbefore[16], bafter[16];
	bool calibrated = false;

	for (i = 0; i < nlayers; i++) {
		if (strlen(layers[i].name) > name_w)
			name_w = strlen(layers[i].name) > 48 ? 48 : strlen(layers[i].name);
		calibrated = calibrated || analyses[i].whiten != NULL;
	}
	printf("%-*s %-11s %-14s %6s %8s %9s%s %8s %9s %7s  %s\n", (int)name_w, "layer", "matrix",
	       "method", "rank", "err_F", "err_2", calibrated ? "  err_out" : "", "params",
	       "size", "ratio", "detail");
	for (i = 0; i < nlayers; i++) {
		const rs_layer *l = &layers[i];
		char matrix[32], params[16], size[16], rank[16], detail[48];
		rs_plan_figures f;

		size_t rows, cols;

		rs_plan_figures_for(l, &analyses[i], &plan->entries[i], &f);
		figures_matrix(l, &plan->entries[i], &f, &rows, &cols, NULL);
		snprintf(matrix, sizeof matrix, "%zux%zu", rows, cols);
		rs_format_count(params, sizeof params, (double)f.params);
		rs_format_bytes(size, sizeof size, (f.bits + 7) / 8);
		if (f.method == RS_METHOD_DENSE || f.method == RS_METHOD_LOWRANK ||
		    f.method == RS_METHOD_LOWRANK_SPARSE || f.method == RS_METHOD_GROUPED ||
		    f.method == RS_METHOD_CP)
			snprintf(rank, sizeof rank, "%zu", f.rank);
		else
			snprintf(rank, sizeof rank, "-");
		rs_plan_describe(&plan->entries[i], &f, detail, sizeof detail);
		/* a spectral error that is only a bound is marked '<=' */
		printf("%-*.*s %-11s %-14s %6s %8.4f %s%7.4f", (int)name_w,
		       (int)name_w, l->name, matrix, rs_method_name(f.method), rank, f.err_fro,
		       f.spec_is_bound ? "<=" : "  ", f.err_spec);
		/* the output error: "~" an estimate (diagonal statistics), "-"
		 * none for this layer or method */
		if (calibrated && isnan(f.out_err))
			printf(" %8s", "-");
		else if (calibrated)
			printf(" %s%7.4f", f.out_is_estimate ? "~" : " ", f.out_err);
		printf(" %8s %9s %6.2fx  %s\n", params, size,
		       (double)rs_layer_dense_bits(l) / (double)f.bits, detail);
	}
	rs_plan_totals_compute(plan, layers, analyses, &t);
	rs_format_count(before, sizeof before, (double)t.params_before);
	rs_format_count(after, sizeof after, (double)t.params_after);
	rs_format_bytes(bbefore, sizeof bbefore, (t.bits_before + 7) / 8);
	rs_format_bytes(bafter, sizeof bafter, (t.bits_after + 7) / 8);
	printf("total: params %s -> %s (%.2fx), storage %s -> %s (%.2fx), flops %zu -> %zu, "
	       "%zu of %zu layers compressed, worst err_2 %.4f%s%s, network bound %.4f\n",
	       before, after, t.ratio, bbefore, bafter, t.bits_ratio, t.flops_before,
	       t.flops_after, t.compressed, t.layers, t.worst_err_spec,
	       t.worst_err_spec > 0 ? " in " : "",
	       t.worst_err_spec > 0 ? layers[t.worst_layer].name : "", t.net_bound);
	if (calibrated) {
		if (isnan(t.worst_out_err))
			printf("output: some compressed layer has no output error (no statistics, or "
			       "not computed for its method)\n");
		else
			printf("output: worst layer output error %.4f on the calibration inputs\n",
			       t.worst_out_err);
	}
}

void
cmd_print_plan_csv(const rs_layer *layers, size_t nlayers,
                   const rs_layer_analysis *analyses, const rs_plan *plan)
{
	size_t i;

	printf("layer,rows,cols,fold,method,rank,sparsity,quantizer,bits,err_fro,err_spec,"
	       "err_spec_is_bound,energy,params,nonzeros,flops,storage_bits,params_dense,"
	       "storage_bits_dense\n");
	for (i = 0; i < nlayers; i++) {
		const rs_layer *l = &layers[i];
		rs_plan_figures f;

		size_t rows, cols;
		int fold;

		rs_plan_figures_for(l, &analyses[i], &plan->entries[i], &f);
		figures_matrix(l, &plan->entries[i], &f, &rows, &cols, &fold);
		cmd_csv_field(stdout, l->name);
		printf(",%zu,%zu,", rows, cols);
		if (fold != RS_FOLD_NONE)
			printf("%d", fold);
		printf(",%s,", rs_method_name(f.method));
		if (f.method == RS_METHOD_LOWRANK || f.method == RS_METHOD_LOWRANK_SPARSE ||
		    f.method == RS_METHOD_GROUPED || f.method == RS_METHOD_CP)
			printf("%zu", f.rank);
		printf(",");
		if (f.method == RS_METHOD_PRUNE || f.method == RS_METHOD_PRUNE_ROWS ||
		    f.method == RS_METHOD_PRUNE_COLS || f.method == RS_METHOD_LOWRANK_SPARSE)
			printf("%.17g", plan->entries[i].sparsity);
		printf(",");
		if (f.method == RS_METHOD_QUANT)
			printf("%s,%u", rs_quantizer_name(plan->entries[i].quantizer),
			       rs_quantizer_bits(plan->entries[i].quantizer, plan->entries[i].bits));
		else
			printf(",");
		printf(",%.17g,%.17g,%d,%.17g,%zu,%zu,%zu,%llu,%zu,%llu\n", f.err_fro, f.err_spec,
		       f.spec_is_bound, f.energy, f.params, f.nonzeros, f.flops,
		       (unsigned long long)f.bits, l->rows * l->cols,
		       (unsigned long long)rs_layer_dense_bits(l));
	}
}
