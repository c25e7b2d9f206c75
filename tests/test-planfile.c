/*
 * test-planfile.c — plan files at the C level: save-load-save gives the
 * same bytes; every field the reader checks is violated once and refused
 * with a message naming the file and the field or layer; a save that fails
 * half way (file size limit) leaves the previous file intact and no
 * temporary file behind.
 */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rankscope/file.h"
#include "rankscope/planfile.h"
#include "rankscope/util.h"
#include "testlib.h"

typedef struct fixture {
	unsigned char *bytes;
	rs_model *model;
	rs_layer *layers;
	size_t nlayers;
	rs_layer_analysis analyses[3];
	rs_spectrum *owned[3];
} fixture;

/* Two linear layers and a conv kernel, with hand-made spectra. */
static void
fixture_init(fixture *f)
{
	static double zeros[40 * 30];
	size_t s1[2] = {40, 30}, s2[2] = {8, 20}, s3[4] = {6, 4, 3, 3}, len, i, j;
	test_st *st = test_st_new();
	rs_error err;

	test_st_metadata(st, "model", "fixture");
	test_st_add_f32(st, "a.weight", s1, 2, zeros);
	test_st_add_f32(st, "b.weight", s2, 2, zeros);
	test_st_add_f32(st, "c.weight", s3, 4, zeros);
	f->bytes = test_st_bytes(st, &len);
	test_st_free(st);
	f->model = rs_safetensors_parse("fixture.safetensors", f->bytes, len, &err);
	f->nlayers = rs_layers_discover(f->model, NULL, 0, NULL, &f->layers);
	for (i = 0; i < f->nlayers; i++) {
		size_t k = f->layers[i].rows < f->layers[i].cols ? f->layers[i].rows : f->layers[i].cols;
		double *sigma = rs_xmalloc(k * sizeof *sigma);
		for (j = 0; j < k; j++)
			sigma[j] = 3.0 * pow(0.7, (double)j) + 0.001 * (double)i;
		f->owned[i] = rs_spectrum_new(f->layers[i].rows, f->layers[i].cols, sigma);
		f->analyses[i] = (rs_layer_analysis){.spectrum = f->owned[i]};
	}
}

static void
fixture_free(fixture *f)
{
	size_t i;

	for (i = 0; i < f->nlayers; i++)
		rs_spectrum_free(f->owned[i]);
	free(f->layers);
	rs_model_close(f->model);
	free(f->bytes);
}

static char *
read_text(const char *path)
{
	unsigned char *data;
	size_t len;

	if (rs_file_read_all(path, 1 << 24, &data, &len, NULL) != RS_OK)
		return NULL;
	return (char *)data;
}

static void
check_round_trip(fixture *f, const char *dir)
{
	char *p1 = rs_xasprintf("%s/p1.json", dir), *p2 = rs_xasprintf("%s/p2.json", dir);
	const char *params[] = {"budget=0.3", "metric=params"};
	rs_plan plan, loaded;
	rs_plan_origin origin, back;
	rs_error err;
	char *t1, *t2;

	rs_plan_init(&plan, f->nlayers);
	plan.entries[0] = rs_plan_entry_lowrank(7);
	plan.entries[2] = rs_plan_entry_lowrank(2);
	rs_plan_origin_set(&origin, "budget-minimax", params, 2);
	CHECK(rs_plan_save(p1, f->model, f->layers, f->nlayers, f->analyses, &plan, &origin,
	                   &err) == RS_OK, "save: %s", err.msg);
	CHECK(rs_plan_load(p1, f->model, f->layers, f->nlayers, &loaded, &back, &err) == RS_OK,
	      "load: %s", err.msg);
	CHECK(rs_plan_equal(&plan, &loaded), "loaded plan equals the saved one");
	CHECK(back.strategy && strcmp(back.strategy, "budget-minimax") == 0 &&
	      back.nparams == 2 && strcmp(back.values[0], "0.3") == 0,
	      "origin survives, parameter text kept as given");
	CHECK(rs_plan_save(p2, f->model, f->layers, f->nlayers, f->analyses, &loaded, &back,
	                   &err) == RS_OK, "save again");
	t1 = read_text(p1);
	t2 = read_text(p2);
	CHECK(t1 && t2 && strcmp(t1, t2) == 0, "save-load-save is byte-identical");
	CHECK_CONTAINS(t1, "\"budget\": \"0.3\"");
	CHECK_CONTAINS(t1, "\"fold\": 0");
	CHECK_CONTAINS(t1, "\"rank\": null");
	free(t1);
	free(t2);
	rs_plan_free(&loaded);
	rs_plan_origin_free(&back);
	rs_plan_free(&plan);
	rs_plan_origin_free(&origin);
	free(p1);
	free(p2);
}

