/*
 * bench-spectra.c — how much faster the spectrum engine computes every
 * layer's singular values than the plain way, measured in one run.
 *
 * Why: the engine (DESIGN.md §5) chooses a method per layer (a Gram matrix
 * in double or dgesdd) and runs layers concurrently; that is only worth its
 * complexity if it beats what anyone would write without it: a sequential
 * loop of LAPACKE_sgesdd (jobz='N') with OpenBLAS at its default thread
 * count.  So this program
 *   1. writes a synthetic float32 safetensors model with the shapes of a
 *      small transformer and a convolutional network (several 1024x1024,
 *      4096x1024 and 1024x4096 weights; 128x128x3x3, 256x256x3x3 and
 *      512x512x3x3 kernels folded f x (c kh kw)), whose spectra decay like
 *      trained weights' rather than being i.i.d. noise; deterministic seed;
 *   2. times the sgesdd loop over the layers rs_layers_discover finds
 *      (loading each into double, converting to float, sgesdd);
 *   3. times the engine from rs_engine_start to rs_engine_wait, cache off,
 *      in its default configuration (all CPUs, method auto); unless
 *      --no-extra, also the sgesdd loop fed the file's own order (W^T)
 *      and the engine with dgesdd forced and with one worker, to show
 *      where the gain comes from;
 *   4. checks agreement: per layer max_i |sigma_i - sigma_i(sgesdd)| /
 *      sigma_1, the worst over layers, and against dgesdd on two layers.
 * Every number comes from the same process on the same file, so the
 * ratios mean something even where the seconds do not; --repeat N runs
 * the configurations in N interleaved rounds and keeps each one's best,
 * for machines that are not idle.  GFLOP/s are model flops (rs_svd_flops
 * of the method each layer actually used) per second of wall time.  File
 * generation is not timed.
 *
 * Exit status: 0 when the default engine is at least TARGET_SPEEDUP times
 * faster than the sgesdd loop and agrees to TARGET_AGREEMENT sigma_1
 * (PASS), 1 when not (FAIL), 2 on a usage or I/O error.
 */
#include "config.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rankscope/engine.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/svd.h"
#include "rankscope/util.h"

#define TARGET_SPEEDUP 1.5
#define TARGET_AGREEMENT 1e-5
/* Decay exponent of the synthetic spectra's scales (see synth_matrix). */
#define SPECTRUM_DECAY 0.6
/* Entry standard deviation of the synthetic weights, as in common inits. */
#define WEIGHT_STD 0.02

/* ---- the synthetic model ------------------------------------------------ */

/* One family of tensors; `count` of each are written, named
 * <group><index>.<module>.weight (and .bias, a 1-D tensor that is not a
 * layer, when `bias`). */
typedef struct shape_spec {
	const char *group;
	const char *module;
	size_t ndim;
	size_t shape[4];
	bool bias;
} shape_spec;

static const shape_spec model_shapes[] = {
	{ "blocks.", "attn.out_proj", 2, { 1024, 1024 }, true },
	{ "blocks.", "mlp.fc1", 2, { 4096, 1024 }, true },
	{ "blocks.", "mlp.fc2", 2, { 1024, 4096 }, true },
	{ "stem.", "conv1", 4, { 128, 128, 3, 3 }, false },
	{ "stem.", "conv2", 4, { 256, 256, 3, 3 }, false },
	{ "stem.", "conv3", 4, { 512, 512, 3, 3 }, false },
};
#define NSHAPES (sizeof model_shapes / sizeof model_shapes[0])

typedef struct synth_tensor {
	char *name;
	size_t ndim;
	size_t shape[4];
	size_t count;
	uint64_t begin, end;       /* data offsets */
} synth_tensor;

typedef struct options {
	int count;                 /* tensors of each shape */
	int scale;                 /* divides the two leading sides */
	int big;                   /* side of one extra square layer, or 0 */
	int repeat;                /* rounds; each configuration keeps its best */
	bool extra;                /* also the diagnostic configurations */
	bool verbose;
	unsigned long long seed;
	const char *out;           /* model path to keep, or NULL for a temp file */
} options;

/* splitmix64: small, deterministic, good enough for test matrices. */
static uint64_t
rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fills v[0..n) with standard normal deviates (Box-Muller). */
static void
rng_gaussian(uint64_t *state, float *v, size_t n)
{
	const double two_pi = 6.283185307179586;
	size_t i;

	for (i = 0; i < n; i += 2) {
		double u1 = ((double)(rng_next(state) >> 11) + 0.5) * 0x1p-53;
		double u2 = (double)(rng_next(state) >> 11) * 0x1p-53;
		double r = sqrt(-2.0 * log(u1));

		v[i] = (float)(r * cos(two_pi * u2));
		if (i + 1 < n)
			v[i + 1] = (float)(r * sin(two_pi * u2));
	}
}

/*
 * An m x n row-major weight W = X diag(d) Y with Gaussian X (m x k) and
 * Y (k x n), k = min(m, n), d_j = (1 + j)^-SPECTRUM_DECAY: a heavy head
 * and a long decaying tail, as trained layers have, instead of the flat
 * Marchenko-Pastur bulk of pure noise.  For 1024x1024, sigma_10 is about
 * 0.26 sigma_1, sigma_512 about 0.014 sigma_1, the stable rank about 4.4.
 * Scaled to entry deviation WEIGHT_STD.
 */
