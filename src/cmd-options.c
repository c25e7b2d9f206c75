/*
 * cmd-options.c — the option table and the one parser every subcommand
 * uses.  Help text comes from the same table, so it cannot drift.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/dtype.h"
#include "rankscope/util.h"

const cmd_option_info cmd_option_table[OPT_COUNT] = {
	[OPT_LAYER] = {"layer", 'l', "GLOB",
	    "only layers whose name matches GLOB (repeatable; '*' matches dots too)"},
	[OPT_EXCLUDE] = {"exclude", 'x', "GLOB",
	    "skip layers whose name matches GLOB (repeatable)"},
	[OPT_FOLD] = {"fold", 0, "N",
	    "fold scheme for 4-D conv kernels: 0 f x (c kh kw), 1 (f kh) x (c kw), "
	    "2 (f kw) x (c kh), 3 (f kh kw) x c (default 0)"},
	[OPT_THREADS] = {"threads", 'j', "N",
	    "worker threads for spectra (default: number of CPUs)"},
	[OPT_METHOD] = {"method", 0, "M",
	    "singular value method: auto (default), gesdd or gram"},
	[OPT_NO_CACHE] = {"no-cache", 0, NULL,
	    "neither read nor write the spectrum cache"},
	[OPT_FORMAT] = {"format", 'f', "FMT", "output format"},
	[OPT_QUIET] = {"quiet", 'q', NULL, "no progress display"},
	[OPT_PARAM] = {"param", 'p', "NAME=VALUE",
	    "set a strategy parameter (repeatable)"},
	[OPT_STRATEGY_PATH] = {"strategy-path", 'S', "DIR",
	    "also look for strategies in DIR, before the others (repeatable)"},
	[OPT_OUTPUT] = {"output", 'o', "FILE", "write the result to FILE (replacing it)"},
	[OPT_PLAN] = {"plan", 0, "FILE", "start from the plan in FILE"},
	[OPT_COMPOSE] = {"compose", 0, "PATTERN",
	    "make one layer of each group of 2-D tensors matching PATTERN, the product "
	    "of its factors; '#' marks the factor index, factor 0 applied first "
	    "(repeatable; e.g. 'fc*.factors.#.weight')"},
	[OPT_LUA_MEMORY] = {"lua-memory", 0, "SIZE",
	    "memory a strategy may use, in MiB or with a suffix K, M or G "
	    "(default 512M)"},
	[OPT_LAYOUT] = {"layout", 0, "PATTERN=L",
	    "read 2-D tensors matching PATTERN as stored in,out (Paddle, tfjs, a "
	    "transposed export) or out,in (PyTorch, the default) (repeatable)"},
	[OPT_KIND] = {"kind", 0, "PATTERN=K",
	    "take tensors matching PATTERN as K: linear, embedding, conv, depthwise, "
	    "groups:N or other (not a layer) (repeatable)"},
	[OPT_SPLIT] = {"split", 0, "PATTERN=PARTS",
	    "split each fused 2-D weight matching PATTERN into layers NAME.PART by rows: "
	    "q,k,v (equal parts) or q:4096,k:1024,v:1024 (repeatable)"},
	[OPT_CALIBRATION] = {"calibration", 'C', "FILE",
	    "input Gram matrices of the layers (PREFIX.gram, PREFIX.diag): output-error figures "
	    "and whitened truncation"},
	[OPT_DENSE] = {"dense", 0, NULL,
	    "write each compressed layer back as one tensor of its own name, shape and dtype "
	    "(a drop-in state_dict) instead of its parts"},
	[OPT_DTYPE] = {"dtype", 0, "T",
	    "store compressed layers' values (factors, kept weights, codebooks) as T: f16, "
	    "bf16 or f32 (default: the model's F16/BF16, else F32); plans cost them so"},
	[OPT_HELP] = {"help", 'h', NULL, "show this help and exit"},
};

static bool
parse_int(const char *text, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

/* A size in bytes: a number of MiB, or a number with a K, M or G suffix
 * (binary multiples).  At least 1 MiB: less cannot even open the sandbox. */