/* Writes `text` as a plan and expects loading to fail with `needle`. */
static void
expect_refused(fixture *f, const char *dir, const char *text, const char *needle)
{
	char *path = rs_xasprintf("%s/bad.json", dir);
	rs_plan plan;
	rs_error err;

	test_write_file(path, text, strlen(text));
	CHECK(rs_plan_load(path, f->model, f->layers, f->nlayers, &plan, NULL, &err) != RS_OK,
	      "refused: %s", needle);
	CHECK_CONTAINS(err.msg, "bad.json: ");
	CHECK_CONTAINS(err.msg, needle);
	free(path);
}

/* A valid plan text with one layer entry replaced. */
static char *
plan_with(const char *a, const char *b, const char *c)
{
	return rs_xasprintf(
	    "{\"format\": \"rankscope-plan\", \"version\": 1, \"layers\": [%s%s%s%s%s]}",
	    a, *b ? ", " : "", b, *c ? ", " : "", c);
}

#define A_OK "{\"name\": \"a.weight\", \"matrix\": [40, 30], \"fold\": null, \"method\": \"lowrank\", \"rank\": 5}"
#define B_OK "{\"name\": \"b.weight\", \"method\": \"dense\", \"rank\": null}"
#define C_OK "{\"name\": \"c.weight\", \"fold\": 0, \"method\": \"dense\"}"