static void
synth_matrix(float *w, size_t m, size_t n, uint64_t *rng)
{
	size_t k = m < n ? m : n, i, j;
	float *x = rs_xmalloc(m * k * sizeof *x);
	float *y = rs_xmalloc(k * n * sizeof *y);
	float *d = rs_xmalloc(k * sizeof *d);
	double sumsq = 0, scale;

	rng_gaussian(rng, x, m * k);
	rng_gaussian(rng, y, k * n);
	for (j = 0; j < k; j++)
		d[j] = (float)pow(1.0 + (double)j, -SPECTRUM_DECAY);
	for (i = 0; i < m; i++)
		for (j = 0; j < k; j++)
			x[i * k + j] *= d[j];
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m,
	            (blasint)n, (blasint)k, 1.0f, x, (blasint)k, y, (blasint)n,
	            0.0f, w, (blasint)n);
	for (i = 0; i < m * n; i++)
		sumsq += (double)w[i] * w[i];
	scale = sumsq > 0 ? WEIGHT_STD / sqrt(sumsq / (double)(m * n)) : 1.0;
	for (i = 0; i < m * n; i++)
		w[i] = (float)(w[i] * scale);
	free(x);
	free(y);
	free(d);
}

static void
put_le32(unsigned char *dst, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	dst[0] = (unsigned char)u;
	dst[1] = (unsigned char)(u >> 8);
	dst[2] = (unsigned char)(u >> 16);
	dst[3] = (unsigned char)(u >> 24);
}

/* The tensor list, in file order: per index the linear weights with their
 * biases, then the kernels. */
static synth_tensor *
plan_tensors(const options *opt, size_t *ntensors)
{
	size_t cap = (size_t)opt->count * NSHAPES * 2 + 1, n = 0, s, d;
	synth_tensor *t = rs_xcalloc(cap, sizeof *t);
	uint64_t offset = 0;
	int i;

	for (i = 0; i < opt->count; i++)
		for (s = 0; s < NSHAPES; s++) {
			const shape_spec *sp = &model_shapes[s];
			synth_tensor *w = &t[n++];

			w->name = rs_xasprintf("%s%d.%s.weight", sp->group, i,
			                       sp->module);
			w->ndim = sp->ndim;
			w->count = 1;
			for (d = 0; d < sp->ndim; d++) {
				w->shape[d] = sp->shape[d];
				if (d < 2 && opt->scale > 1)
					w->shape[d] = w->shape[d] / (size_t)opt->scale;
				if (w->shape[d] == 0)
					w->shape[d] = 1;
				w->count *= w->shape[d];
			}
			if (sp->bias) {
				synth_tensor *b = &t[n++];

				b->name = rs_xasprintf("%s%d.%s.bias", sp->group, i,
				                       sp->module);
				b->ndim = 1;
				b->shape[0] = w->shape[0];
				b->count = w->shape[0];
			}
		}
	if (opt->big > 0) {
		/* One layer big enough to be scheduled alone ("solo"), as an
		 * output head or embedding is. */
		synth_tensor *h = &t[n++];

		h->name = rs_xstrdup("head.weight");
		h->ndim = 2;
		h->shape[0] = h->shape[1] = (size_t)opt->big;
		h->count = h->shape[0] * h->shape[1];
	}
	for (s = 0; s < n; s++) {
		t[s].begin = offset;
		offset += (uint64_t)t[s].count * 4;
		t[s].end = offset;
	}
	*ntensors = n;
	return t;
}

static char *
header_json(const synth_tensor *t, size_t n, size_t *len)
{
	char *buf = NULL;
	size_t size = 0, i, d;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL) {
		perror("open_memstream");
		exit(2);
	}
	fprintf(f, "{\"__metadata__\":{\"format\":\"pt\",\"generator\":"
	        "\"rankscope bench-spectra\"}");
	for (i = 0; i < n; i++) {
		fprintf(f, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t[i].name);
		for (d = 0; d < t[i].ndim; d++)
			fprintf(f, "%s%zu", d ? "," : "", t[i].shape[d]);
		fprintf(f, "],\"data_offsets\":[%llu,%llu]}",
		        (unsigned long long)t[i].begin, (unsigned long long)t[i].end);
	}
	fputc('}', f);
	while (ftell(f) % 8 != 0)
		fputc(' ', f);
	fclose(f);
	*len = size;
	return buf;
}

/* Writes the model; returns the data bytes written, or 0 after printing
 * why it could not. */
