/* cmd-output.c — small output helpers shared by the CLI commands. */
#include "config.h"

#include <string.h>

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
