/* cmd-session.c — opening a model for a CLI command: load, discover
 * layers, compute spectra with a progress line; see cmd.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "rankscope/cache.h"
#include "rankscope/calib.h"
#include "rankscope/planfile.h"
#include "rankscope/role.h"
#include "rankscope/util.h"

static void
show_progress(cmd_session *s, bool live)
{
	size_t done = 0, total = 0;
	struct timespec tick = {0, 100 * 1000 * 1000};

	for (;;) {
		rs_engine_progress(s->engine, &done, &total);
		if (live) {
			fprintf(stderr, "\rspectra %zu/%zu", done, total);
			fflush(stderr);
		}
		if (done >= total)
			break;
		nanosleep(&tick, NULL);
	}
	if (live)
		fprintf(stderr, "\r\033[K");
}

/*
 * The composed layers of --compose, and of the plan being opened (if any),
 * so that a plan made on composed layers finds them without the user
 * repeating its patterns.
 */
static rs_compose_set *
open_compose(const rs_model *model, const cmd_options *opts, rs_error *err)
{
	char **from_plan = NULL;
	const char **all;
	size_t nfrom = 0, n = 0, i, j;
	rs_compose_set *set = NULL;

	if (opts->plan != NULL &&
	    rs_plan_read_compose(opts->plan, &from_plan, &nfrom, err) != RS_OK)
		return NULL;
	all = rs_xcalloc(opts->ncompose + nfrom + 1, sizeof *all);
	for (i = 0; i < opts->ncompose; i++)
		all[n++] = opts->compose[i];
	for (i = 0; i < nfrom; i++) {
		for (j = 0; j < n && strcmp(all[j], from_plan[i]) != 0; j++)
			;
		if (j == n)
			all[n++] = from_plan[i];
	}
	set = rs_compose_new(model, all, n, err);
	for (i = 0; i < nfrom; i++)
		free(from_plan[i]);
	free(from_plan);
	free(all);
	return set;
}


static void
free_strings(char **list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* The plan's --split rules (each may match nothing: its reader names what
 * is missing), then the command line's but those the plan has already
 * (repeating the options a plan was made with is no error). */
static bool
apply_splits(rs_model *model, const cmd_options *opts, rs_error *err)
{
	char **planned = NULL;
	size_t np = 0, n, i, k = 0;
	rs_split_rule *rules;
	rs_status st = RS_OK;

	if (opts->plan != NULL && rs_plan_read_splits(opts->plan, &planned, &np, err) != RS_OK)
		return false;
	n = np + opts->nsplits;
	rules = rs_xcalloc(n + 1, sizeof *rules);
	for (i = 0; i < np && st == RS_OK; i++, k++) {
		st = rs_split_rule_parse(planned[i], &rules[k], err);
		rules[k].optional = true;
	}
	for (i = 0; i < opts->nsplits && st == RS_OK; i++) {
		size_t j;
		for (j = 0; j < np && strcmp(planned[j], opts->splits[i]) != 0; j++)
			;
		if (j == np)
			st = rs_split_rule_parse(opts->splits[i], &rules[k++], err);
	}
	n = k;
	if (st == RS_OK)
		st = rs_roles_split(model, rules, n, err);
	for (i = 0; i < n; i++)
		rs_split_rule_free(&rules[i]);
	free(rules);
	free_strings(planned, np);
	return st == RS_OK;
}

/* How the plan being opened read its layers, then --layout and --kind, in
 * the order given: a later rule wins, so the command line overrides the
 * plan. */
static bool
apply_role_rules(rs_model *model, const cmd_options *opts, rs_error *err)
{
	char **playouts = NULL, **pkinds = NULL;
	size_t npl = 0, npk = 0, n, i, k = 0;
	rs_role_rule *rules;
	rs_status st = RS_OK;

	if (opts->plan != NULL &&
	    rs_plan_read_roles(opts->plan, &playouts, &npl, &pkinds, &npk, err) != RS_OK)
		return false;
	n = npl + npk + opts->nlayouts + opts->nkinds;
	rules = rs_xcalloc(n + 1, sizeof *rules);
	for (i = 0; i < npl && st == RS_OK; i++, k++) {
		st = rs_role_rule_parse(playouts[i], true, &rules[k], err);
		rules[k].optional = true;
	}
	for (i = 0; i < npk && st == RS_OK; i++, k++) {
		st = rs_role_rule_parse(pkinds[i], false, &rules[k], err);
		rules[k].optional = true;
	}
	for (i = 0; i < opts->nlayouts && st == RS_OK; i++)
		st = rs_role_rule_parse(opts->layouts[i], true, &rules[k++], err);
	for (i = 0; i < opts->nkinds && st == RS_OK; i++)
		st = rs_role_rule_parse(opts->kinds[i], false, &rules[k++], err);
	if (st == RS_OK)
		st = rs_roles_apply(model, rules, n, err);
	for (i = 0; i < n; i++)
		rs_role_rule_free(&rules[i]);
	free(rules);
	free_strings(playouts, npl);
	free_strings(pkinds, npk);
	return st == RS_OK;
}