static uint64_t
write_model(const char *path, const synth_tensor *t, size_t n,
            unsigned long long seed)
{
	size_t hlen, i, j;
	char *header = header_json(t, n, &hlen);
	unsigned char lenbytes[8];
	FILE *f = fopen(path, "wb");
	uint64_t total = 0;
	bool ok;

	if (f == NULL) {
		fprintf(stderr, "bench-spectra: %s: %s\n", path, strerror(errno));
		free(header);
		return 0;
	}
	for (i = 0; i < 8; i++)
		lenbytes[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
	ok = fwrite(lenbytes, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
	for (i = 0; ok && i < n; i++) {
		/* Each tensor has its own stream, so shapes can change without
		 * changing the others' values. */
		uint64_t rng = seed * 0x100000001b3ull + i;
		float *v = rs_xmalloc(t[i].count * sizeof *v);
		unsigned char *bytes = rs_xmalloc(t[i].count * 4);

		if (t[i].ndim == 1) {
			rng_gaussian(&rng, v, t[i].count);
			for (j = 0; j < t[i].count; j++)
				v[j] *= (float)WEIGHT_STD;
		} else {
			synth_matrix(v, t[i].shape[0], t[i].count / t[i].shape[0], &rng);
		}
		for (j = 0; j < t[i].count; j++)
			put_le32(bytes + 4 * j, v[j]);
		ok = fwrite(bytes, 1, t[i].count * 4, f) == t[i].count * 4;
		total += t[i].count * 4;
		free(v);
		free(bytes);
	}
	if (fclose(f) != 0)
		ok = false;
	free(header);
	if (!ok) {
		fprintf(stderr, "bench-spectra: %s: write failed: %s\n", path,
		        strerror(errno));
		return 0;
	}
	return total;
}

/* ---- measurement ------------------------------------------------------ */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User + system CPU seconds of the whole process, all threads. */
static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int
blas_threads(void)
{
#ifdef HAVE_OPENBLAS_GET_NUM_THREADS
	return openblas_get_num_threads();
#else
	return 0;
#endif
}

static void
set_blas_threads(int n)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
	if (n > 0)
		openblas_set_num_threads(n);
#else
	(void)n;
#endif
}

static const char *
blas_config(void)
{
#ifdef HAVE_OPENBLAS_GET_NUM_THREADS
	return openblas_get_config();
#else
	return "unknown BLAS";
#endif
}

/* First "model name" of /proc/cpuinfo, or "". */
static void
cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	buf[0] = '\0';
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');

			if (p != NULL) {
				p += strspn(p + 1, " \t") + 1;
				p[strcspn(p, "\n")] = '\0';
				snprintf(buf, len, "%s", p);
			}
			break;
		}
	fclose(f);
}

/* Everything the configurations share. */
typedef struct bench {
	const char *path;
	rs_model *model;
	rs_layer *layers;
	size_t nlayers;
	double **sigma_s;          /* sgesdd's values per layer (the baseline) */
	double *seconds_s;         /* sgesdd loop: seconds per layer */
	double *seconds_raw;       /* the same on W^T (0 when not run) */
	size_t ref[2];             /* layers checked against dgesdd */
	size_t nref;
	double *sigma_d[2];        /* dgesdd's values for them */
	int default_blas_threads;
	bool verbose;
} bench;

typedef struct outcome {
	char label[64];
	double wall, cpu, flops;
	size_t by_method[RS_SVD_GRAM + 1];
	size_t failed;
	double worst;              /* max |dsigma| / sigma_1 vs sgesdd */
	size_t worst_layer;
	double worst_ref;          /* same vs dgesdd, reference layers */
	bool single;               /* an sgesdd loop, not the engine */
	double lapack;             /* sgesdd loop: seconds inside LAPACK */
} outcome;

static size_t
short_side(const rs_layer *l)
{
	return l->rows < l->cols ? l->rows : l->cols;
}

/* max_i |a_i - b_i| / b_1 over k values (b is the reference). */
static double
disagreement(const double *a, const double *b, size_t k)
{
	double worst = 0;
	size_t i;

	if (k == 0 || b[0] <= 0)
		return 0;
	for (i = 0; i < k; i++) {
		double d = fabs(a[i] - b[i]);

		if (d > worst)
			worst = d;
	}
	return worst / b[0];
}

/* Loads a layer as column-major doubles; exits on failure (the file is
 * ours, so a failure is a bug or a full disk). */
static double *
load_layer(const bench *b, size_t i)
{
	const rs_layer *l = &b->layers[i];
	double *a = malloc(l->rows * l->cols * sizeof *a);
	rs_error err;

	if (a == NULL) {
		fprintf(stderr, "bench-spectra: out of memory for layer %s\n", l->name);
		exit(2);
	}
	if (rs_layer_load(l, a, l->rows, b->path, &err) != RS_OK) {
		fprintf(stderr, "bench-spectra: %s\n", err.msg);
		exit(2);
	}
	return a;
}

/* The layer as a column-major matrix in the file's own order: a row-major
 * rows x cols tensor (or a kernel folded by scheme 0) read straight
 * through is W^T, cols x rows, with the same singular values.  NULL when
 * the layer is folded otherwise. */
static double *
load_layer_raw(const bench *b, size_t i)
{
	const rs_layer *l = &b->layers[i];
	double *a;

	if (l->kind == RS_LAYER_CONV && l->fold != 0)
		return NULL;
	a = malloc(l->rows * l->cols * sizeof *a);
	if (a == NULL) {
		fprintf(stderr, "bench-spectra: out of memory for layer %s\n", l->name);
		exit(2);
	}
	rs_dtype_to_double(l->tensor->dtype, l->tensor->data, l->rows * l->cols,
	                   a, 1);
	return a;
}

