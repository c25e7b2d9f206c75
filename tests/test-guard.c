/*
 * test-guard.c — a model file shrunk or rewritten while it is mapped.
 * Every reader of mapped tensor bytes (the layer loaders, composed
 * factors, the engine's snapshot for the cache key, apply's computations
 * and copies) turns the SIGBUS of a truncated map into an error naming the
 * file and the tensor, on every thread; SIGBUS outside a guard still
 * reaches the handler installed before (or after) ours, or kills; and a
 * file rewritten in place can never put one version's spectrum under the
 * other version's cache key.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rankscope/apply.h"
#include "rankscope/cache.h"
#include "rankscope/compose.h"
#include "rankscope/engine.h"
#include "rankscope/file.h"
#include "rankscope/guard.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

#define SHRANK "the file shrank while it was open (truncated or rewritten); reopen it"

/* a.weight (64 x 48, sigma_i = scale 0.8^i), a conv kernel, two factors
 * of a composed layer and a bias: every kind of read, each tensor over
 * more than one page or at least past the first. */
static unsigned char *
model_image(double scale, size_t *len)
{
	size_t sa[2] = {64, 48}, sc[4] = {16, 8, 3, 3}, s0[2] = {8, 48}, s1[2] = {64, 8};
	size_t sb[1] = {64}, i, j;
	double s[48], *a, *rm, *v;
	test_st *st = test_st_new();
	unsigned char *bytes;

	for (i = 0; i < 48; i++)
		s[i] = scale * pow(0.8, (double)i);
	test_seed(11);
	a = test_matrix_with_spectrum(64, 48, s);
	rm = rs_xmalloc(64 * 48 * sizeof *rm);
	for (i = 0; i < 64; i++)
		for (j = 0; j < 48; j++)
			rm[i * 48 + j] = a[i + j * 64];
	test_st_add_f32(st, "a.weight", sa, 2, rm);
	v = rs_xmalloc(16 * 8 * 9 * sizeof *v);
	for (i = 0; i < 16 * 8 * 9; i++)
		v[i] = test_gaussian();
	test_st_add_f32(st, "c.weight", sc, 4, v);
	test_st_add_f32(st, "f.0.weight", s0, 2, v);
	test_st_add_f32(st, "f.1.weight", s1, 2, v);
	test_st_add_f32(st, "bias", sb, 1, v);
	bytes = test_st_bytes(st, len);
	test_st_free(st);
	free(v);
	free(rm);
	free(a);
	return bytes;
}

typedef struct opened {
	rs_model *model;
	rs_compose_set *compose;
	rs_layer *layers;
	size_t nlayers;
} opened;

static bool
open_model(opened *o, const char *path, int fold)
{
	const char *pattern = "f.#.weight";
	rs_error err;

	memset(o, 0, sizeof *o);
	o->model = rs_model_open(path, &err);
	CHECK(o->model != NULL, "open %s: %s", path, o->model ? "" : err.msg);
	if (o->model == NULL)
		return false;
	o->compose = rs_compose_new(o->model, &pattern, 1, &err);
	CHECK(o->compose != NULL, "compose: %s", o->compose ? "" : err.msg);
	o->nlayers = rs_layers_discover(o->model, NULL, fold, o->compose, &o->layers);
	CHECK(o->nlayers == 3, "three layers (%zu)", o->nlayers);
	return o->nlayers == 3;
}

static void
close_model(opened *o)
{
	free(o->layers);
	rs_compose_free(o->compose);
	rs_model_close(o->model);
}

static void
shrink(const char *path, off_t size)
{
	if (truncate(path, size) != 0)
		abort();
}

static size_t
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	while (d && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	if (d)
		closedir(d);
	return n;
}

/* The message names the file, the tensor and what happened. */
static void
check_shrank(rs_status st, const rs_error *err, const char *path, const char *tensor,
             const char *what)
{
	char *want = rs_xasprintf("%s: tensor '%s': " SHRANK, path, tensor);

	CHECK(st == RS_EIO, "%s: RS_EIO (got %s)", what, rs_status_name(st));
	CHECK(strstr(err->msg, want) != NULL, "%s: expected '%s' in '%s'", what, want,
	      err->msg);
	free(want);
}