/* Opens --calibration FILE for the session's layers: a file that names
 * none of them is an error (every name was mistyped), names that match no
 * layer a warning. */
static bool
open_calibration(cmd_session *s, const char *path)
{
	rs_error err;
	size_t i, with = 0, unmatched;
	const char *first;
	char name[96];

	s->calib = rs_calib_open(path, &err);
	if (s->calib == NULL) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		return false;
	}
	for (i = 0; i < s->nlayers; i++)
		if (rs_calib_kind_for(s->calib, &s->layers[i]) != RS_CALIB_NONE)
			with++;
	if (with == 0) {
		fprintf(stderr, "rankscope: %s: no statistics for any of the %zu layers: a layer "
		        "whose tensor is PREFIX.weight (or PREFIX) needs PREFIX.gram or "
		        "PREFIX.diag, or in an importance matrix NAME.in_sum2 (rankscope(1), "
		        "CALIBRATION)\n", path, s->nlayers);
		return false;
	}
	first = rs_calib_unmatched(s->calib, s->layers, s->nlayers, &unmatched);
	if (first != NULL)
		fprintf(stderr, "rankscope: warning: %s: %zu tensor%s belong%s to no layer, "
		        "e.g. '%s'\n", path, unmatched, unmatched == 1 ? "" : "s",
		        unmatched == 1 ? "s" : "", rs_printable(name, sizeof name, first));
	return true;
}

/*
 * --dtype, or the one the plan being opened was made with: the dtype every
 * layer's compressed values are costed and written in.  The two must
 * agree, since the plan's figures were costed in its own.
 */
static bool
choose_value_dtype(cmd_session *s, const cmd_options *opts)
{
	char *planned = NULL;
	const char *chosen = opts->value_dtype;
	rs_dtype d;
	rs_error err;
	size_t i;

	if (opts->plan != NULL && rs_plan_read_value_dtype(opts->plan, &planned, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		return false;
	}
	if (planned != NULL && chosen != NULL && strcmp(planned, chosen) != 0) {
		fprintf(stderr, "rankscope: %s: the plan costs its values as %s; --dtype %s would "
		        "change its figures: make the plan again with --dtype %s\n", opts->plan,
		        planned, chosen, chosen);
		free(planned);
		return false;
	}
	if (chosen == NULL)
		chosen = planned;
	if (chosen != NULL && rs_dtype_parse(chosen, &d))
		for (i = 0; i < s->nlayers; i++) {
			s->layers[i].value_dtype_chosen = true;
			s->layers[i].value_dtype = d;
		}
	free(planned);
	return true;
}

bool
cmd_session_load(cmd_session *s, const char *path, const cmd_options *opts)
{
	rs_layer_filter filter = {
		.include = opts->include, .ninclude = opts->ninclude,
		.exclude = opts->exclude, .nexclude = opts->nexclude,
	};
	rs_error err;

	*s = (cmd_session){0};
	s->model = rs_model_open(path, &err);
	if (s->model == NULL) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		return false;
	}
	{
		unsigned shard, count;
		if ((s->model->format == NULL || strcmp(s->model->format, "sharded") != 0) &&
		    rs_shard_name(path, &shard, &count))
			fprintf(stderr, "rankscope: warning: %s is shard %u of %u of a sharded "
			        "checkpoint: only its tensors are shown; open the directory or its "
			        "*.index.json for the whole model\n", path, shard, count);
	}
	if (!apply_splits(s->model, opts, &err) || !apply_role_rules(s->model, opts, &err)) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		cmd_session_close(s);
		return false;
	}
	s->compose = open_compose(s->model, opts, &err);
	if (s->compose == NULL) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		cmd_session_close(s);
		return false;
	}
	s->nlayers = rs_layers_discover(s->model, &filter, opts->fold, s->compose,
	                                &s->layers);
	if (s->nlayers == 0 && opts->ninclude > 0) {
		fprintf(stderr, "rankscope: %s: no layer matches --layer '%s'%s\n",
		        path, opts->include[0], opts->ninclude > 1 ? " (or the others)" : "");
		cmd_session_close(s);
		return false;
	}
	if (!choose_value_dtype(s, opts)) {
		cmd_session_close(s);
		return false;
	}
	if (opts->calibration && !open_calibration(s, opts->calibration)) {
		cmd_session_close(s);
		return false;
	}
	if (!opts->no_cache)
		s->cache_dir = rs_cache_default_dir();
	return true;
}