static bool
parse_size(const char *text, size_t *out)
{
	char *end;
	double v;
	double unit = 1024.0 * 1024.0;

	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || !(v > 0))
		return false;
	switch (*end) {
	case 'k': case 'K': unit = 1024.0; end++; break;
	case 'm': case 'M': end++; break;
	case 'g': case 'G': unit = 1024.0 * 1024.0 * 1024.0; end++; break;
	case '\0': break;
	default: return false;
	}
	if (*end == 'i')   /* "MiB" spelt out */
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v * unit < 1024.0 * 1024.0 || v * unit > (double)SIZE_MAX / 2)
		return false;
	*out = (size_t)(v * unit);
	return true;
}

static void
push(const char ***list, size_t *n, const char *value)
{
	*list = rs_xreallocarray(*list, *n + 1, sizeof **list);
	(*list)[(*n)++] = value;
}

static bool
format_allowed(const cmd_entry *entry, const char *format)
{
	const char *const *f;

	for (f = entry->formats; f && *f; f++)
		if (strcmp(*f, format) == 0)
			return true;
	return false;
}

static int usage_error(const cmd_entry *entry, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
usage_error(const cmd_entry *entry, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rankscope %s: ", entry->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'rankscope %s --help'.\n", entry->name);
	return CMD_EXIT_USAGE;
}

bool
cmd_parse(const cmd_entry *entry, int argc, char **argv, cmd_options *opts,
          int *exit_status)
{
	struct option longopts[OPT_COUNT + 1];
	/* Leading ':' makes getopt report a missing value as ':'.  No '+':
	 * options may follow the model path, so getopt permutes. */
	char shortopts[3 * OPT_COUNT + 2] = ":";
	size_t nlong = 0, ns = 1;
	int id, c;

	memset(opts, 0, sizeof *opts);
	opts->method = RS_SVD_AUTO;
	for (id = 0; id < OPT_COUNT; id++) {
		const cmd_option_info *o = &cmd_option_table[id];
		if (!(entry->options & OPT_BIT(id)))
			continue;
		longopts[nlong].name = o->long_name;
		longopts[nlong].has_arg = o->metavar ? required_argument : no_argument;
		longopts[nlong].flag = NULL;
		longopts[nlong].val = 256 + id;
		nlong++;
		if (o->short_name) {
			shortopts[ns++] = o->short_name;
			if (o->metavar)
				shortopts[ns++] = ':';
		}
	}
	memset(&longopts[nlong], 0, sizeof longopts[nlong]);
	shortopts[ns] = '\0';

	optind = 0;   /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			char shown[64];
			const char *what = optopt ? (snprintf(shown, sizeof shown, "-%c", optopt), shown) :
			    argv[optind - 1];
			*exit_status = c == '?' ?
			    usage_error(entry, "unknown option '%s'", what) :
			    usage_error(entry, "option '%s' needs a value", what);
			goto fail;
		}
		id = c >= 256 ? c - 256 : -1;
		for (int k = 0; id < 0 && k < OPT_COUNT; k++)
			if (cmd_option_table[k].short_name == c &&
			    (entry->options & OPT_BIT(k)))
				id = k;
		switch (id) {
		case OPT_LAYER: push(&opts->include, &opts->ninclude, optarg); break;
		case OPT_EXCLUDE: push(&opts->exclude, &opts->nexclude, optarg); break;
		case OPT_COMPOSE: push(&opts->compose, &opts->ncompose, optarg); break;
		case OPT_LAYOUT: push(&opts->layouts, &opts->nlayouts, optarg); break;
		case OPT_KIND: push(&opts->kinds, &opts->nkinds, optarg); break;
		case OPT_SPLIT: push(&opts->splits, &opts->nsplits, optarg); break;
		case OPT_FOLD:
			if (!parse_int(optarg, 0, RS_FOLD_COUNT - 1, &opts->fold)) {
				*exit_status = usage_error(entry,
				    "--fold takes a scheme number 0..3, not '%s'", optarg);
				goto fail;
			}
			break;
		case OPT_THREADS:
			if (!parse_int(optarg, 1, 256, &opts->threads)) {
				*exit_status = usage_error(entry,
				    "--threads takes a number from 1 to 256, not '%s'", optarg);
				goto fail;
			}
			break;
		case OPT_METHOD:
			if (!rs_svd_method_parse(optarg, &opts->method)) {
				*exit_status = usage_error(entry,
				    "--method takes auto, gesdd or gram, not '%s'", optarg);
				goto fail;
			}
			break;
		case OPT_NO_CACHE: opts->no_cache = true; break;
		case OPT_OUTPUT: opts->output = optarg; break;
		case OPT_DENSE: opts->dense = true; break;
		case OPT_DTYPE: {
			char upper[8] = "";
			size_t k;
			rs_dtype d;
			for (k = 0; optarg[k] != '\0' && k + 1 < sizeof upper; k++)
				upper[k] = (char)toupper((unsigned char)optarg[k]);
			upper[k] = '\0';
			if (strlen(optarg) >= sizeof upper || !rs_dtype_parse(upper, &d) ||
			    (d != RS_DTYPE_F16 && d != RS_DTYPE_BF16 && d != RS_DTYPE_F32)) {
				*exit_status = usage_error(entry,
				    "--dtype takes f16, bf16 or f32, not '%s'", optarg);
				goto fail;
			}
			opts->value_dtype = rs_dtype_get(d)->name;
			break;
		}
		case OPT_PLAN: opts->plan = optarg; break;
		case OPT_CALIBRATION: opts->calibration = optarg; break;
		case OPT_PARAM: push(&opts->params, &opts->nparams, optarg); break;
		case OPT_STRATEGY_PATH:
			push(&opts->strategy_dirs, &opts->nstrategy_dirs, optarg);
			break;
		case OPT_LUA_MEMORY:
			if (!parse_size(optarg, &opts->lua_memory)) {
				*exit_status = usage_error(entry,
				    "--lua-memory takes a size of at least 1M (e.g. 256, 64M, 2G), "
				    "not '%s'", optarg);
				goto fail;
			}
			break;
		case OPT_QUIET: opts->quiet = true; break;
		case OPT_FORMAT:
			if (!format_allowed(entry, optarg)) {
				*exit_status = usage_error(entry, "unknown --format '%s'", optarg);
				goto fail;
			}
			opts->format = optarg;
			break;
		case OPT_HELP:
			cmd_print_help(entry, stdout);
			*exit_status = CMD_EXIT_OK;
			goto fail;
		default:
			*exit_status = usage_error(entry, "unexpected option '%s'",
			                           argv[optind - 1]);
			goto fail;
		}
	}
	opts->args = argv + optind;
	opts->nargs = argc - optind;
	if (opts->nargs < entry->min_args) {
		*exit_status = usage_error(entry, "missing %s", entry->usage);
		goto fail;
	}
	if (opts->nargs > entry->max_args) {
		*exit_status = usage_error(entry, "unexpected argument '%s'",
		                           opts->args[entry->max_args]);
		goto fail;
	}
	if (opts->format == NULL && entry->formats)
		opts->format = entry->formats[0];
	return true;