/* Every loader on a model truncated to nothing under its map. */
static void
check_loaders(const char *dir, int fold)
{
	char *path = rs_xasprintf("%s/loaders-%d.safetensors", dir, fold);
	size_t len, i, r, c;
	unsigned char *bytes = model_image(1.0, &len);
	double *w = rs_xmalloc(64 * 48 * sizeof *w);
	rs_layer_snapshot snap;
	opened o;
	rs_error err;

	test_write_file(path, bytes, len);
	if (!open_model(&o, path, fold))
		goto out;
	/* intact: every load works */
	for (i = 0; i < o.nlayers; i++)
		CHECK(rs_layer_load(&o.layers[i], w, o.layers[i].rows, path, &err) == RS_OK,
		      "intact load of %s", o.layers[i].name);
	shrink(path, 0);
	for (i = 0; i < o.nlayers; i++) {
		const rs_layer *l = &o.layers[i];
		/* a composed layer's error names the factor it was reading */
		const char *t = l->group ? l->group->factors[0]->name : l->name;
		char *what = rs_xasprintf("fold %d, %s", fold, l->name);

		check_shrank(rs_layer_load(l, w, l->rows, path, &err), &err, path, t, what);
		check_shrank(rs_layer_load_for_spectrum(l, w, &r, &c, path, &err), &err, path,
		             t, what);
		check_shrank(rs_layer_load_tensor(l, w, path, &err), &err, path, t, what);
		check_shrank(rs_layer_snapshot_take(l, &snap, path, &err), &err, path, t, what);
		rs_layer_snapshot_free(&snap);
		free(what);
	}
	close_model(&o);
out:
	free(w);
	free(bytes);
	free(path);
}

/* A cut at a page boundary inside a.weight: what lies before it loads. */
static void
check_partial(const char *dir)
{
	char *path = rs_xasprintf("%s/partial.safetensors", dir);
	size_t len, r, c;
	unsigned char *bytes = model_image(1.0, &len);
	double *w = rs_xmalloc(64 * 48 * sizeof *w);
	long page = sysconf(_SC_PAGESIZE);
	const rs_tensor *a, *cw;
	opened o;
	rs_error err;

	test_write_file(path, bytes, len);
	if (!open_model(&o, path, 0))
		goto out;
	a = rs_model_find(o.model, "a.weight");
	cw = rs_model_find(o.model, "c.weight");
	/* the file ends inside a.weight, on the page boundary after its start */
	shrink(path, (off_t)((a->offset / (size_t)page + 2) * (size_t)page));
	CHECK(a->offset + a->nbytes > (a->offset / (size_t)page + 2) * (size_t)page,
	      "the cut is inside a.weight");
	check_shrank(rs_layer_load_for_spectrum(&o.layers[0], w, &r, &c, path, &err), &err,
	             path, "a.weight", "partial a.weight");
	check_shrank(rs_guard_copy(w, cw->data, cw->nbytes, path, cw->name, &err), &err,
	             path, "c.weight", "copy of c.weight");
	/* memory of ours is never at fault */
	CHECK(rs_guard_copy(w, bytes, 100, path, "x", &err) == RS_OK, "private copy works");
	close_model(&o);
out:
	free(w);
	free(bytes);
	free(path);
}

/* The engine: every layer FAILED with the message, with and without a
 * cache (the snapshot path and the direct one), on two threads. */
static void
check_engine(const char *dir)
{
	char *path = rs_xasprintf("%s/engine.safetensors", dir);
	char *cache = rs_xasprintf("%s/engine-cache", dir);
	size_t len, i;
	unsigned char *bytes = model_image(1.0, &len);
	int pass;

	for (pass = 0; pass < 2; pass++) {
		rs_engine_options eo = {.threads = 2, .cache_dir = pass ? cache : NULL,
		                        .statistics = true};
		rs_engine *e;
		opened o;

		test_write_file(path, bytes, len);
		if (!open_model(&o, path, 0))
			break;
		shrink(path, 0);
		e = rs_engine_start(o.layers, o.nlayers, path, &eo);
		rs_engine_wait(e);
		for (i = 0; i < o.nlayers; i++) {
			const char *msg = rs_engine_error(e, i);
			CHECK(rs_engine_state(e, i) == RS_JOB_FAILED, "engine %s (cache %d) fails",
			      o.layers[i].name, pass);
			CHECK(msg && strstr(msg, SHRANK), "engine message: %s", msg ? msg : "none");
		}
		rs_engine_free(e);
		close_model(&o);
	}
	free(bytes);
	free(cache);
	free(path);
}

/* apply on a model that shrank after its spectra: fails naming the
 * tensor, the old output is untouched and nothing else is left. */
