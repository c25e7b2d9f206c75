/*
 * cmd-spectra.c — `rankscope spectra MODEL`: every layer's singular values
 * and its truncation error curves, machine-readable, for plotting elsewhere.
 *
 * CSV: one row per (layer, rank r = 1..k): sigma_r and the figures of the
 * rank-r truncation.  JSON: per layer, sigma[0..k-1] and the curves indexed
 * by rank 0..k.  With --calibration, the output-norm curves of whiten.h
 * too: the plain truncation's output error, and the whitened truncation's
 * singular values (of W L), output error and weight error.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/spectrum.h"

static void
print_csv(const cmd_session *s)
{
	size_t i, r;

	printf("layer,rank,sigma,energy,err_fro,err_spec,params,flops%s\n",
	       s->calib ? ",out_err,whitened_sigma,whitened_out_err,whitened_err_fro" : "");
	for (i = 0; i < s->nlayers; i++) {
		rs_layer_analysis a = rs_engine_analysis(s->engine, i);
		const rs_spectrum *sp = a.spectrum;
		const rs_layer *l = &s->layers[i];

		for (r = 1; sp != NULL && r <= sp->k; r++) {
			cmd_csv_field(stdout, l->name);
			printf(",%zu,%.17g,%.17g,%.17g,%.17g,%zu,%zu", r, sp->sigma[r - 1],
			       rs_spectrum_energy(sp, r), rs_spectrum_err_fro(sp, r),
			       rs_spectrum_err_spec(sp, r),
			       rs_lowrank_params(l->rows, l->cols, r),
			       rs_lowrank_flops(l->rows, l->cols, r));
			if (a.whiten)
				printf(",%.17g,%.17g,%.17g,%.17g", rs_whiten_plain_out_err(a.whiten, r),
				       a.whiten->sigma[r - 1], rs_whiten_out_err(a.whiten, r),
				       rs_whiten_fro_err(a.whiten, r));
			else if (s->calib)
				printf(",,,,");
			printf("\n");
		}
	}
}

static json_t *
curve(const rs_spectrum *sp, double (*query)(const rs_spectrum *, size_t))
{
	json_t *a = json_array();
	size_t r;

	for (r = 0; r <= sp->k; r++)
		json_array_append_new(a, json_real(query(sp, r)));
	return a;
}

static json_t *
whiten_curve(const rs_whiten *wh, double (*query)(const rs_whiten *, size_t))
{
	json_t *a = json_array();
	size_t r;

	for (r = 0; r <= wh->k; r++)
		json_array_append_new(a, json_real(query(wh, r)));
	return a;
}

static json_t *
whiten_json(const rs_layer_analysis *a)
{
	json_t *o = json_object(), *sigma = json_array();
	size_t r;

	json_object_set_new(o, "statistics", json_string(a->diagonal ? "diag" : "full"));
	json_object_set_new(o, "shift", json_real(a->whiten->shift));
	json_object_set_new(o, "out_err", whiten_curve(a->whiten, rs_whiten_plain_out_err));
	for (r = 0; r < a->whiten->k; r++)
		json_array_append_new(sigma, json_real(a->whiten->sigma[r]));
	json_object_set_new(o, "whitened_sigma", sigma);
	json_object_set_new(o, "whitened_out_err", whiten_curve(a->whiten, rs_whiten_out_err));
	json_object_set_new(o, "whitened_err_fro", whiten_curve(a->whiten, rs_whiten_fro_err));
	return o;
}

static void
print_json(const cmd_session *s)
{
	json_t *root = json_object(), *layers = json_array();
	size_t i, r;

	json_object_set_new(root, "model", json_string(s->model->path));
	for (i = 0; i < s->nlayers; i++) {
		rs_layer_analysis a = rs_engine_analysis(s->engine, i);
		const rs_spectrum *sp = a.spectrum;
		const rs_layer *l = &s->layers[i];
		json_t *o = json_object(), *sigma;

		if (sp == NULL)
			continue;
		json_object_set_new(o, "name", json_string(l->name));
		json_object_set_new(o, "shape", cmd_shape_json(l->tensor));
		json_object_set_new(o, "fold", l->fold == RS_FOLD_NONE ? json_null() :
		                    json_integer(l->fold));
		json_object_set_new(o, "rows", json_integer((json_int_t)l->rows));
		json_object_set_new(o, "cols", json_integer((json_int_t)l->cols));
		json_object_set_new(o, "method", json_string(
		    rs_svd_method_name(rs_engine_method(s->engine, i))));
		json_object_set_new(o, "breakeven_rank",
		    json_integer((json_int_t)rs_lowrank_breakeven(l->rows, l->cols)));
		sigma = json_array();
		for (r = 0; r < sp->k; r++)
			json_array_append_new(sigma, json_real(sp->sigma[r]));
		json_object_set_new(o, "sigma", sigma);
		json_object_set_new(o, "energy", curve(sp, rs_spectrum_energy));
		json_object_set_new(o, "err_fro", curve(sp, rs_spectrum_err_fro));
		json_object_set_new(o, "err_spec", curve(sp, rs_spectrum_err_spec));
		if (a.whiten)
			json_object_set_new(o, "calibration", whiten_json(&a));
		else if (s->calib)
			json_object_set_new(o, "calibration", json_null());
		json_array_append_new(layers, o);
	}
	json_object_set_new(root, "layers", layers);
	cmd_json_print(root);
	json_decref(root);
}

static int
spectra_run(const cmd_entry *self, cmd_options *opts)
{
	cmd_session s;
	size_t failed;

	(void)self;
	if (!cmd_session_open(&s, opts->args[0], opts))
		return CMD_EXIT_FAILURE;
	if (strcmp(opts->format, "json") == 0)
		print_json(&s);
	else
		print_csv(&s);
	fflush(stdout);
	failed = cmd_session_report_failures(&s);
	cmd_session_close(&s);
	return failed ? CMD_EXIT_FAILURE : CMD_EXIT_OK;
}

static const char *const spectra_formats[] = {"csv", "json", NULL};

const cmd_entry cmd_spectra_entry = {
	.name = "spectra",
	.usage = "MODEL",
	.summary = "Print singular values and truncation error curves (energy kept, "
	           "relative Frobenius and spectral error, params, FLOPs) per layer.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_FORMAT),
	.formats = spectra_formats,
	.min_args = 1, .max_args = 1,
	.run = spectra_run,
};