/*
 * The baseline: what one writes without the engine.  Loading and the
 * conversion to float are timed with it, as the engine's loading is.
 * `raw` is the variant that hands sgesdd the file's order (W^T) instead
 * of W, to show how much the orientation alone is worth; its values are
 * compared with the main baseline's, which it does not replace.
 */
static void
run_baseline(bench *b, bool raw, outcome *o)
{
	double t0, t1, c0, total_lapack = 0;
	size_t i, j;
	float fdummy = 0;

	o->single = true;
	snprintf(o->label, sizeof o->label, "sgesdd loop%s, %d BLAS thread%s",
	         raw ? " on W^T" : "", b->default_blas_threads,
	         b->default_blas_threads == 1 ? "" : "s");
	set_blas_threads(b->default_blas_threads);
	c0 = cpu_seconds();
	t0 = now();
	for (i = 0; i < b->nlayers; i++) {
		const rs_layer *l = &b->layers[i];
		size_t k = short_side(l), n = l->rows * l->cols;
		size_t m_rows = l->rows, m_cols = l->cols;
		double l0 = now(), l1, s0;
		double *a = raw ? load_layer_raw(b, i) : NULL;
		float *af = rs_xmalloc((n ? n : 1) * sizeof *af);
		float *s = rs_xmalloc((k ? k : 1) * sizeof *s);
		lapack_int info;

		if (a != NULL) {
			m_rows = l->cols;
			m_cols = l->rows;
		} else {
			a = load_layer(b, i);
		}
		for (j = 0; j < n; j++)
			af[j] = (float)a[j];
		free(a);
		s0 = now();
		info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)m_rows,
		                      (lapack_int)m_cols, af, (lapack_int)m_rows, s,
		                      &fdummy, 1, &fdummy, 1);
		l1 = now();
		total_lapack += l1 - s0;
		if (info != 0) {
			o->failed++;
			fprintf(stderr, "bench-spectra: sgesdd on %s: info %d\n",
			        l->name, (int)info);
		}
		if (raw) {
			double *v = rs_xmalloc((k ? k : 1) * sizeof *v), d;

			if (b->seconds_raw[i] == 0 || l1 - l0 < b->seconds_raw[i])
				b->seconds_raw[i] = l1 - l0;
			for (j = 0; j < k; j++)
				v[j] = s[j];
			d = disagreement(v, b->sigma_s[i], k);
			if (d > o->worst) {
				o->worst = d;
				o->worst_layer = i;
			}
			for (j = 0; j < b->nref; j++)
				if (b->ref[j] == i) {
					d = disagreement(v, b->sigma_d[j], k);
					if (d > o->worst_ref)
						o->worst_ref = d;
				}
			free(v);
		} else {
			if (b->seconds_s[i] == 0 || l1 - l0 < b->seconds_s[i])
				b->seconds_s[i] = l1 - l0;
			/* Every round computes the same values; keep the first. */
			if (b->sigma_s[i] == NULL) {
				b->sigma_s[i] = rs_xmalloc((k ? k : 1) *
				                           sizeof **b->sigma_s);
				for (j = 0; j < k; j++)
					b->sigma_s[i][j] = s[j];
			}
		}
		free(af);
		free(s);
		o->flops += rs_svd_flops(l->rows, l->cols, RS_SVD_GESDD);
		o->by_method[RS_SVD_GESDD]++;
	}
	t1 = now();
	o->wall = t1 - t0;
	o->cpu = cpu_seconds() - c0;
	o->lapack = total_lapack;
}

/* dgesdd on the reference layers: one square linear weight and one kernel
 * (untimed: it is only the yardstick for both sgesdd and the engine). */
static void
run_reference(bench *b, outcome *base)
{
	size_t i, r;
	bool have_square = false, have_conv = false;
	double dummy = 0;

	for (i = 0; i < b->nlayers && b->nref < 2; i++) {
		const rs_layer *l = &b->layers[i];

		if (!have_square && l->kind == RS_LAYER_LINEAR && l->rows == l->cols) {
			b->ref[b->nref++] = i;
			have_square = true;
		} else if (!have_conv && l->kind == RS_LAYER_CONV) {
			b->ref[b->nref++] = i;
			have_conv = true;
		}
	}
	base->worst_ref = 0;
	set_blas_threads(b->default_blas_threads);
	for (r = 0; r < b->nref; r++) {
		const rs_layer *l = &b->layers[b->ref[r]];
		size_t k = short_side(l);
		double *a = load_layer(b, b->ref[r]), d;
		lapack_int info;

		b->sigma_d[r] = rs_xmalloc((k ? k : 1) * sizeof *b->sigma_d[r]);
		info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)l->rows,
		                      (lapack_int)l->cols, a, (lapack_int)l->rows,
		                      b->sigma_d[r], &dummy, 1, &dummy, 1);
		free(a);
		if (info != 0) {
			fprintf(stderr, "bench-spectra: dgesdd on %s: info %d\n",
			        l->name, (int)info);
			exit(2);
		}
		d = disagreement(b->sigma_s[b->ref[r]], b->sigma_d[r], k);
		if (d > base->worst_ref)
			base->worst_ref = d;
	}
}

/* Completion times of one engine run, for the --verbose timeline. */
typedef struct timeline {
	double t0;
	double *done;              /* seconds since start, per layer */
	rs_svd_method *used;
} timeline;