static void
check_apply(const char *dir)
{
	char *sub = rs_xasprintf("%s/apply", dir);
	char *path = rs_xasprintf("%s/m.safetensors", sub), *out = rs_xasprintf("%s/out", sub);
	size_t len, i, olen;
	unsigned char *bytes = model_image(1.0, &len), *old;
	rs_engine_options eo = {.threads = 1, .statistics = true};
	rs_layer_analysis analyses[3];
	rs_engine *e;
	rs_plan plan;
	opened o;
	rs_error err;
	int lowrank;

	rs_mkdir_p(sub, NULL);
	for (lowrank = 0; lowrank < 2; lowrank++) {
		test_write_file(path, bytes, len);
		test_write_file(out, "old output", 10);
		if (!open_model(&o, path, 0))
			break;
		e = rs_engine_start(o.layers, o.nlayers, path, &eo);
		rs_engine_wait(e);
		for (i = 0; i < o.nlayers; i++)
			analyses[i] = rs_engine_analysis(e, i);
		rs_plan_init(&plan, o.nlayers);
		/* dense: every tensor is a copy; low rank: a.weight is computed */
		if (lowrank)
			plan.entries[0] = rs_plan_entry_lowrank(4);
		CHECK(rs_apply(o.model, o.layers, o.nlayers, analyses, &plan, NULL, out, false,
		               NULL, NULL, NULL, &err) == RS_OK, "apply on the intact file: %s", err.msg);
		test_write_file(out, "old output", 10);
		shrink(path, 0);
		check_shrank(rs_apply(o.model, o.layers, o.nlayers, analyses, &plan, NULL, out,
		                      false, NULL, NULL, NULL, &err), &err, path, "a.weight",
		             lowrank ? "apply, low rank" : "apply, copies");
		CHECK(rs_file_read_all(out, 100, &old, &olen, NULL) == RS_OK && olen == 10 &&
		      memcmp(old, "old output", 10) == 0, "the old output is untouched");
		free(old);
		CHECK(count_entries(sub) == 2, "nothing left beside it (%zu entries)",
		      count_entries(sub));
		rs_plan_free(&plan);
		rs_engine_free(e);
		close_model(&o);
	}
	free(bytes);
	free(out);
	free(path);
	free(sub);
}

/* ---- the handler: chaining, other threads, nesting ---- */

static volatile const unsigned char *touch_at;
static volatile int sink;

static void
exit_42(int sig)
{
	(void)sig;
	_exit(42);
}

static void
install_42(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = exit_42;
	sigaction(SIGBUS, &sa, NULL);
}

static void
touch(void *arg)
{
	(void)arg;
	sink = *touch_at;
}

static void
send_sigbus(void *arg)
{
	(void)arg;
	raise(SIGBUS);
}

/* Runs body in a child; returns its wait status. */
static int
in_child(void (*body)(void))
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		/* a sanitizer's report of the fault a child dies of is expected */
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		body();
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return status;
}

/* A guarded read of the shrunk map must fail cleanly (in a child: exit 3
 * if it did not). */
static void
guarded_read_fails(void)
{
	rs_error err;

	if (rs_guard_run((const void *)touch_at, 1, touch, NULL, "m", "t", &err) != RS_EIO)
		_exit(3);
}

static void
child_handler_before(void)
{
	install_42();               /* as a front end would, before any guard */
	guarded_read_fails();
	touch(NULL);                /* unguarded: reaches exit_42 */
}

static void
child_handler_after(void)
{
	guarded_read_fails();       /* our handler is installed now */
	install_42();               /* the workbench installs its own on top */
	guarded_read_fails();       /* the guard puts ours back, chaining */
	touch(NULL);
}

/* A front end's fatal-signal handler as the workbench's: it keeps what it
 * replaced, and on a signal reports (a byte down a pipe), puts that back
 * and raises the signal again for it. */
static struct sigaction replaced;
static int report_fd = -1;

static void
front_end_fatal(int sig)
{
	ssize_t n = write(report_fd, "r", 1);

	(void)n;
	sigaction(sig, &replaced, NULL);
	raise(sig);
}

static void
child_front_end(void)
{
	struct sigaction sa;

	alarm(5);                   /* a loop between the handlers would hang */
	guarded_read_fails();       /* ours is installed */
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = front_end_fatal;
	sigaction(SIGBUS, &sa, &replaced);   /* the front end's, on top */
	guarded_read_fails();       /* ours again, on top of it */
	touch(NULL);                /* reaches the front end once, then dies */
	_exit(5);
}

static void
child_default(void)
{
	guarded_read_fails();
	touch(NULL);                /* nobody's fault but ours: dies */
}

