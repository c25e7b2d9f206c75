/*
 * cmd-diff.c — `rankscope diff PLAN_A PLAN_B`: the layers whose choices
 * differ, with both sides' figures, layers only one plan has, and the
 * totals side by side.  Reads the plans alone (no model needed).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/planfile.h"

static const rs_plan_summary_layer *
find(const rs_plan_summary *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nlayers; i++)
		if (strcmp(s->layers[i].name, name) == 0)
			return &s->layers[i];
	return NULL;
}

static void
choice(char *buf, size_t len, const rs_plan_summary_layer *l)
{
	if (l->rank < 0)
		snprintf(buf, len, "%s%s%s", l->method, l->detail[0] ? " " : "", l->detail);
	else
		snprintf(buf, len, "%s %lld%s%s", l->method, l->rank, l->detail[0] ? " " : "",
		         l->detail);
}

static int
diff_run(const cmd_entry *self, cmd_options *opts)
{
	rs_plan_summary a, b;
	rs_error err;
	size_t i, changed = 0, width = 5, total;

	(void)self;
	if (rs_plan_summary_read(opts->args[0], &a, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		return CMD_EXIT_FAILURE;
	}
	if (rs_plan_summary_read(opts->args[1], &b, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		rs_plan_summary_free(&a);
		return CMD_EXIT_FAILURE;
	}
	total = a.nlayers;
	if (a.header_sha256 && b.header_sha256 && strcmp(a.header_sha256, b.header_sha256) != 0)
		printf("note: the plans were made for different models (%s, %s)\n",
		       a.model_path ? a.model_path : "?", b.model_path ? b.model_path : "?");
	for (i = 0; i < a.nlayers; i++)
		if (strlen(a.layers[i].name) > width)
			width = strlen(a.layers[i].name);
	for (i = 0; i < b.nlayers; i++) {
		if (strlen(b.layers[i].name) > width)
			width = strlen(b.layers[i].name);
		if (find(&a, b.layers[i].name) == NULL)
			total++;   /* the union of both plans' layers */
	}
	printf("%-*s  %-24s %-24s %9s %9s %9s %9s %10s\n", (int)width, "layer", "A", "B",
	       "err_F A", "err_F B", "err_2 A", "err_2 B", "params B-A");
	for (i = 0; i < a.nlayers; i++) {
		const rs_plan_summary_layer *x = &a.layers[i], *y = find(&b, x->name);
		char ca[96], cb[96];

		if (y == NULL) {
			printf("%-*s  only in A\n", (int)width, x->name);
			changed++;
			continue;
		}
		if (strcmp(x->method, y->method) == 0 && x->rank == y->rank &&
		    strcmp(x->detail, y->detail) == 0)
			continue;
		changed++;
		choice(ca, sizeof ca, x);
		choice(cb, sizeof cb, y);
		printf("%-*s  %-24s %-24s %9.4f %9.4f %9.4f %9.4f %+10lld\n", (int)width, x->name,
		       ca, cb, x->rel_fro, y->rel_fro, x->rel_spec, y->rel_spec,
		       y->params - x->params);
	}
	for (i = 0; i < b.nlayers; i++)
		if (find(&a, b.layers[i].name) == NULL) {
			printf("%-*s  only in B\n", (int)width, b.layers[i].name);
			changed++;
		}
	printf("%zu of %zu layers differ\n", changed, total);
	printf("params after: A %lld, B %lld (%+lld); ratio A %.2fx, B %.2fx; "
	       "worst err_2 A %.4f, B %.4f\n", a.params_after, b.params_after,
	       b.params_after - a.params_after, a.ratio, b.ratio, a.max_rel_spec,
	       b.max_rel_spec);
	rs_plan_summary_free(&a);
	rs_plan_summary_free(&b);
	return CMD_EXIT_OK;
}

const cmd_entry cmd_diff_entry = {
	.name = "diff",
	.usage = "PLAN_A PLAN_B",
	.summary = "Compare two plans: the layers whose choices differ, and the totals.",
	.options = OPT_BIT(OPT_HELP),
	.min_args = 2, .max_args = 2,
	.run = diff_run,
};
