/*
 * fuzz-plan.c — bytes as a plan file, read against a fixed model.
 *
 * The input goes through everything that reads plan files: the compose
 * patterns (rs_plan_read_compose, then rs_compose_new on the model, as a
 * session opening a plan does), the summary `diff` reads, and
 * rs_plan_load matched against the tiny model of fuzzlib.h opened with
 * fold 0 and with fold 3 (composed when the plan's patterns give the
 * model's lora group).  Spectra and statistics are computed once, at
 * start.  A plan that loads must have figures for every layer, and must
 * survive a save and load unchanged: the JSON written from it loads
 * again, and writing that gives the same bytes.  Refusals carry a
 * printable message.
 *
 * With RANKSCOPE_FUZZ_MODEL=PATH in the environment the model is also
 * written to PATH, so that seeds can be made with `rankscope run`
 * (tests/fuzz/README).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "rankscope/planfile.h"
#include "rankscope/util.h"

#define NFOLDS 2
static const int folds[NFOLDS] = {0, 3};
static fuzz_session plain[NFOLDS], composed[NFOLDS];
static char *input_path, *saved_path;
static bool verbose;    /* FUZZ_VERBOSE set: what each reader said, on stderr */

static void
refused(rs_status st, const rs_error *err)
{
	if (verbose)
		fprintf(stderr, "  refused: %s\n", err->msg);
	fuzz_check_refusal(st, err);
}

static void
close_sessions(void)
{
	int i;

	for (i = 0; i < NFOLDS; i++) {
		fuzz_session_close(&plain[i]);
		fuzz_session_close(&composed[i]);
	}
	free(input_path);
	free(saved_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *out = getenv("RANKSCOPE_FUZZ_MODEL");
	int i;

	(void)argc;
	(void)argv;
	for (i = 0; i < NFOLDS; i++) {
		fuzz_session_open(&plain[i], folds[i], false);
		fuzz_session_open(&composed[i], folds[i], true);
	}
	input_path = rs_xasprintf("%s/plan.json", fuzz_scratch_dir());
	saved_path = rs_xasprintf("%s/saved.json", fuzz_scratch_dir());
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (out != NULL && out[0] != '\0')
		fuzz_write_file(out, plain[0].bytes, plain[0].len);
	atexit(close_sessions);
	return 0;
}

static void
check_summary(void)
{
	rs_plan_summary sum;
	rs_error err;
	rs_status st = rs_plan_summary_read(input_path, &sum, &err);
	size_t i;

	if (st != RS_OK) {
		refused(st, &err);
		return;
	}
	for (i = 0; i < sum.nlayers; i++)
		FUZZ_ASSERT(sum.layers[i].name != NULL && sum.layers[i].method != NULL,
		            "summary layer");
	rs_plan_summary_free(&sum);
}

/* Which precomputed layer set the plan's compose patterns give: 1 for
 * the composed one, 0 for the plain one, -1 when the patterns fail. */
static int
compose_choice(void)
{
	char **patterns;
	size_t n, i;
	rs_compose_set *set;
	rs_error err;
	rs_status st = rs_plan_read_compose(input_path, &patterns, &n, &err);
	int choice = 0;

	if (st != RS_OK) {
		refused(st, &err);
		return -1;
	}
	set = rs_compose_new(plain[0].model, (const char *const *)patterns, n, &err);
	if (set == NULL) {
		refused(err.code, &err);
		choice = -1;
	} else if (set->ngroups == 1 && strcmp(set->groups[0].name, "lora.weight") == 0 &&
	           set->groups[0].nfactors == 2) {
		choice = 1;
	}
	rs_compose_free(set);
	for (i = 0; i < n; i++)
		free(patterns[i]);
	free(patterns);
	return choice;
}

/* A loaded plan: figures, totals, and a save-load-save round trip. */
static void
check_loaded(const fuzz_session *s, const rs_plan *plan, const rs_plan_origin *origin)
{
	rs_plan_origin copy, origin2;
	rs_plan_totals totals;
	rs_plan plan2;
	rs_error err;
	rs_status st;
	char *json, *json2, desc[128];
	size_t i;

	FUZZ_ASSERT(plan->nlayers == s->nlayers, "one entry per layer");
	for (i = 0; i < s->nlayers; i++) {
		rs_plan_figures f;

		rs_plan_figures_for(&s->layers[i], &s->analyses[i], &plan->entries[i], &f);
		FUZZ_ASSERT(f.known, s->layers[i].name);
		FUZZ_ASSERT(isfinite(f.err_fro) && f.err_fro >= 0, s->layers[i].name);
		FUZZ_ASSERT(!isnan(f.err_spec) && f.err_spec >= 0, s->layers[i].name);
		rs_plan_describe(&plan->entries[i], &f, desc, sizeof desc);
	}
	rs_plan_totals_compute(plan, s->layers, s->analyses, &totals);
	FUZZ_ASSERT(totals.layers == s->nlayers && totals.pending == 0, "totals");

	rs_plan_origin_copy(&copy, origin);
	json = rs_plan_to_json(s->model, s->layers, s->nlayers, s->analyses, plan, &copy, 2);
	rs_plan_origin_free(&copy);
	fuzz_write_file(saved_path, json, strlen(json));
	st = rs_plan_load(saved_path, s->model, s->layers, s->nlayers, &plan2, &origin2, &err);
	if (st != RS_OK)
		fuzz_fail(__FILE__, __LINE__, "a plan written from a loaded plan loads", err.msg);
	json2 = rs_plan_to_json(s->model, s->layers, s->nlayers, s->analyses, &plan2,
	                        &origin2, 2);
	if (strcmp(json, json2) != 0) {
		fprintf(stderr, "---- written\n%s---- written again\n%s", json, json2);
		fuzz_fail(__FILE__, __LINE__, "save-load-save gives the same bytes", NULL);
	}
	free(json2);
	free(json);
	rs_plan_origin_free(&origin2);
	rs_plan_free(&plan2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int choice, i;

	fuzz_write_file(input_path, data, size);
	check_summary();
	choice = compose_choice();
	for (i = 0; i < NFOLDS; i++) {
		const fuzz_session *s = choice == 1 ? &composed[i] : &plain[i];
		rs_plan plan;
		rs_plan_origin origin;
		rs_error err;
		rs_status st = rs_plan_load(input_path, s->model, s->layers, s->nlayers, &plan,
		                            &origin, &err);

		if (st != RS_OK) {
			refused(st, &err);
			continue;
		}
		if (verbose)
			fprintf(stderr, "  loaded against fold %d%s\n", folds[i],
			        choice == 1 ? ", composed" : "");
		check_loaded(s, &plan, &origin);
		rs_plan_origin_free(&origin);
		rs_plan_free(&plan);
	}
	return 0;
}