static void
child_sent_sigbus(void)
{
	rs_error err;

	install_42();
	/* a SIGBUS sent (kill, raise) is not a fault of the read: passed on
	 * even while a guard covering everything is armed */
	rs_guard_run((const void *)touch_at, 1, send_sigbus, NULL, "m", "t", &err);
	_exit(4);
}

typedef struct nested {
	const unsigned char *map;
	rs_status inner;
} nested;

static void
inner_touch(void *arg)
{
	sink = *((nested *)arg)->map;
}

static void
outer(void *arg)
{
	nested *n = arg;
	rs_error err;

	/* a fault inside the inner guard is the inner guard's ... */
	n->inner = rs_guard_run(n->map, 1, inner_touch, n, "m", "inner", &err);
	/* ... and one after it, in the outer range, the outer one's */
	sink = *n->map;
}

typedef struct thread_job {
	const rs_layer *layer;
	const char *path;
	int failures_seen;
} thread_job;

static void *
thread_main(void *arg)
{
	thread_job *j = arg;
	double *w = rs_xmalloc(64 * 48 * sizeof *w);
	rs_error err;
	int k;

	for (k = 0; k < 50; k++)
		if (rs_layer_load(j->layer, w, j->layer->rows, j->path, &err) == RS_EIO &&
		    strstr(err.msg, SHRANK) != NULL)
			j->failures_seen++;
	free(w);
	return NULL;
}