static void
check_refusals(fixture *f, const char *dir)
{
	static const struct { const char *a, *b, *c, *needle; } cases[] = {
		{A_OK, B_OK, "", "layer 'c.weight' of fixture.safetensors has no entry"},
		{A_OK, B_OK, "{\"name\": \"d.weight\", \"method\": \"dense\"}", "layer 'd.weight' is not a layer"},
		{A_OK, A_OK, C_OK, "layer 'a.weight' appears twice"},
		{"{\"name\": \"a.weight\", \"matrix\": [30, 40], \"method\": \"dense\"}", B_OK, C_OK,
		 "matrix is 30x40 but the layer is 40x30"},
		{"{\"name\": \"a.weight\", \"shape\": [40, 31], \"method\": \"dense\"}", B_OK, C_OK,
		 "tensor shape differs"},
		{A_OK, B_OK, "{\"name\": \"c.weight\", \"fold\": 1, \"method\": \"dense\"}", "fold differs"},
		{A_OK, "{\"name\": \"b.weight\", \"fold\": 2, \"method\": \"dense\"}", C_OK, "is a linear layer (its fold must be null)"},
		{"{\"name\": \"a.weight\", \"method\": \"lowrank\", \"rank\": 0}", B_OK, C_OK,
		 "rank 0 out of range 1..29"},
		{"{\"name\": \"a.weight\", \"method\": \"lowrank\", \"rank\": 30}", B_OK, C_OK,
		 "rank 30 out of range"},
		{"{\"name\": \"a.weight\", \"method\": \"lowrank\", \"rank\": 18}", B_OK, C_OK,
		 "costs at least as much as the dense layer (break-even 17)"},
		{"{\"name\": \"a.weight\", \"method\": \"lowrank\", \"rank\": \"5\"}", B_OK, C_OK,
		 "rank must be an integer, not a string"},
		{"{\"name\": \"a.weight\", \"method\": \"lowrank\"}", B_OK, C_OK,
		 "rank must be an integer, not missing"},
		{"{\"name\": \"a.weight\", \"method\": \"sparse\"}", B_OK, C_OK, "unknown method 'sparse'"},
		{"{\"name\": \"a.weight\", \"method\": 3}", B_OK, C_OK, "method must be a string, not an integer"},
		{"{\"name\": \"a.weight\", \"method\": \"dense\", \"groups\": 4}", B_OK, C_OK, "groups other than 1"},
		{"{\"name\": \"a.weight\", \"method\": \"prune\", \"sparsity\": 1.5}", B_OK, C_OK,
		 "sparsity must be a number in [0, 1) for method 'prune'"},
		{"{\"name\": \"a.weight\", \"method\": \"quant\", \"quantizer\": \"kmeans\"}", B_OK, C_OK,
		 "bits must be an integer 1..8 for method 'quant'"},
		{"{\"name\": \"a.weight\", \"method\": \"quant\", \"quantizer\": \"fp8\", \"bits\": 4}",
		 B_OK, C_OK, "quantizer must be one of"},
		{"{\"name\": \"a.weight\", \"method\": \"lowrank+sparse\", \"rank\": 3, \"sparsity\": 0.9}",
		 B_OK, C_OK, "predicted.rel_fro (the solve's error) must be a number"},
		{"{\"method\": \"dense\"}", B_OK, C_OK, "layers[0] must be an object with a \"name\" string"},
		{"7", B_OK, C_OK, "layers[0] must be an object"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text = plan_with(cases[i].a, cases[i].b, cases[i].c);
		expect_refused(f, dir, text, cases[i].needle);
		free(text);
	}
	expect_refused(f, dir, "{\"format\": \"rankscope-plan\", \"version\": 2, \"layers\": []}",
	               "plan version 2 is not one this rankscope reads");
	expect_refused(f, dir, "{\"format\": \"rankscope-plan\", \"version\": \"1\"}",
	               "\"version\" must be an integer");
	expect_refused(f, dir, "{\"format\": \"other\", \"version\": 1}", "not a rankscope plan");
	expect_refused(f, dir, "[1, 2]", "not a rankscope plan");
	expect_refused(f, dir, "{\"format\": \"rankscope-plan\", \"version\": 1, \"layers\": {}}",
	               "\"layers\" must be an array");
	expect_refused(f, dir, "{\"format\": \"rankscope-plan\", \"version\": 1, \"lay",
	               "not valid JSON");
	expect_refused(f, dir, "", "not valid JSON");
	expect_refused(f, dir, "{\"format\": \"rankscope-plan\", \"format\": \"rankscope-plan\"}",
	               "not valid JSON");
	{
		char *text = plan_with(A_OK, B_OK, C_OK), *with_by;
		text[strlen(text) - 1] = '\0';   /* drop the final brace */
		with_by = rs_xasprintf("%s, \"created_by\": {\"params\": {\"x\": {}}}}", text);
		expect_refused(f, dir, with_by, "created_by.params.x must be a string, number or boolean");
		free(with_by);
		free(text);
	}
	{
		char *path = rs_xasprintf("%s/missing.json", dir);
		rs_plan plan;
		rs_error err;
		CHECK(rs_plan_load(path, f->model, f->layers, f->nlayers, &plan, NULL, &err) == RS_EIO,
		      "a missing plan file is an I/O error");
		CHECK_CONTAINS(err.msg, "missing.json: cannot open");
		free(path);
	}
	{
		/* the valid plan the cases derive from does load */
		char *text = plan_with(A_OK, B_OK, C_OK), *path = rs_xasprintf("%s/ok.json", dir);
		rs_plan plan;
		rs_error err;
		test_write_file(path, text, strlen(text));
		CHECK(rs_plan_load(path, f->model, f->layers, f->nlayers, &plan, NULL, &err) == RS_OK,
		      "minimal plan loads: %s", err.msg);
		CHECK(plan.entries[0].method == RS_METHOD_LOWRANK && plan.entries[0].rank == 5,
		      "minimal plan content");
		rs_plan_free(&plan);
		free(text);
		free(path);
	}
}

static size_t
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	while (d && (e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void
check_interrupted_save(fixture *f, const char *parent)
{
	char *dir = rs_xasprintf("%s/save", parent), *path = rs_xasprintf("%s/plan.json", dir);
	char *before, *after;
	struct rlimit old, tiny = {64, 64};
	rs_plan plan;
	rs_error err;
	rs_status st;

	rs_mkdir_p(dir, NULL);
	rs_plan_init(&plan, f->nlayers);
	CHECK(rs_plan_save(path, f->model, f->layers, f->nlayers, f->analyses, &plan, NULL,
	                   &err) == RS_OK, "first save");
	before = read_text(path);
	plan.entries[0] = rs_plan_entry_lowrank(3);
	/* A file size limit makes the write fail part way, as a full disk would. */
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	tiny.rlim_max = old.rlim_max;
	setrlimit(RLIMIT_FSIZE, &tiny);
	st = rs_plan_save(path, f->model, f->layers, f->nlayers, f->analyses, &plan, NULL, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	CHECK(st == RS_EIO, "a save that cannot be written fails");
	CHECK_CONTAINS(err.msg, "plan.json: write failed");
	after = read_text(path);
	CHECK(before && after && strcmp(before, after) == 0, "the previous file is intact");
	CHECK(count_entries(dir) == 1, "no temporary file left behind (%zu entries)",
	      count_entries(dir));
	free(before);
	free(after);
	rs_plan_free(&plan);
	free(path);
	free(dir);
}

int
main(void)
{
	fixture f;
	char *dir = test_tmpdir();

	fixture_init(&f);
	check_round_trip(&f, dir);
	check_refusals(&f, dir);
	check_interrupted_save(&f, dir);
	fixture_free(&f);
	free(dir);
	return test_done("test-planfile");
}
