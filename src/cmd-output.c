/* cmd-output.c — small output helpers shared by the CLI commands. */
#include "config.h"

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
cmd_json_print(json_t *root)
{
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	putchar('\n');
}

void
cmd_print_plan(const rs_layer *layers, size_t nlayers,
               const rs_spectrum *const *spectra, const rs_plan *plan)
{
	size_t i, name_w = 5;
	rs_plan_totals t;
	char before[16], after[16];

	for (i = 0; i < nlayers; i++)
		if (strlen(layers[i].name) > name_w)
			name_w = strlen(layers[i].name) > 48 ? 48 : strlen(layers[i].name);
	printf("%-*s %-11s %-8s %6s %8s %8s %8s %7s\n", (int)name_w, "layer", "matrix",
	       "method", "rank", "err_F", "err_2", "params", "ratio");
	for (i = 0; i < nlayers; i++) {
		const rs_layer *l = &layers[i];
		char matrix[32], params[16];
		rs_plan_figures f;

		rs_plan_figures_for(l, spectra[i], &plan->entries[i], &f);
		snprintf(matrix, sizeof matrix, "%zux%zu", l->rows, l->cols);
		rs_format_count(params, sizeof params, (double)f.params);
		printf("%-*.*s %-11s %-8s %6zu %8.4f %8.4f %8s %6.2fx\n", (int)name_w,
		       (int)name_w, l->name, matrix, rs_method_name(f.method), f.rank,
		       f.err_fro, f.err_spec, params, (double)(l->rows * l->cols) / (double)f.params);
	}
	rs_plan_totals_compute(plan, layers, spectra, &t);
	rs_format_count(before, sizeof before, (double)t.params_before);
	rs_format_count(after, sizeof after, (double)t.params_after);
	printf("total: params %s -> %s (%.2fx), flops %zu -> %zu, %zu of %zu layers "
	       "factorised, worst err_2 %.4f%s%s, network bound %.4f\n", before, after,
	       t.ratio, t.flops_before, t.flops_after, t.compressed, t.layers,
	       t.worst_err_spec, t.worst_err_spec > 0 ? " in " : "",
	       t.worst_err_spec > 0 ? layers[t.worst_layer].name : "", t.net_bound);
}

void
cmd_print_plan_csv(const rs_layer *layers, size_t nlayers,
                   const rs_spectrum *const *spectra, const rs_plan *plan)
{
	size_t i;

	printf("layer,rows,cols,fold,method,rank,err_fro,err_spec,energy,params,flops,"
	       "params_dense\n");
	for (i = 0; i < nlayers; i++) {
		const rs_layer *l = &layers[i];
		rs_plan_figures f;

		rs_plan_figures_for(l, spectra[i], &plan->entries[i], &f);
		cmd_csv_field(stdout, l->name);
		printf(",%zu,%zu,", l->rows, l->cols);
		if (l->fold != RS_FOLD_NONE)
			printf("%d", l->fold);
		printf(",%s,", rs_method_name(f.method));
		if (f.method == RS_METHOD_LOWRANK)
			printf("%zu", f.rank);
		printf(",%.17g,%.17g,%.17g,%zu,%zu,%zu\n", f.err_fro, f.err_spec, f.energy,
		       f.params, f.flops, l->rows * l->cols);
	}
}