static void
check_handler(const char *dir)
{
	char *path = rs_xasprintf("%s/handler.safetensors", dir);
	size_t len, i;
	unsigned char *bytes = model_image(1.0, &len);
	pthread_t threads[4];
	thread_job jobs[4];
	nested n;
	opened o;
	rs_error err;
	int status;

	test_write_file(path, bytes, len);
	if (!open_model(&o, path, 0))
		goto out;
	shrink(path, 0);
	touch_at = o.model->tensors[0].data;

	status = in_child(child_handler_before);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
	      "a handler installed before: guard works, other faults reach it (%#x)", status);
	status = in_child(child_handler_after);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
	      "a handler installed after: guard still works, other faults reach it (%#x)",
	      status);
	status = in_child(child_default);
	/* plain: killed by SIGBUS; under ASan its handler reports and exits 1 */
	CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
	      (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3),
	      "an unguarded fault still kills (%#x)", status);
	{
		int fds[2];
		char got[8];
		ssize_t reports;

		if (pipe(fds) != 0)
			abort();
		report_fd = fds[1];
		status = in_child(child_front_end);
		close(fds[1]);
		reports = read(fds[0], got, sizeof got);
		close(fds[0]);
		CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
		      (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) < 3),
		      "a front end's handler that re-raises: the process dies of it, no loop "
		      "(%#x)", status);
		CHECK(reports == 1, "the front end's handler ran once (%zd)", reports);
	}
	status = in_child(child_sent_sigbus);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
	      "a sent SIGBUS is passed on (%#x)", status);

	n.map = o.model->tensors[0].data;
	n.inner = RS_OK;
	check_shrank(rs_guard_run(n.map, o.model->tensors[0].nbytes, outer, &n, path,
	                          "outer", &err), &err, path, "outer", "outer guard");
	CHECK(n.inner == RS_EIO, "inner guard caught its own fault");

	for (i = 0; i < 4; i++) {
		jobs[i] = (thread_job){&o.layers[i % o.nlayers], path, 0};
		pthread_create(&threads[i], NULL, thread_main, &jobs[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		CHECK(jobs[i].failures_seen == 50, "thread %zu: 50 clean failures (%d)", i,
		      jobs[i].failures_seen);
	}
	close_model(&o);
out:
	free(bytes);
	free(path);
}

/* ---- rewritten in place: same size, new bytes ---- */

static void
key_of_image(const unsigned char *bytes, size_t len, rs_cache_key *key)
{
	rs_error err;
	rs_model *m = rs_safetensors_parse("mem", bytes, len, &err);
	rs_layer *layers;

	rs_layers_discover(m, NULL, 0, NULL, &layers);
	rs_cache_key_for(&layers[0], RS_SVD_GESDD, key);
	free(layers);
	rs_model_close(m);
}

static double
sigma1_in_cache(const char *cache, const rs_cache_key *key)
{
	double *sigma = NULL, v;

	if (!rs_cache_load(cache, key, 64, 48, &sigma))
		return -1;
	v = sigma[0];
	free(sigma);
	return v;
}

static void
check_rewrite(const char *dir)
{
	char *path = rs_xasprintf("%s/rewrite.safetensors", dir);
	char *cache = rs_xasprintf("%s/rewrite-cache", dir);
	size_t len, len2, i;
	unsigned char *old = model_image(2.0, &len), *new = model_image(3.0, &len2);
	double *w = rs_xmalloc(64 * 48 * sizeof *w), *w2 = rs_xmalloc(64 * 48 * sizeof *w2);
	rs_engine_options eo = {.threads = 2, .cache_dir = cache, .method = RS_SVD_GESDD};
	rs_layer_snapshot snap;
	rs_cache_key kold, knew, ksnap;
	rs_engine *e;
	opened o;
	rs_error err;
	int fd;

	CHECK(len == len2, "same size");
	key_of_image(old, len, &kold);
	key_of_image(new, len, &knew);
	test_write_file(path, old, len);
	if (!open_model(&o, path, 0))
		goto out;
	e = rs_engine_start(o.layers, o.nlayers, path, &eo);
	rs_engine_wait(e);
	CHECK(fabs(rs_engine_spectrum(e, 0)->sigma[0] - 2.0) < 1e-5, "old spectrum");
	rs_engine_free(e);

	CHECK(rs_layer_snapshot_take(&o.layers[0], &snap, path, &err) == RS_OK, "snapshot");
	/* rewrite the file in place, as an editor saving over it would */
	fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, new, len, 0) == (ssize_t)len, "rewrite in place");
	close(fd);
	/* the map follows the file; the snapshot does not */
	rs_layer_load(&o.layers[0], w, 64, path, &err);
	rs_layer_load(&snap.layer, w2, 64, path, &err);
	{
		rs_model *mo = rs_safetensors_parse("mem", old, len, &err);
		rs_layer *lo;
		double *wo = rs_xmalloc(64 * 48 * sizeof *wo);
		rs_layers_discover(mo, NULL, 0, NULL, &lo);
		rs_layer_load(&lo[0], wo, 64, "mem", &err);
		CHECK(memcmp(wo, w2, 64 * 48 * sizeof *w) == 0, "the snapshot keeps the old bytes");
		CHECK(memcmp(wo, w, 64 * 48 * sizeof *w) != 0, "the map shows the new bytes");
		free(wo);
		free(lo);
		rs_model_close(mo);
	}
	rs_cache_key_for(&snap.layer, RS_SVD_GESDD, &ksnap);
	CHECK(memcmp(ksnap.digest, kold.digest, sizeof kold.digest) == 0,
	      "the snapshot's key is the old bytes' key");
	rs_layer_snapshot_free(&snap);

	/* the still-open model now computes the new weights' spectrum, and
	 * files it under the new bytes' key; the old entry keeps the old */
	e = rs_engine_start(o.layers, o.nlayers, path, &eo);
	rs_engine_wait(e);
	CHECK(rs_engine_state(e, 0) == RS_JOB_DONE &&
	      fabs(rs_engine_spectrum(e, 0)->sigma[0] - 3.0) < 1e-5, "new spectrum");
	rs_engine_free(e);
	CHECK(fabs(sigma1_in_cache(cache, &knew) - 3.0) < 1e-5, "new key, new spectrum");
	CHECK(fabs(sigma1_in_cache(cache, &kold) - 2.0) < 1e-5, "old key, old spectrum");
	for (i = 0; i < 2; i++) {
		/* and a fresh open of each version is served the right entry */
		test_write_file(path, i ? new : old, len);
		close_model(&o);
		if (!open_model(&o, path, 0))
			goto out;
		e = rs_engine_start(o.layers, o.nlayers, path, &eo);
		rs_engine_wait(e);
		CHECK(rs_engine_cache_hits(e) >= 1 &&
		      fabs(rs_engine_spectrum(e, 0)->sigma[0] - (i ? 3.0 : 2.0)) < 1e-5,
		      "version %zu served its own spectrum", i);
		rs_engine_free(e);
	}
	close_model(&o);
out:
	free(w);
	free(w2);
	free(old);
	free(new);
	free(cache);
	free(path);
}

int
main(void)
{
	char *dir = test_tmpdir();
	int fold;

	for (fold = 0; fold < RS_FOLD_COUNT; fold++)
		check_loaders(dir, fold);
	check_partial(dir);
	check_engine(dir);
	check_apply(dir);
	check_handler(dir);
	check_rewrite(dir);
	free(dir);
	return test_done("test-guard");
}
