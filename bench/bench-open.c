/*
 * bench-open.c — how long opening a model takes until its layer table can
 * be shown (rs_model_open + rs_layers_discover), against reading the file
 * once in the same run.
 *
 * Opening is lazy: readers map the file and validate its structure, they do
 * not read the tensors.  The baseline is what any reader that copies the
 * weights must at least do — read every byte once (from the page cache,
 * warmed first, so that the disk does not decide either figure).  The ratio
 * open / read says how much of that a lazy open avoids; the target is an
 * absolute one, a layer table in under 0.3 s for a model of about 1 GB.
 *
 * usage: bench-open MODEL...   (bench/open-models.py writes one per format)
 * Exit status: 0 when every model opens under the target, 1 otherwise.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rankscope/layer.h"
#include "rankscope/model.h"

#define RUNS 5
#define TARGET_SECONDS 0.3

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, compare_double);
	return v[n / 2];
}

/* Reads a file to its end; false on error. */
static bool
read_file(const char *path, unsigned char *buf, size_t bufsize)
{
	int fd = open(path, O_RDONLY);
	ssize_t got;

	if (fd < 0)
		return false;
	while ((got = read(fd, buf, bufsize)) > 0)
		;
	close(fd);
	return got == 0;
}

/* Seconds to read the whole model once (a directory: every file in it),
 * or a negative number on error. */
static double
read_once(const char *path, unsigned char *buf, size_t bufsize, uint64_t *bytes)
{
	double t0 = now();
	struct stat st;
	DIR *dir;
	struct dirent *e;
	bool ok = true;

	*bytes = 0;
	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		*bytes = (uint64_t)st.st_size;
		return read_file(path, buf, bufsize) ? now() - t0 : -1;
	}
	if ((dir = opendir(path)) == NULL)
		return -1;
	while (ok && (e = readdir(dir)) != NULL) {
		char file[4096];

		snprintf(file, sizeof file, "%s/%s", path, e->d_name);
		if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		*bytes += (uint64_t)st.st_size;
		ok = read_file(file, buf, bufsize);
	}
	closedir(dir);
	return ok ? now() - t0 : -1;
}

/* Seconds to open the model and list its layers; layers counted. */
static double
open_once(const char *path, size_t *nlayers, char *msg, size_t msglen)
{
	double t0 = now(), t;
	rs_error err;
	rs_model *m = rs_model_open(path, &err);
	rs_layer *layers = NULL;

	if (m == NULL) {
		snprintf(msg, msglen, "%s", err.msg);
		return -1;
	}
	*nlayers = rs_layers_discover(m, NULL, 0, NULL, &layers);
	t = now() - t0;
	free(layers);
	rs_model_close(m);
	return t;
}

int
main(int argc, char **argv)
{
	size_t bufsize = 8u << 20, i, r, nlayers = 0;
	unsigned char *buf = malloc(bufsize);
	double topen[RUNS], tread[RUNS];
	char msg[1024];
	int status = 0;

	if (argc < 2 || buf == NULL) {
		fprintf(stderr, "usage: bench-open MODEL...\n");
		return 2;
	}
	printf("%-44s %10s %7s %10s %10s %8s  %s\n", "model", "size", "layers", "open ms",
	       "read ms", "ratio", "target 300 ms");
	for (i = 1; i < (size_t)argc; i++) {
		uint64_t bytes = 0;
		double o, rd;
		const char *base = strrchr(argv[i], '/');

		snprintf(msg, sizeof msg, "cannot read it");
		if (read_once(argv[i], buf, bufsize, &bytes) < 0 ||
		    open_once(argv[i], &nlayers, msg, sizeof msg) < 0) {   /* warm both */
			fprintf(stderr, "bench-open: %s: %s\n", argv[i], msg);
			status = 2;
			continue;
		}
		for (r = 0; r < RUNS; r++) {
			tread[r] = read_once(argv[i], buf, bufsize, &bytes);
			topen[r] = open_once(argv[i], &nlayers, msg, sizeof msg);
		}
		o = median(topen, RUNS);
		rd = median(tread, RUNS);
		printf("%-44s %8.1f MB %7zu %10.2f %10.2f %8.4f  %s\n", base ? base + 1 : argv[i],
		       (double)bytes / 1e6, nlayers, 1e3 * o, 1e3 * rd, rd > 0 ? o / rd : 0,
		       o < TARGET_SECONDS ? "PASS" : "FAIL");
		if (o >= TARGET_SECONDS && status == 0)
			status = 1;
	}
	free(buf);
	return status;
}
