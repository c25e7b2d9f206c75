/*
 * main.c — dispatch: `rankscope COMMAND ...` runs a subcommand from the
 * table; `rankscope MODEL` opens the model (the layer table for now, the
 * interactive workbench once it exists).
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const cmd_entry *const commands[] = {
	&cmd_info_entry,
	&cmd_spectra_entry,
	&cmd_run_entry,
	&cmd_strategies_entry,
	&cmd_show_entry,
	&cmd_diff_entry,
	&cmd_apply_entry,
	NULL,
};

static void
print_usage(FILE *out)
{
	const cmd_entry *const *c;

	fprintf(out,
	    "Usage: rankscope MODEL            open a model in the workbench\n"
	    "       rankscope COMMAND [OPTIONS] ARGS\n"
	    "       rankscope --help | --version\n\n"
	    "Commands:\n");
	for (c = commands; *c; c++)
		fprintf(out, "  %-10s %s\n", (*c)->name, (*c)->summary);
	fprintf(out, "\n'rankscope COMMAND --help' lists a command's options. "
	             "See rankscope(1).\n");
}

static int
run(const cmd_entry *entry, int argc, char **argv)
{
	cmd_options opts;
	int status;

	if (!cmd_parse(entry, argc, argv, &opts, &status))
		return status;
	status = entry->run(entry, &opts);
	cmd_options_free(&opts);
	return status;
}

int
main(int argc, char **argv)
{
	const cmd_entry *const *c;

	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C");   /* machine-readable numbers use '.' */
	if (argc < 2) {
		print_usage(stderr);
		return CMD_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_usage(stdout);
		return CMD_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("rankscope %s\n", PACKAGE_VERSION);
		return CMD_EXIT_OK;
	}
	for (c = commands; *c; c++)
		if (strcmp(argv[1], (*c)->name) == 0)
			return run(*c, argc - 1, argv + 1);
	/* Not a command: the arguments name a model to open. */
	return run(&cmd_open_entry, argc, argv);
}