fail:
	cmd_options_free(opts);
	return false;
}

void
cmd_options_free(cmd_options *opts)
{
	free(opts->include);
	free(opts->exclude);
	free(opts->compose);
	free(opts->layouts);
	free(opts->kinds);
	free(opts->splits);
	free(opts->params);
	free(opts->strategy_dirs);
	opts->include = opts->exclude = opts->compose = opts->params = opts->strategy_dirs = NULL;
	opts->ninclude = opts->nexclude = opts->ncompose = opts->nparams = opts->nstrategy_dirs = 0;
	opts->layouts = opts->kinds = opts->splits = NULL;
	opts->nlayouts = opts->nkinds = opts->nsplits = 0;
}

void
cmd_print_help(const cmd_entry *entry, FILE *out)
{
	int id;

	fprintf(out, "Usage: rankscope %s [OPTIONS] %s\n%s\n\nOptions:\n",
	        entry->name, entry->usage, entry->summary);
	for (id = 0; id < OPT_COUNT; id++) {
		const cmd_option_info *o = &cmd_option_table[id];
		char left[64];

		if (!(entry->options & OPT_BIT(id)))
			continue;
		if (o->short_name)
			snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name,
			         o->long_name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof left, "    --%s%s%s", o->long_name,
			         o->metavar ? " " : "", o->metavar ? o->metavar : "");
		fprintf(out, "  %-24s %s", left, o->help);
		if (id == OPT_FORMAT && entry->formats) {
			const char *const *f;
			fprintf(out, ":");
			for (f = entry->formats; *f; f++)
				fprintf(out, " %s%s", *f, f == entry->formats ? " (default)" : "");
		}
		fputc('\n', out);
	}
}