static void
on_layer_done(void *userdata, size_t index)
{
	timeline *tl = userdata;

	tl->done[index] = now() - tl->t0;
}

/* The layers in the order they finished: shows the schedule, and how long
 * the last layers ran with part of the machine idle. */
static void
print_timeline(const bench *b, const char *label, const timeline *tl)
{
	size_t *order = rs_xcalloc(b->nlayers ? b->nlayers : 1, sizeof *order);
	size_t i, j;

	for (i = 0; i < b->nlayers; i++) {
		for (j = i; j > 0 && tl->done[order[j - 1]] > tl->done[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	printf("\n  %s: layers in the order they finished\n", label);
	for (i = 0; i < b->nlayers; i++) {
		const rs_layer *l = &b->layers[order[i]];

		printf("    %7.2f s  %-34s %5zux%-5zu %s\n", tl->done[order[i]],
		       l->name, l->rows, l->cols,
		       rs_svd_method_name(tl->used[order[i]]));
	}
	free(order);
}

static void
run_engine(bench *b, const char *label, int threads, rs_svd_method method,
           bool statistics, outcome *o)
{
	rs_engine_options eo = { 0 };
	timeline tl;
	rs_engine *e;
	rs_svd_method m;
	double c0;
	size_t i, r;

	snprintf(o->label, sizeof o->label, "%s", label);
	tl.done = rs_xcalloc(b->nlayers ? b->nlayers : 1, sizeof *tl.done);
	tl.used = rs_xcalloc(b->nlayers ? b->nlayers : 1, sizeof *tl.used);
	eo.threads = threads;
	eo.method = method;
	eo.cache_dir = NULL;
	eo.statistics = statistics;
	eo.on_layer_done = on_layer_done;
	eo.userdata = &tl;
	/* The engine leaves OpenBLAS at its own thread count; start each run
	 * from the process default. */
	set_blas_threads(b->default_blas_threads);
	c0 = cpu_seconds();
	tl.t0 = now();
	e = rs_engine_start(b->layers, b->nlayers, b->path, &eo);
	rs_engine_wait(e);
	o->wall = now() - tl.t0;
	o->cpu = cpu_seconds() - c0;

	o->worst = 0;
	o->worst_layer = 0;
	for (i = 0; i < b->nlayers; i++) {
		const rs_layer *l = &b->layers[i];
		const rs_spectrum *sp = rs_engine_spectrum(e, i);
		double d;

		m = tl.used[i] = rs_engine_method(e, i);
		if (sp == NULL) {
			const char *msg = rs_engine_error(e, i);

			fprintf(stderr, "bench-spectra: %s: layer %s: %s\n", label,
			        l->name, msg ? msg : "not finished");
			o->failed++;
			continue;
		}
		if ((unsigned)m <= RS_SVD_GRAM)
			o->by_method[m]++;
		o->flops += rs_svd_flops(l->rows, l->cols, m);
		d = disagreement(sp->sigma, b->sigma_s[i], sp->k);
		if (d > o->worst) {
			o->worst = d;
			o->worst_layer = i;
		}
	}
	o->worst_ref = 0;
	for (r = 0; r < b->nref; r++) {
		const rs_spectrum *sp = rs_engine_spectrum(e, b->ref[r]);
		double d;

		if (sp == NULL)
			continue;
		d = disagreement(sp->sigma, b->sigma_d[r], sp->k);
		if (d > o->worst_ref)
			o->worst_ref = d;
	}
	/* rs_engine_free joins every worker, so no callback still writes to
	 * tl.done after it. */
	rs_engine_free(e);
	if (b->verbose)
		print_timeline(b, label, &tl);
	free(tl.done);
	free(tl.used);
}

/* ---- report --------------------------------------------------------- */

static void
print_shapes(const bench *b, int repeat)
{
	size_t i, j;
	bool *seen = rs_xcalloc(b->nlayers ? b->nlayers : 1, sizeof *seen);

	printf("\nLayers by shape (sequential sgesdd, %d BLAS threads; seconds per "
	       "layer include loading%s)\n", b->default_blas_threads,
	       repeat > 1 ? "; fastest round" : "");
	printf("  %-22s %-6s %3s  %-6s %10s %8s %10s %10s\n",
	       "matrix (rows x cols)", "kind", "n", "auto", "sgesdd s", "GFLOP/s",
	       "on W^T s", "gesdd/auto");
	printf("  %-22s %-6s %3s  %-6s %10s %8s %10s %10s\n", "", "", "", "method",
	       "per layer", "", "per layer", "flops");
	for (i = 0; i < b->nlayers; i++) {
		const rs_layer *l = &b->layers[i];
		rs_svd_method m;
		double secs = 0, secs_raw = 0, fl;
		size_t n = 0;
		char shape[32], raw[16];

		if (seen[i])
			continue;
		for (j = i; j < b->nlayers; j++) {
			const rs_layer *o = &b->layers[j];

			if (!seen[j] && o->rows == l->rows && o->cols == l->cols &&
			    o->kind == l->kind) {
				seen[j] = true;
				secs += b->seconds_s[j];
				secs_raw += b->seconds_raw[j];
				n++;
			}
		}
		m = rs_svd_choose(l->rows, l->cols, l->tensor->dtype);
		fl = rs_svd_flops(l->rows, l->cols, RS_SVD_GESDD);
		if (l->kind == RS_LAYER_CONV)
			snprintf(shape, sizeof shape, "%zux%zu (%zux%zux%zux%zu)",
			         l->rows, l->cols, l->tensor->shape[0], l->tensor->shape[1],
			         l->tensor->shape[2], l->tensor->shape[3]);
		else
			snprintf(shape, sizeof shape, "%zux%zu", l->rows, l->cols);
		if (secs_raw > 0)
			snprintf(raw, sizeof raw, "%.3f", secs_raw / (double)n);
		else
			snprintf(raw, sizeof raw, "-");
		printf("  %-22s %-6s %3zu  %-6s %10.3f %8.1f %10s %10.2f\n", shape,
		       l->kind == RS_LAYER_CONV ? "conv" : "linear", n,
		       rs_svd_method_name(m), secs / (double)n,
		       fl * (double)n / secs * 1e-9, raw,
		       fl / rs_svd_flops(l->rows, l->cols, m));
	}
	free(seen);
}

static void
print_outcomes(const outcome *o, size_t n, double baseline_wall)
{
	size_t i;

	printf("\n  %-34s %8s %9s %8s %8s  %-16s %10s %10s\n", "configuration",
	       "wall s", "speedup x", "GFLOP/s", "cpu/wall", "methods used",
	       "vs sgesdd", "vs dgesdd");
	for (i = 0; i < n; i++) {
		char methods[64], vs_s[16];

		if (o[i].by_method[RS_SVD_GESDD] && o[i].by_method[RS_SVD_GRAM])
			snprintf(methods, sizeof methods, "%zu gram %zu gesdd",
			         o[i].by_method[RS_SVD_GRAM], o[i].by_method[RS_SVD_GESDD]);
		else
			snprintf(methods, sizeof methods, "%zu %s",
			         o[i].by_method[RS_SVD_GRAM] + o[i].by_method[RS_SVD_GESDD],
			         o[i].single ? "sgesdd" : o[i].by_method[RS_SVD_GRAM] ?
			         "gram" : "dgesdd");
		if (i == 0)
			snprintf(vs_s, sizeof vs_s, "(baseline)");
		else
			snprintf(vs_s, sizeof vs_s, "%.1e", o[i].worst);
		printf("  %-34s %8.2f %9.2f %8.1f %8.2f  %-16s %10s %10.1e%s\n",
		       o[i].label, o[i].wall, baseline_wall / o[i].wall,
		       o[i].flops / o[i].wall * 1e-9, o[i].cpu / o[i].wall, methods,
		       vs_s, o[i].worst_ref, o[i].failed ? "  FAILED LAYERS" : "");
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: bench-spectra [--quick] [--count N] [--scale D] [--big N]\n"
	    "         [--repeat N] [--no-extra] [--seed N] [--keep PATH] [-v]\n"
	    "  --quick        small model (--scale 4 --count 2): a smoke test\n"
	    "  --count N      tensors of each shape (default 8)\n"
	    "  --scale D      divide the two leading sides of every shape by D\n"
	    "  --big N        add one NxN layer (e.g. 4096) for the solo phase\n"
	    "  --repeat N     N rounds; each configuration's fastest (default 1)\n"
	    "  --no-extra     only the baseline and the default engine\n"
	    "  --seed N       seed of the synthetic weights (default 1)\n"
	    "  --keep PATH    write the model to PATH and keep it\n"
	    "  -v, --verbose  print when each layer finished in each engine run\n");
}

static bool
parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static void
parse_options(int argc, char **argv, options *opt)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "count", required_argument, NULL, 'n' },
		{ "scale", required_argument, NULL, 's' },
		{ "big", required_argument, NULL, 'b' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "no-extra", no_argument, NULL, 'x' },
		{ "seed", required_argument, NULL, 'S' },
		{ "keep", required_argument, NULL, 'k' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, seed;

	opt->count = 8;
	opt->scale = 1;
	opt->big = 0;
	opt->repeat = 1;
	opt->extra = true;
	opt->verbose = false;
	opt->seed = 1;
	opt->out = NULL;
	while ((c = getopt_long(argc, argv, "qn:s:b:r:xS:k:vh", longopts,
	                        NULL)) != -1) {
		switch (c) {
		case 'q':
			opt->scale = 4;
			opt->count = 2;
			break;
		case 'n':
			if (!parse_int(optarg, 1, 1000, &opt->count))
				goto bad;
			break;
		case 's':
			if (!parse_int(optarg, 1, 1024, &opt->scale))
				goto bad;
			break;
		case 'b':
			if (!parse_int(optarg, 0, 32768, &opt->big))
				goto bad;
			break;
		case 'r':
			if (!parse_int(optarg, 1, 100, &opt->repeat))
				goto bad;
			break;
		case 'x':
			opt->extra = false;
			break;
		case 'S':
			if (!parse_int(optarg, 0, 1 << 30, &seed))
				goto bad;
			opt->seed = (unsigned long long)seed;
			break;
		case 'k':
			opt->out = optarg;
			break;
		case 'v':
			opt->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind == argc)
		return;
	fprintf(stderr, "bench-spectra: unexpected argument '%s'\n", argv[optind]);
	usage(stderr);
	exit(2);
bad:
	fprintf(stderr, "bench-spectra: bad value '%s' for an option\n", optarg);
	usage(stderr);
	exit(2);
}

/* Removes the generated model and its directory unless --keep named it. */
static void
remove_temporary(const options *opt, const char *path)
{
	char *dir, *slash;

	if (opt->out != NULL)
		return;
	unlink(path);
	dir = rs_xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		rmdir(dir);
	}
	free(dir);
}

/* Touches every page of the mapping and starts OpenBLAS's threads, so the
 * first configuration measured pays neither. */
static void
warm_up(const bench *b)
{
	volatile unsigned char sink = 0;
	float a[16 * 16], s[16], dummy = 0;
	size_t i;
	long page = sysconf(_SC_PAGESIZE);

	for (i = 0; i < b->model->map_len; i += (size_t)(page > 0 ? page : 4096))
		sink ^= b->model->map[i];
	(void)sink;
	for (i = 0; i < 16 * 16; i++)
		a[i] = (float)((i * 7919) % 101) / 101.0f;
	LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'N', 16, 16, a, 16, s, &dummy, 1,
	               &dummy, 1);
}

int
main(int argc, char **argv)
{
	static const struct config {
		enum { RUN_SGESDD, RUN_SGESDD_RAW, RUN_ENGINE } kind;
		const char *label;        /* engine runs */
		int threads;              /* 0 = all CPUs */
		rs_svd_method method;
		bool extra;               /* diagnostic: skipped by --no-extra */
		bool statistics;          /* also pruning and quantisation curves */
	} configs[] = {
		{ RUN_SGESDD, NULL, 0, RS_SVD_GESDD, false, false },
		{ RUN_SGESDD_RAW, NULL, 0, RS_SVD_GESDD, true, false },
		{ RUN_ENGINE, "engine, auto, all CPUs", 0, RS_SVD_AUTO, false, false },
		{ RUN_ENGINE, "engine, dgesdd forced, all CPUs", 0, RS_SVD_GESDD,
		  true, false },
		{ RUN_ENGINE, "engine, auto, 1 worker", 1, RS_SVD_AUTO, true, false },
		{ RUN_ENGINE, "engine + pruning/quant curves", 0, RS_SVD_AUTO, false, true },
	};
	enum { NCONFIGS = sizeof configs / sizeof configs[0] };
	options opt;
	bench b = { 0 };
	outcome out[NCONFIGS];
	size_t nout = 0, ntensors, i, engine = 0, raw = 0, curves = 0;
	int round;
	synth_tensor *tensors;
	char *path, cpu[128];
	char size_buf[32];
	uint64_t bytes;
	double t0, gen_seconds, speedup;
	rs_error err;
	time_t wall_clock = time(NULL);
	bool pass;

	parse_options(argc, argv, &opt);
	memset(out, 0, sizeof out);
	if (opt.out != NULL) {
		path = rs_xstrdup(opt.out);
	} else {
		const char *dir = getenv("TMPDIR");
		char *templ = rs_xasprintf("%s/rankscope-bench.XXXXXX",
		                           dir && *dir ? dir : "/tmp");

		if (mkdtemp(templ) == NULL) {
			fprintf(stderr, "bench-spectra: mkdtemp %s: %s\n", templ,
			        strerror(errno));
			free(templ);
			return 2;
		}
		path = rs_xasprintf("%s/bench.safetensors", templ);
		free(templ);
	}

	b.default_blas_threads = blas_threads();
	cpu_model(cpu, sizeof cpu);
	printf("rankscope bench-spectra: every layer's singular values, "
	       "engine vs a sequential sgesdd loop\n");
	printf("date:     %s", ctime(&wall_clock));
	printf("machine:  %d CPUs online%s%s\n", rs_cpu_count(), *cpu ? ", " : "",
	       cpu);
	printf("BLAS:     %s; %d threads by default\n", blas_config(),
	       b.default_blas_threads);

	t0 = now();
	tensors = plan_tensors(&opt, &ntensors);
	bytes = write_model(path, tensors, ntensors, opt.seed);
	gen_seconds = now() - t0;
	for (i = 0; i < ntensors; i++)
		free(tensors[i].name);
	free(tensors);
	if (bytes == 0) {
		remove_temporary(&opt, path);
		free(path);
		return 2;
	}

	b.path = path;
	b.verbose = opt.verbose;
	b.model = rs_model_open(path, &err);
	/* The mapping keeps the data; nothing is left in /tmp even if the
	 * run is interrupted from here on.  (The path is only used in
	 * messages after this.) */
	remove_temporary(&opt, path);
	if (b.model == NULL) {
		fprintf(stderr, "bench-spectra: %s\n", err.msg);
		free(path);
		return 2;
	}
	b.nlayers = rs_layers_discover(b.model, NULL, 0, NULL, &b.layers);
	rs_format_bytes(size_buf, sizeof size_buf, bytes);
	printf("model:    %s: %zu tensors, %zu layers, %s of float32 "
	       "(generated in %.1f s, untimed)\n",
	       opt.out != NULL ? path : "synthetic, temporary", b.model->ntensors,
	       b.nlayers, size_buf, gen_seconds);
	printf("          %d of each: 1024x1024, 4096x1024, 1024x4096 linear; "
	       "128x128x3x3, 256x256x3x3, 512x512x3x3 conv\n"
	       "          (conv folded f x (c kh kw))%s\n", opt.count,
	       opt.scale > 1 ? "; leading sides divided by --scale" : "");
	if (opt.big > 0)
		printf("          and one %dx%d layer (--big)\n", opt.big, opt.big);
	b.sigma_s = rs_xcalloc(b.nlayers ? b.nlayers : 1, sizeof *b.sigma_s);
	b.seconds_s = rs_xcalloc(b.nlayers ? b.nlayers : 1, sizeof *b.seconds_s);
	b.seconds_raw = rs_xcalloc(b.nlayers ? b.nlayers : 1,
	                           sizeof *b.seconds_raw);
	fflush(stdout);

	warm_up(&b);
	/* Rounds interleave the configurations, so a burst of other work on
	 * the machine hits them alike; each keeps its fastest round. */
	for (round = 0; round < opt.repeat; round++) {
		nout = 0;
		for (i = 0; i < NCONFIGS; i++) {
			const struct config *c = &configs[i];
			outcome o;

			if (c->extra && !opt.extra)
				continue;
			memset(&o, 0, sizeof o);
			if (c->kind == RUN_ENGINE) {
				if (engine == 0)
					engine = nout;
				if (c->statistics)
					curves = nout;
				run_engine(&b, c->label, c->threads, c->method, c->statistics, &o);
			} else {
				if (c->kind == RUN_SGESDD_RAW)
					raw = nout;
				run_baseline(&b, c->kind == RUN_SGESDD_RAW, &o);
				if (c->kind == RUN_SGESDD && round == 0)
					run_reference(&b, &o);
				else if (c->kind == RUN_SGESDD)
					o.worst_ref = out[nout].worst_ref;
			}
			if (round == 0 || o.wall < out[nout].wall) {
				if (round > 0) {
					o.worst = fmax(o.worst, out[nout].worst);
					o.worst_ref = fmax(o.worst_ref, out[nout].worst_ref);
				}
				out[nout] = o;
			}
			nout++;
		}
		if (opt.repeat > 1)
			printf("  round %d of %d done\n", round + 1, opt.repeat);
		fflush(stdout);
	}
	set_blas_threads(b.default_blas_threads);

	print_shapes(&b, opt.repeat);
	printf("  baseline total %.2f s, of which LAPACK %.2f s (the rest: "
	       "loading and conversion)\n", out[0].wall, out[0].lapack);
	printf("\nResults");
	if (opt.repeat > 1)
		printf(", fastest of %d rounds per configuration", opt.repeat);
	printf("\n  wall: rs_engine_start to rs_engine_wait, or the whole sgesdd "
	       "loop; speedup: baseline wall / wall\n"
	       "  GFLOP/s: rs_svd_flops of the method each layer used, summed, "
	       "/ wall; cpu/wall: busy cores\n"
	       "  vs sgesdd, vs dgesdd: worst over layers of max_i |dsigma_i| / "
	       "sigma_1\n");
	print_outcomes(out, nout, out[0].wall);
	if (curves > 0) {
		/* the same engine run with the statistics on, against it off */
		double extra = out[curves].wall - out[engine].wall;
		printf("  pruning and quantisation curves (sorted magnitudes, 5 quantisers x "
		       "8 widths): %.2f s more, %.2f x the spectrum engine's time\n", extra,
		       extra / out[engine].wall);
	}
	if (b.nref > 0) {
		printf("  dgesdd reference layers:");
		for (i = 0; i < b.nref; i++)
			printf(" %s (%zux%zu)", b.layers[b.ref[i]].name,
			       b.layers[b.ref[i]].rows, b.layers[b.ref[i]].cols);
		printf("\n");
	}
	if (out[engine].worst > 0)
		printf("  worst layer vs sgesdd (default engine): %s\n",
		       b.layers[out[engine].worst_layer].name);
	if (raw > 0)
		printf("  engine vs the sgesdd loop on W^T: %.2fx\n",
		       out[raw].wall / out[engine].wall);

	speedup = out[0].wall / out[engine].wall;
	pass = speedup >= TARGET_SPEEDUP &&
	       out[engine].worst <= TARGET_AGREEMENT &&
	       out[engine].failed == 0 && out[0].failed == 0;
	printf("\nengine vs sequential sgesdd: %.2fx faster, "
	       "worst |dsigma|/sigma1 = %.1e (target >= %.1fx, <= %.0e): %s\n",
	       speedup, out[engine].worst, TARGET_SPEEDUP, TARGET_AGREEMENT,
	       pass ? "PASS" : "FAIL");

	for (i = 0; i < b.nlayers; i++)
		free(b.sigma_s[i]);
	for (i = 0; i < b.nref; i++)
		free(b.sigma_d[i]);
	free(b.sigma_s);
	free(b.seconds_s);
	free(b.seconds_raw);
	free(b.layers);
	rs_model_close(b.model);
	free(path);
	return pass ? 0 : 1;
}
