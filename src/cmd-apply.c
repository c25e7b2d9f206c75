/*
 * cmd-apply.c — `rankscope apply PLAN MODEL -o OUT.safetensors`: writes
 * the compressed model and prints, per factorised layer, the predicted and
 * the measured relative errors (they agree to float32 rounding).
 */
#include "config.h"

#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/apply.h"
#include "rankscope/planfile.h"

typedef struct apply_state {
	size_t width;
	double worst_gap;
	bool calibrated;          /* output errors as two more columns */
} apply_state;

static void
report(void *userdata, const rs_apply_report *r)
{
	apply_state *a = userdata;
	double gap = fabs(r->measured_fro - r->predicted_fro);

	if (!r->spec_is_bound)
		gap = fmax(gap, fabs(r->measured_spec - r->predicted_spec));
	if (!isnan(r->predicted_out) && !isnan(r->measured_out))
		gap = fmax(gap, fabs(r->measured_out - r->predicted_out));

	if (gap > a->worst_gap)
		a->worst_gap = gap;
	/* err_F is exact on both sides; err_2 is exact for low rank and a
	 * bound (marked <=) for the other methods */
	printf("%-*s %-14s %12.6f %12.6f %s%12.6f %12.6f", (int)a->width, r->layer->name,
	       rs_method_name(r->method), r->predicted_fro, r->measured_fro,
	       r->spec_is_bound ? "<=" : "  ", r->predicted_spec, r->measured_spec);
	/* "-": no figure (no statistics, or none computed for the method) */
	if (a->calibrated) {
		if (isnan(r->predicted_out))
			printf(" %12s", "-");
		else
			printf(" %12.6f", r->predicted_out);
		if (isnan(r->measured_out))
			printf(" %12s", "-");
		else
			printf(" %12.6f", r->measured_out);
	}
	/* what rounding the values to their dtype added to err_F: the
	 * prediction is that of the parts in double precision */
	printf(" %+10.1e\n", r->measured_fro - r->predicted_fro);
	fflush(stdout);
}

/* Where the file's bytes went, beside what the plan costs: the parts take
 * its storage_bits, up to the byte each bit-packed tensor is rounded to. */
static void
print_sizes(const rs_apply_sizes *z, bool dense)
{
	uint64_t total = z->header + z->layers + z->other;

	printf("bytes %" PRIu64 " = header %" PRIu64 " + compressed layers %" PRIu64,
	       total, z->header, z->layers);
	if (!dense)
		printf(" (the plan's %" PRIu64 " bits = %.1f bytes, + %.1f rounding bit-packed "
		       "tensors to whole bytes)", z->plan_bits, (double)z->plan_bits / 8,
		       (double)z->layers - (double)z->plan_bits / 8);
	printf(" + other tensors %" PRIu64 "\n", z->other);
}

static int
apply_run(const cmd_entry *self, cmd_options *opts)
{
	const char *plan_path = opts->args[0], *path = opts->args[1];
	rs_layer_analysis *analyses;
	apply_state state = {5, 0, false};
	rs_apply_sizes sizes;
	rs_plan_origin origin;
	cmd_session s;
	rs_plan plan;
	rs_error err;
	char *json;
	size_t i;
	int status = CMD_EXIT_OK;

	(void)self;
	if (opts->output == NULL) {
		fprintf(stderr, "rankscope apply: -o OUT.safetensors is required\n");
		return CMD_EXIT_USAGE;
	}
	if (!cmd_session_open_plan(&s, path, plan_path, opts, &plan, &origin))
		return CMD_EXIT_FAILURE;
	analyses = cmd_session_analyses(&s);
	json = rs_plan_to_json(s.model, s.layers, s.nlayers, analyses, &plan, &origin, 0);
	for (i = 0; i < s.nlayers; i++)
		if (strlen(s.layers[i].name) > state.width)
			state.width = strlen(s.layers[i].name);
	state.calibrated = s.calib != NULL;
	printf("%-*s %-14s %12s %12s   %12s %12s%s %10s\n", (int)state.width, "layer", "method",
	       "err_F pred", "err_F meas", "err_2 pred", "err_2 meas",
	       state.calibrated ? "   out pred     out meas" : "", "cast");
	if (rs_apply(s.model, s.layers, s.nlayers, analyses, &plan, json, opts->output,
	             opts->dense, report, &state, &sizes, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		status = CMD_EXIT_FAILURE;
	} else {
		printf("wrote %s; largest |measured - predicted| %.3g (%s)\n", opts->output,
		       state.worst_gap, opts->dense ? "dense layers in their own dtype" :
		       "parts in each layer's value dtype");
		print_sizes(&sizes, opts->dense);
	}
	free(json);
	free(analyses);
	rs_plan_origin_free(&origin);
	rs_plan_free(&plan);
	cmd_session_close(&s);
	return status;
}

const cmd_entry cmd_apply_entry = {
	.name = "apply",
	.usage = "PLAN MODEL",
	.summary = "Write the compressed model a plan describes (-o OUT.safetensors) and "
	           "print predicted vs measured errors per layer.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_OUTPUT) | OPT_BIT(OPT_DENSE),
	.min_args = 2, .max_args = 2,
	.run = apply_run,
};
