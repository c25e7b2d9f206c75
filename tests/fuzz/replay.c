/*
 * replay.c — runs a fuzz target over files, without libFuzzer: each file
 * given, and each file in each directory given, is one input to
 * LLVMFuzzerTestOneInput.  `make check` replays the committed corpora this
 * way in every build (tests/fuzz/replay.sh), so gcc and the sanitizer
 * builds check every input a fuzzer ever found interesting or crashing.
 *
 * Exits 0 when every input ran (a broken invariant aborts), 2 on usage or
 * an unreadable file.
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "fuzzlib.h"
#include "rankscope/file.h"
#include "rankscope/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Inputs are small; a larger file is not one of ours. */
#define INPUT_MAX_BYTES (16u << 20)

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_file(const char *path, size_t *count)
{
	unsigned char *data;
	size_t len;
	rs_error err;

	if (rs_file_read_all(path, INPUT_MAX_BYTES, &data, &len, &err) != RS_OK) {
		fprintf(stderr, "replay: %s\n", err.msg);
		return 2;
	}
	if (getenv("REPLAY_VERBOSE") != NULL)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	/* an exact-size copy, so that the sanitizer sees a read past the end */
	{
		unsigned char *exact = rs_xmalloc(len ? len : 1);
		memcpy(exact, data, len);
		free(data);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	(*count)++;
	return 0;
}

static int
run_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *ent;
	char **names = NULL;
	size_t n = 0, i;
	int status = 0;

	if (d == NULL) {
		perror(dir);
		return 2;
	}
	while ((ent = readdir(d)) != NULL) {
		if (ent->d_name[0] == '.')
			continue;
		names = rs_xreallocarray(names, n + 1, sizeof *names);
		names[n++] = rs_xasprintf("%s/%s", dir, ent->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, compare_names);   /* a stable order */
	for (i = 0; i < n; i++) {
		if (status == 0)
			status = run_file(names[i], count);
		free(names[i]);
	}
	free(names);
	return status;
}

int
main(int argc, char **argv)
{
	size_t count = 0;
	int i, status = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
		return 2;
	}
#ifndef UNDER_ASAN
	{
		/* as the fuzzers' -rss_limit_mb: an input that asks the kernels
		 * for absurd memory is refused by malloc, not by the machine */
		struct rlimit rl = {4096ul << 20, 4096ul << 20};
		setrlimit(RLIMIT_AS, &rl);
	}
#endif
	LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc && status == 0; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			status = 2;
		} else if (S_ISDIR(st.st_mode)) {
			status = run_dir(argv[i], &count);
		} else {
			status = run_file(argv[i], &count);
		}
	}
	printf("%s: %zu inputs replayed\n", argv[0], count);
	return status;
}