rs_engine_options
cmd_session_engine_options(const cmd_session *s, const cmd_options *opts)
{
	rs_engine_options eo = {
		.threads = opts->threads, .method = opts->method,
		.cache_dir = s->cache_dir, .statistics = opts->statistics,
		.calib = s->calib,
	};
	return eo;
}

bool
cmd_session_open(cmd_session *s, const char *path, const cmd_options *opts)
{
	rs_engine_options eo;

	if (!cmd_session_load(s, path, opts))
		return false;
	eo = cmd_session_engine_options(s, opts);
	s->engine = rs_engine_start(s->layers, s->nlayers, path, &eo);
	show_progress(s, !opts->quiet && isatty(STDERR_FILENO));
	/* progress counts spectra; statistics may still be on their way */
	rs_engine_wait(s->engine);
	{
		size_t failures;
		const char *why = rs_engine_cache_warning(s->engine, &failures);
		/* not an error: the spectra are all there, only not kept */
		if (why != NULL)
			fprintf(stderr, "rankscope: warning: spectrum cache not written: %s "
			        "(%zu spectr%s will be computed again next time)\n", why,
			        failures, failures == 1 ? "um" : "a");
	}
	return true;
}

size_t
cmd_session_report_failures(cmd_session *s)
{
	size_t i, failed = 0;

	for (i = 0; i < s->nlayers; i++) {
		const char *msg = rs_engine_error(s->engine, i);
		if (msg == NULL)
			msg = rs_engine_calib_error(s->engine, i);
		if (msg != NULL) {
			fprintf(stderr, "rankscope: %s\n", msg);
			failed++;
		}
	}
	return failed;
}

bool
cmd_session_open_plan(cmd_session *s, const char *path, const char *plan_path,
                      cmd_options *opts, rs_plan *plan, rs_plan_origin *origin)
{
	rs_error err;

	opts->statistics = true;    /* the plan's figures need every analysis */
	opts->plan = plan_path;     /* its compose patterns, if any, apply */
	if (!cmd_session_open(s, path, opts))
		return false;
	if (cmd_session_report_failures(s) > 0) {
		cmd_session_close(s);
		return false;
	}
	if (rs_plan_load(plan_path, s->model, s->layers, s->nlayers, plan, origin, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		cmd_session_close(s);
		return false;
	}
	if (!cmd_session_plan_calibration(s, plan_path, origin)) {
		rs_plan_free(plan);
		rs_plan_origin_free(origin);
		cmd_session_close(s);
		return false;
	}
	return true;
}

bool
cmd_session_plan_calibration(const cmd_session *s, const char *plan_path,
                             const rs_plan_origin *origin)
{
	rs_error err;

	if (rs_plan_check_calibration(plan_path, origin, s->calib ? s->calib->sha256 : NULL,
	                              &err) == RS_OK)
		return true;
	fprintf(stderr, "rankscope: %s\n", err.msg);
	return false;
}

void
cmd_session_close(cmd_session *s)
{
	rs_engine_free(s->engine);
	free(s->layers);
	rs_compose_free(s->compose);
	rs_model_close(s->model);
	rs_calib_free(s->calib);
	free(s->cache_dir);
	*s = (cmd_session){0};
}

rs_layer_analysis *
cmd_session_analyses(const cmd_session *s)
{
	rs_layer_analysis *a = rs_xcalloc(s->nlayers ? s->nlayers : 1, sizeof *a);
	size_t i;

	for (i = 0; i < s->nlayers; i++)
		a[i] = rs_engine_analysis(s->engine, i);
	return a;
}
