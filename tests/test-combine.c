/*
 * test-combine.c — the additive combination L + S (+ Q): exact recovery of
 * a low-rank-plus-spikes matrix, errors that never rise, the stopping
 * rule, storage by hand, and the promise never to lose to a single part at
 * the same storage.  The single parts are computed here independently of
 * la-combine.c: low-rank errors from a full dgesdd, pruning errors from a
 * sort, quantised errors from rs_quantize at the width found by this
 * file's own storage arithmetic.
 */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/combine.h"
#include "rankscope/prune.h"
#include "rankscope/quant.h"
#include "rankscope/util.h"
#include "testlib.h"

/* Rounding slack for errors that are relative to ||W||_F. */
#define ROUNDING 1e-12

static rs_combine_spec
spec_of(size_t rank, size_t nonzeros, bool quantize, rs_quantizer q, unsigned bits)
{
	rs_combine_spec s;

	memset(&s, 0, sizeof s);
	s.rank = rank;
	s.nonzeros = nonzeros;
	s.quantize = quantize;
	s.quantizer = q;
	s.bits = bits;
	s.value_bits = 32;
	s.max_iterations = 50;
	s.tolerance = 1e-6;
	return s;
}

static double
fro2(const double *a, size_t count)
{
	double s = 0;
	size_t i;

	for (i = 0; i < count; i++)
		s += a[i] * a[i];
	return s;
}

/* ||W - approx||_F / ||W||_F, both m x n with leading dimension m. */
static double
measured(const double *w, const double *approx, size_t count)
{
	double d = 0;
	size_t i;

	for (i = 0; i < count; i++)
		d += (w[i] - approx[i]) * (w[i] - approx[i]);
	return sqrt(d / fro2(w, count));
}

/* A layer-like matrix: decaying spectrum, a few outliers, a little noise. */
static double *
layer_like(size_t m, size_t n)
{
	size_t k = m < n ? m : n, i;
	double *s = rs_xmalloc(k * sizeof *s), *a;

	for (i = 0; i < k; i++)
		s[i] = 4.0 * pow(0.8, (double)i);
	a = test_matrix_with_spectrum(m, n, s);
	for (i = 0; i < m * n; i++) {
		a[i] += 0.01 * test_gaussian();
		if (test_uniform() < 0.01)
			a[i] += 3.0 * test_gaussian();
	}
	free(s);
	return a;
}

/* ---- single parts, computed independently -------------------------------- */

/* Quantiser storage as quant.h states it, by hand. */
static uint64_t
quant_bits_by_hand(size_t m, size_t n, rs_quantizer q, unsigned bits)
{
	uint64_t count = (uint64_t)m * n;

	switch (q) {
	case RS_QUANT_UNIFORM_TENSOR: return bits * count + 64;
	case RS_QUANT_UNIFORM_CHANNEL: return bits * count + 64 * (uint64_t)m;
	case RS_QUANT_KMEANS: return bits * count + 32 * ((uint64_t)1 << bits);
	case RS_QUANT_BINARY: return count + 32;
	default: return 2 * count + 32;
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

typedef struct singles {
	double lowrank, pruned, quant;   /* INFINITY when nothing fits */
	size_t rank, nonzeros;
	unsigned bits;
} singles;

static singles
single_parts(const double *w, size_t m, size_t n, const rs_combine_spec *spec,
             uint64_t budget)
{
	size_t k = m < n ? m : n, count = m * n, i, s;
	double *copy = rs_xmalloc(count * sizeof *copy), *sigma = rs_xmalloc(k * sizeof *sigma);
	double norm2 = fro2(w, count), tail = 0, dummy = 0;
	singles out;

	out.lowrank = out.pruned = out.quant = INFINITY;
	out.rank = out.nonzeros = 0;
	out.bits = 0;

	/* low-rank: largest r with r (m + n) value_bits <= budget */
	memcpy(copy, w, count * sizeof *copy);
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)m, (int)n, copy, (int)m, sigma, &dummy,
	                   1, &dummy, 1) != 0)
		abort();
	for (out.rank = 0; out.rank < k &&
	     (out.rank + 1) * (m + n) * spec->value_bits <= budget; out.rank++)
		;
	if (out.rank > 0) {
		for (i = k; i > out.rank; i--)
			tail += sigma[i - 1] * sigma[i - 1];
		out.lowrank = sqrt(tail / norm2);
	}

	/* pruned: largest nnz whose storage fits, by a plain scan */
	for (s = count; s > 0; s--)
		if (rs_sparse_storage_bits(m, n, s, spec->value_bits, NULL) <= budget)
			break;
	out.nonzeros = s;
	if (s > 0) {
		double dropped = 0;
		for (i = 0; i < count; i++)
			copy[i] = w[i] * w[i];
		qsort(copy, count, sizeof *copy, cmp_double);
		for (i = 0; i < count - s; i++)
			dropped += copy[i];
		out.pruned = sqrt(dropped / norm2);
	}

	/* quantised with the spec's quantiser at the widest width that fits */
	if (spec->quantize) {
		unsigned b;
		for (b = 16; b >= 1; b--)
			if (quant_bits_by_hand(m, n, spec->quantizer, b) <= budget)
				break;
		if (b >= 1) {
			rs_quant_result qr;
			rs_error err;
			CHECK(rs_quantize(w, m, n, m, spec->quantizer, b, copy, NULL, NULL, &qr,
			                  &err) == RS_OK, "rs_quantize: %s", err.msg);
			out.quant = measured(w, copy, count);
			out.bits = b;
		}
	}
	free(copy);
	free(sigma);
	return out;
}

/* ---- one run with every general property checked --------------------------- */

typedef struct progress_log {
	size_t calls;
	size_t last_iteration;
	double errors[1024];
	size_t cancel_at;       /* set *cancel after this many calls (0: never) */
	volatile int *cancel;
} progress_log;

static void
on_progress(void *userdata, size_t iteration, double rel_error)
{
	progress_log *log = userdata;

	if (log->calls < 1024)
		log->errors[log->calls] = rel_error;
	log->calls++;
	log->last_iteration = iteration;
	if (log->cancel_at && log->calls == log->cancel_at)
		*log->cancel = 1;
}

static int
spec_parts(const rs_combine_spec *spec)
{
	return (spec->rank > 0) + (spec->nonzeros > 0) + (spec->quantize ? 1 : 0);
}

/* Runs the combination and checks: errors non-increasing, the stopping
 * rule, progress reports, approx against rel_error, storage, and never
 * losing to a single part.  Returns the result (caller frees) and approx. */
static rs_combine_result
run(const double *w, size_t m, size_t n, const rs_combine_spec *spec, const char *what,
    double **approx_out)
{
	size_t count = m * n, i, it;
	double *approx = rs_xmalloc(count * sizeof *approx);
	rs_combine_result res;
	progress_log log;
	singles one;
	rs_error err;
	rs_status st;

	memset(&log, 0, sizeof log);
	st = rs_combine(w, m, n, m, spec, NULL, on_progress, &log, approx, NULL, &res, &err);
	CHECK(st == RS_OK, "%s: rs_combine: %s", what, err.msg);
	if (st != RS_OK) {
		free(approx);
		if (approx_out)
			*approx_out = NULL;
		return res;
	}
	it = res.iterations;
	CHECK(it >= 1 && it <= spec->max_iterations, "%s: %zu iterations", what, it);
	CHECK(res.errors != NULL, "%s: errors recorded", what);
	CHECK(log.calls == it && log.last_iteration == it,
	      "%s: progress called %zu times (last %zu) for %zu iterations", what, log.calls,
	      log.last_iteration, it);
	for (i = 0; i < it && i < 1024; i++)
		CHECK(log.errors[i] == res.errors[i], "%s: progress error %zu", what, i + 1);
	for (i = 0; i < it; i++)
		CHECK(res.errors[i] >= 0 && res.errors[i] <= 1 + ROUNDING,
		      "%s: error %zu = %g outside [0, 1]", what, i + 1, res.errors[i]);
	for (i = 1; i < it; i++)
		CHECK(res.errors[i] <= res.errors[i - 1] + ROUNDING,
		      "%s: error rose at iteration %zu: %.17g -> %.17g", what, i + 1,
		      res.errors[i - 1], res.errors[i]);
	/* every iteration but the last had a reason to go on */
	for (i = 1; i + 1 < it; i++)
		CHECK(res.errors[i] > 0 &&
		      res.errors[i - 1] - res.errors[i] > spec->tolerance * res.errors[i - 1],
		      "%s: iteration %zu should have stopped (%.17g -> %.17g)", what, i + 1,
		      res.errors[i - 1], res.errors[i]);
	if (spec_parts(spec) == 1)
		CHECK(it == 1, "%s: one part is a fixed point after one iteration (%zu)", what, it);
	else if (it < spec->max_iterations)
		CHECK(res.errors[it - 1] == 0 ||
		      (it >= 2 && res.errors[it - 2] - res.errors[it - 1] <=
		                  spec->tolerance * res.errors[it - 2]),
		      "%s: stopped at %zu without a reason", what, it);
	CHECK(res.storage_bits == rs_combine_storage_bits(m, n, spec), "%s: storage", what);
	CHECK_NEAR(measured(w, approx, count), res.rel_error, ROUNDING, "approx vs rel_error");
	if (res.fallback == RS_COMBINE_NONE)
		CHECK(res.rel_error == res.errors[it - 1], "%s: rel_error is the last error", what);
	else
		CHECK(res.rel_error < res.errors[it - 1],
		      "%s: a fallback (%d) must beat the combination: %.17g vs %.17g", what,
		      (int)res.fallback, res.rel_error, res.errors[it - 1]);

	one = single_parts(w, m, n, spec, res.storage_bits);
	CHECK(res.rel_error <= one.lowrank + ROUNDING,
	      "%s: %.17g loses to low-rank alone at rank %zu (%.17g)", what, res.rel_error,
	      one.rank, one.lowrank);
	CHECK(res.rel_error <= one.pruned + ROUNDING,
	      "%s: %.17g loses to pruning alone at %zu nonzeros (%.17g)", what, res.rel_error,
	      one.nonzeros, one.pruned);
	CHECK(res.rel_error <= one.quant + ROUNDING,
	      "%s: %.17g loses to quantising alone at %u bits (%.17g)", what, res.rel_error,
	      one.bits, one.quant);
	switch (res.fallback) {
	case RS_COMBINE_LOWRANK_ONLY:
		CHECK(res.fallback_rank == one.rank, "%s: fallback rank %zu, want %zu", what,
		      res.fallback_rank, one.rank);
		CHECK_NEAR(res.rel_error, one.lowrank, ROUNDING, "low-rank fallback error");
		break;
	case RS_COMBINE_SPARSE_ONLY:
		CHECK(res.fallback_nonzeros == one.nonzeros, "%s: fallback nonzeros %zu, want %zu",
		      what, res.fallback_nonzeros, one.nonzeros);
		CHECK_NEAR(res.rel_error, one.pruned, ROUNDING, "pruning fallback error");
		break;
	case RS_COMBINE_QUANT_ONLY:
		CHECK_NEAR(res.rel_error, one.quant, ROUNDING, "quantised fallback error");
		break;
	default:
		CHECK(res.fallback == RS_COMBINE_NONE, "%s: fallback %d", what, (int)res.fallback);
		CHECK(res.fallback_rank == 0 && res.fallback_nonzeros == 0,
		      "%s: no fallback, no fallback figures", what);
	}
	if (approx_out)
		*approx_out = approx;
	else
		free(approx);
	return res;
}

/* approx may be w itself: the same result in place. */
static void
check_in_place(const double *w, size_t m, size_t n, const rs_combine_spec *spec,
               const double *expected, const char *what)
{
	double *buf = rs_xmalloc(m * n * sizeof *buf);
	rs_combine_result res;
	rs_error err;

	memcpy(buf, w, m * n * sizeof *buf);
	CHECK(rs_combine(buf, m, n, m, spec, NULL, NULL, NULL, buf, NULL, &res, &err) == RS_OK,
	      "%s in place: %s", what, err.msg);
	CHECK(expected != NULL && memcmp(buf, expected, m * n * sizeof *buf) == 0,
	      "%s: in place gives the same approx", what);
	rs_combine_result_free(&res);
	free(buf);
}

/* ---- the tests ------------------------------------------------------------- */

static void
check_storage(void)
{
	rs_combine_spec s;
	size_t q;

	/* 100x60, 32-bit values; CSR row pointers 32 * 101 = 3232 bits,
	 * column indices 16 bits (n <= 65536); bitmap 6000 bits. */
	s = spec_of(5, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 5 * 160 * 32, "rank 5: 25600");
	s = spec_of(0, 50, false, RS_QUANT_UNIFORM_TENSOR, 0);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 3232 + 50 * 48,
	      "50 nonzeros: CSR 5632 < bitmap 7600");
	s = spec_of(2, 50, false, RS_QUANT_UNIFORM_TENSOR, 0);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 10240 + 5632, "rank 2 + 50 nonzeros");
	s = spec_of(0, 3000, false, RS_QUANT_UNIFORM_TENSOR, 0);
	s.value_bits = 16;
	CHECK(rs_combine_storage_bits(100, 60, &s) == 6000 + 3000 * 16,
	      "3000 16-bit nonzeros: bitmap 54000 < CSR 99232");
	s = spec_of(0, 0, true, RS_QUANT_UNIFORM_TENSOR, 4);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 24000 + 64, "uniform 4 bits");
	s = spec_of(0, 0, true, RS_QUANT_UNIFORM_CHANNEL, 4);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 24000 + 6400, "per-channel 4 bits");
	s = spec_of(0, 0, true, RS_QUANT_KMEANS, 3);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 18000 + 256, "k-means 3 bits");
	s = spec_of(0, 0, true, RS_QUANT_BINARY, 9);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 6000 + 32, "binary ignores bits");
	s = spec_of(0, 0, true, RS_QUANT_TERNARY, 7);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 12000 + 32, "ternary ignores bits");
	s = spec_of(3, 20, true, RS_QUANT_TERNARY, 0);
	CHECK(rs_combine_storage_bits(100, 60, &s) == 15360 + (3232 + 20 * 48) + 12032,
	      "rank 3 + 20 nonzeros + ternary: 31584");
	s = spec_of(1, 10, false, RS_QUANT_UNIFORM_TENSOR, 0);
	CHECK(rs_combine_storage_bits(2, 70000, &s) == 70002 * 32 + (32 * 3 + 10 * 64),
	      "n > 65536: 32-bit column indices");

	/* the quantised part's rule is the quantiser's own */
	{
		double *w = test_gaussian_matrix(30, 20), *out = rs_xmalloc(600 * sizeof *out);
		for (q = 0; q < RS_QUANT_COUNT; q++) {
			rs_quant_result qr;
			rs_error err;
			s = spec_of(0, 0, true, (rs_quantizer)q, 3);
			CHECK(rs_quantize(w, 30, 20, 30, (rs_quantizer)q, 3, out, NULL, NULL, &qr,
			                  &err) == RS_OK, "rs_quantize %s: %s",
			      rs_quantizer_name((rs_quantizer)q), err.msg);
			CHECK(rs_combine_storage_bits(30, 20, &s) == qr.storage_bits,
			      "%s: storage %llu, quantiser says %llu", rs_quantizer_name((rs_quantizer)q),
			      (unsigned long long)rs_combine_storage_bits(30, 20, &s),
			      (unsigned long long)qr.storage_bits);
			CHECK(rs_combine_storage_bits(30, 20, &s) ==
			      quant_bits_by_hand(30, 20, (rs_quantizer)q, 3), "%s: by hand",
			      rs_quantizer_name((rs_quantizer)q));
		}
		free(w);
		free(out);
	}
}

/* W = L0 + S0: rank 3 plus large spikes; rank 3 + as many nonzeros as
 * spikes gets W back. */
/* The sparse output on its own: at most `nonzeros` entries, and
 * approx - S has rank at most r (what apply factorises). */
static void
check_sparse_output(const double *w, size_t m, size_t n, const rs_combine_spec *spec,
                    const double *approx_ref)
{
	size_t count = m * n, k = m < n ? m : n, i, nnz = 0;
	double *approx = rs_xmalloc(count * sizeof *approx);
	double *sparse = rs_xmalloc(count * sizeof *sparse), *sv = rs_xmalloc(k * sizeof *sv);
	double dummy = 0;
	rs_combine_result res;
	rs_error err;

	CHECK(rs_combine(w, m, n, m, spec, NULL, NULL, NULL, approx, sparse, &res, &err) ==
	      RS_OK, "rs_combine with a sparse output");
	for (i = 0; i < count; i++) {
		nnz += sparse[i] != 0;
		CHECK(approx_ref == NULL || approx[i] == approx_ref[i], "same approx at %zu", i);
		approx[i] -= sparse[i];
	}
	CHECK(nnz <= spec->nonzeros && nnz > 0, "sparse part has %zu of at most %zu nonzeros",
	      nnz, spec->nonzeros);
	LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)m, (int)n, approx, (int)m, sv, &dummy, 1,
	               &dummy, 1);
	CHECK(spec->rank < k && sv[spec->rank] <= 1e-10 * sv[0],
	      "approx - S has rank %zu (sigma_%zu / sigma_1 = %.3g)", spec->rank,
	      spec->rank + 1, sv[spec->rank] / sv[0]);
	rs_combine_result_free(&res);
	free(approx);
	free(sparse);
	free(sv);
}

static void
check_exact_recovery(size_t m, size_t n, size_t spikes)
{
	size_t k = m < n ? m : n, count = m * n, placed = 0;
	double *s = rs_xcalloc(k, sizeof *s), *w, *approx;
	rs_combine_spec spec;
	rs_combine_result res;

	/* The spikes (5 to 8) stand well above L0's typical entries (about
	 * sigma_1 / sqrt(m n) = 0.5) yet below sigma_3 = 12, so the first
	 * rank-3 fit of W follows L0 rather than the spikes. */
	s[0] = 30; s[1] = 20; s[2] = 12;
	w = test_matrix_with_spectrum(m, n, s);
	{
		unsigned char *used = rs_xcalloc(count, 1);
		while (placed < spikes) {
			size_t at = (size_t)(test_uniform() * (double)count);
			if (used[at])
				continue;
			used[at] = 1;
			w[at] += (test_uniform() < 0.5 ? -1 : 1) * (5.0 + 3.0 * test_uniform());
			placed++;
		}
		free(used);
	}
	spec = spec_of(3, spikes, false, RS_QUANT_UNIFORM_TENSOR, 0);
	spec.max_iterations = 200;
	spec.tolerance = 0;     /* run until the error stops falling at all */
	res = run(w, m, n, &spec, "exact L+S", &approx);
	CHECK(res.rel_error < 1e-8, "L+S recovery %zux%zu: rel. error %.3g after %zu iterations",
	      m, n, res.rel_error, res.iterations);
	CHECK(res.fallback == RS_COMBINE_NONE, "recovery is the combination itself");
	CHECK(res.iterations < spec.max_iterations, "converged before the limit (%zu)",
	      res.iterations);
	if (approx)
		CHECK(measured(w, approx, count) < 1e-8, "approx is W");
	check_in_place(w, m, n, &spec, approx, "exact L+S");
	check_sparse_output(w, m, n, &spec, approx);
	rs_combine_result_free(&res);
	free(approx);
	free(w);
	free(s);
}

static void
check_specs_on(const double *w, size_t m, size_t n, const char *name)
{
	struct {
		rs_combine_spec spec;
		const char *what;
	} cases[12];
	size_t nc = 0, i;
	char what[160];

	cases[nc].spec = spec_of(4, 100, false, RS_QUANT_UNIFORM_TENSOR, 0);
	cases[nc++].what = "L+S";
	cases[nc].spec = spec_of(3, 0, true, RS_QUANT_UNIFORM_TENSOR, 2);
	cases[nc++].what = "L+Q uniform 2";
	cases[nc].spec = spec_of(2, 50, true, RS_QUANT_KMEANS, 2);
	cases[nc++].what = "L+S+Q k-means 2";
	cases[nc].spec = spec_of(3, 30, true, RS_QUANT_TERNARY, 0);
	cases[nc++].what = "L+S+Q ternary";
	cases[nc].spec = spec_of(0, 80, true, RS_QUANT_UNIFORM_CHANNEL, 3);
	cases[nc++].what = "S+Q per-channel 3";
	cases[nc].spec = spec_of(0, 40, true, RS_QUANT_BINARY, 0);
	cases[nc++].what = "S+Q binary";
	cases[nc].spec = spec_of(2, 60, true, RS_QUANT_UNIFORM_TENSOR, 3);
	cases[nc].spec.value_bits = 16;
	cases[nc++].what = "L+S+Q uniform 3, 16-bit values";
	cases[nc].spec = spec_of(5, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	cases[nc++].what = "L only";
	cases[nc].spec = spec_of(0, 200, false, RS_QUANT_UNIFORM_TENSOR, 0);
	cases[nc++].what = "S only";
	cases[nc].spec = spec_of(0, 0, true, RS_QUANT_KMEANS, 3);
	cases[nc++].what = "Q only";
	cases[nc].spec = spec_of(1, 20, true, RS_QUANT_UNIFORM_TENSOR, 1);
	cases[nc].spec.tolerance = 0;
	cases[nc].spec.max_iterations = 7;
	cases[nc++].what = "L+S+Q at the iteration limit";
	for (i = 0; i < nc; i++) {
		rs_combine_result res;
		snprintf(what, sizeof what, "%s %zux%zu %s", name, m, n, cases[i].what);
		res = run(w, m, n, &cases[i].spec, what, NULL);
		rs_combine_result_free(&res);
	}
}

/* One part alone is exactly that part's approximation of W. */
static void
check_single_part_specs(void)
{
	size_t m = 40, n = 30, count = m * n;
	double *w = layer_like(m, n);
	rs_combine_spec spec;
	rs_combine_result res;
	rs_quant_result qr;
	double *out = rs_xmalloc(count * sizeof *out);
	singles one;
	rs_error err;

	spec = spec_of(6, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	res = run(w, m, n, &spec, "rank 6 alone", NULL);
	one = single_parts(w, m, n, &spec, res.storage_bits);
	CHECK(one.rank == 6, "rank 6's budget buys rank 6");
	CHECK_NEAR(res.errors[0], one.lowrank, ROUNDING, "rank 6 alone = best rank-6 error");
	rs_combine_result_free(&res);

	spec = spec_of(0, 150, false, RS_QUANT_UNIFORM_TENSOR, 0);
	res = run(w, m, n, &spec, "150 nonzeros alone", NULL);
	one = single_parts(w, m, n, &spec, res.storage_bits);
	CHECK(one.nonzeros == 150, "150 nonzeros' budget buys 150");
	CHECK_NEAR(res.errors[0], one.pruned, ROUNDING, "pruning alone = magnitude pruning");
	rs_combine_result_free(&res);

	spec = spec_of(0, 0, true, RS_QUANT_UNIFORM_CHANNEL, 3);
	res = run(w, m, n, &spec, "per-channel 3 bits alone", NULL);
	CHECK(rs_quantize(w, m, n, m, RS_QUANT_UNIFORM_CHANNEL, 3, out, NULL, NULL, &qr, &err)
	      == RS_OK, "rs_quantize: %s", err.msg);
	CHECK_NEAR(res.errors[0], qr.rel_error, ROUNDING, "quantised alone = rs_quantize");
	rs_combine_result_free(&res);
	free(out);
	free(w);
}

/* Matrices where one part alone beats the combination at its storage. */
static void
check_fallbacks(void)
{
	size_t m = 60, n = 60, count = m * n, i;
	double *w, *approx, s[60];
	rs_combine_spec spec;
	rs_combine_result res;

	/* Exactly rank 5; rank 4 + 60 nonzeros costs 15360 + 4832 = 20192
	 * bits, which buys rank floor(20192 / 3840) = 5 alone. */
	memset(s, 0, sizeof s);
	for (i = 0; i < 5; i++)
		s[i] = 5.0 - (double)i;
	w = test_matrix_with_spectrum(m, n, s);
	spec = spec_of(4, 60, false, RS_QUANT_UNIFORM_TENSOR, 0);
	res = run(w, m, n, &spec, "rank-5 matrix, rank 4 + 60", &approx);
	CHECK(res.fallback == RS_COMBINE_LOWRANK_ONLY && res.fallback_rank == 5,
	      "rank 5 alone wins (fallback %d, rank %zu)", (int)res.fallback, res.fallback_rank);
	CHECK(res.rel_error < 1e-12, "rank 5 is exact: %.3g", res.rel_error);
	CHECK(res.errors[res.iterations - 1] > 1e-3, "the combination itself is not: %.3g",
	      res.errors[res.iterations - 1]);
	if (approx)
		CHECK(measured(w, approx, count) < 1e-12, "approx is the rank-5 truncation = W");
	check_in_place(w, m, n, &spec, approx, "low-rank fallback");
	free(approx);
	rs_combine_result_free(&res);
	free(w);

	/* A smooth spectrum, sigma_i = 0.85^i: rank 2 + 200 nonzeros costs
	 * 7680 + 10000 bits (a bitmap, 3600 + 200 * 32, beats CSR's 11552),
	 * which buys rank floor(17680 / 3840) = 4 alone, error 0.85^4 = 0.52;
	 * the nonzeros cannot make up for two singular values. */
	for (i = 0; i < 60; i++)
		s[i] = pow(0.85, (double)i);
	w = test_matrix_with_spectrum(m, n, s);
	spec = spec_of(2, 200, false, RS_QUANT_UNIFORM_TENSOR, 0);
	res = run(w, m, n, &spec, "smooth spectrum, rank 2 + 200", &approx);
	CHECK(res.storage_bits == 17680, "rank 2 + 200 nonzeros: %llu bits",
	      (unsigned long long)res.storage_bits);
	CHECK(res.fallback == RS_COMBINE_LOWRANK_ONLY && res.fallback_rank == 4,
	      "rank 4 alone wins (fallback %d, rank %zu)", (int)res.fallback, res.fallback_rank);
	{
		double tail = 0, total = 0;
		for (i = 0; i < 60; i++) {
			total += s[i] * s[i];
			if (i >= 4)
				tail += s[i] * s[i];
		}
		CHECK_NEAR(res.rel_error, sqrt(tail / total), 1e-12, "rank-4 error from the spectrum");
	}
	free(approx);
	rs_combine_result_free(&res);
	free(w);

	/* 40 spikes; rank 1 + 5 nonzeros costs 3840 + (1952 + 5 * 48) = 6032
	 * bits; CSR with 48 bits per kept value then holds (6032 - 1952) / 48
	 * = 85 of them (a bitmap only 76): all the spikes. */
	w = rs_xcalloc(count, sizeof *w);
	for (i = 0; i < 40;) {
		size_t at = (size_t)(test_uniform() * (double)count);
		if (w[at] != 0)
			continue;
		w[at] = (test_uniform() < 0.5 ? -1 : 1) * (1.0 + test_uniform());
		i++;
	}
	spec = spec_of(1, 5, false, RS_QUANT_UNIFORM_TENSOR, 0);
	res = run(w, m, n, &spec, "40 spikes, rank 1 + 5", &approx);
	CHECK(res.fallback == RS_COMBINE_SPARSE_ONLY && res.fallback_nonzeros == 85,
	      "pruning alone wins (fallback %d, %zu nonzeros)", (int)res.fallback,
	      res.fallback_nonzeros);
	CHECK(res.rel_error == 0, "keeping every spike is exact: %.3g", res.rel_error);
	if (approx)
		CHECK(memcmp(approx, w, count * sizeof *w) == 0, "approx is W bit for bit");
	check_in_place(w, m, n, &spec, approx, "pruning fallback");
	free(approx);
	rs_combine_result_free(&res);
	free(w);

	/* Values on the 2-bit uniform grid of [-1, 1]; rank 1 + a 1-bit
	 * uniform quantiser costs 3840 + 3664 = 7504 bits, enough for 2 bits
	 * alone (7264) but not 3 (10864). */
	w = rs_xmalloc(count * sizeof *w);
	for (i = 0; i < count; i++)
		w[i] = -1.0 + 2.0 / 3.0 * (double)(i < 4 ? i : (size_t)(test_uniform() * 4));
	spec = spec_of(1, 0, true, RS_QUANT_UNIFORM_TENSOR, 1);
	res = run(w, m, n, &spec, "2-bit grid, rank 1 + 1 bit", &approx);
	CHECK(res.fallback == RS_COMBINE_QUANT_ONLY, "2 bits alone wins (fallback %d)",
	      (int)res.fallback);
	CHECK(res.rel_error < 1e-12, "2 bits are exact: %.3g", res.rel_error);
	CHECK(res.fallback_rank == 0 && res.fallback_nonzeros == 0, "no rank or nonzeros");
	if (approx)
		CHECK(measured(w, approx, count) < 1e-12, "approx is the 2-bit quantisation");
	check_in_place(w, m, n, &spec, approx, "quantised fallback");
	free(approx);
	rs_combine_result_free(&res);
	free(w);
}

/* The widest quantiser the budget allows is 16 bits. */
static void
check_widest_quantiser(void)
{
	size_t m = 20, n = 12;
	double *w = test_gaussian_matrix(m, n);
	rs_combine_spec spec = spec_of(4, 0, true, RS_QUANT_UNIFORM_TENSOR, 1);
	rs_combine_result res;

	/* 4 * 32 * 32 + 240 + 64 = 4400 bits >= 16 * 240 + 64 = 3904 */
	res = run(w, m, n, &spec, "20x12, rank 4 + 1 bit", NULL);
	CHECK(res.storage_bits == 4400, "rank 4 + 1 bit: %llu bits",
	      (unsigned long long)res.storage_bits);
	CHECK(res.fallback == RS_COMBINE_QUANT_ONLY && res.rel_error < 1e-4,
	      "16 bits alone win (fallback %d, error %.3g)", (int)res.fallback, res.rel_error);
	rs_combine_result_free(&res);
	free(w);
}

/* A leading dimension beyond the rows: the padding is never read. */
static void
check_leading_dimension(void)
{
	size_t m = 30, n = 25, ld = 33, i, j;
	double *w = layer_like(m, n), *padded = rs_xmalloc(ld * n * sizeof *padded);
	double *a1 = rs_xmalloc(m * n * sizeof *a1), *a2 = rs_xmalloc(m * n * sizeof *a2);
	rs_combine_spec spec = spec_of(2, 40, true, RS_QUANT_UNIFORM_TENSOR, 2);
	rs_combine_result r1, r2;
	rs_error err;

	for (j = 0; j < n; j++)
		for (i = 0; i < ld; i++)
			padded[i + j * ld] = i < m ? w[i + j * m] : NAN;
	CHECK(rs_combine(w, m, n, m, &spec, NULL, NULL, NULL, a1, NULL, &r1, &err) == RS_OK,
	      "ld = m: %s", err.msg);
	CHECK(rs_combine(padded, m, n, ld, &spec, NULL, NULL, NULL, a2, NULL, &r2, &err) == RS_OK,
	      "ld = m + 3: %s", err.msg);
	CHECK(r1.iterations == r2.iterations && r1.rel_error == r2.rel_error &&
	      r1.fallback == r2.fallback, "same run whatever the leading dimension");
	CHECK(memcmp(a1, a2, m * n * sizeof *a1) == 0, "same approx whatever the leading dimension");
	rs_combine_result_free(&r1);
	rs_combine_result_free(&r2);
	free(w);
	free(padded);
	free(a1);
	free(a2);
}

static void
check_zero_matrix(void)
{
	double w[12], approx[12];
	rs_combine_spec spec = spec_of(1, 2, true, RS_QUANT_TERNARY, 0);
	rs_combine_result res;
	rs_error err;
	size_t i;

	memset(w, 0, sizeof w);
	for (i = 0; i < 12; i++)
		approx[i] = 1.0;
	CHECK(rs_combine(w, 3, 4, 3, &spec, NULL, NULL, NULL, approx, NULL, &res, &err) == RS_OK,
	      "zero matrix: %s", err.msg);
	CHECK(res.rel_error == 0 && res.iterations == 1 && res.errors && res.errors[0] == 0 &&
	      res.fallback == RS_COMBINE_NONE, "zero matrix is exact at once");
	for (i = 0; i < 12; i++)
		CHECK(approx[i] == 0, "zero approx [%zu]", i);
	rs_combine_result_free(&res);
}

static void
expect_reject(const double *w, size_t m, size_t n, size_t ld, const rs_combine_spec *spec,
              rs_status want, const char *needle)
{
	rs_combine_result res;
	rs_error err;
	rs_status st;

	memset(&res, 0x5a, sizeof res);
	err.msg[0] = '\0';
	st = rs_combine(w, m, n, ld, spec, NULL, NULL, NULL, NULL, NULL, &res, &err);
	CHECK(st == want, "want %s, got %s (%s)", rs_status_name(want), rs_status_name(st),
	      err.msg);
	CHECK_CONTAINS(err.msg, needle);
	CHECK(res.errors == NULL && res.iterations == 0, "failed run leaves an empty result");
	rs_combine_result_free(&res);
}

static void
check_rejects(void)
{
	size_t m = 20, n = 12;
	double *w = test_gaussian_matrix(m, n);
	rs_combine_spec spec;

	spec = spec_of(13, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "rank 13 exceeds min(rows, cols) = 12");
	spec = spec_of(12, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	{
		rs_combine_result res;
		rs_error err;
		CHECK(rs_combine(w, m, n, m, &spec, NULL, NULL, NULL, NULL, NULL, &res, &err) == RS_OK,
		      "full rank is allowed: %s", err.msg);
		CHECK(res.rel_error < 1e-14, "full rank is exact: %g", res.rel_error);
		rs_combine_result_free(&res);
	}
	spec = spec_of(0, 241, false, RS_QUANT_UNIFORM_TENSOR, 0);
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "241 nonzeros exceed the 240 elements");
	spec = spec_of(0, 0, false, RS_QUANT_UNIFORM_TENSOR, 4);
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "no part");
	spec = spec_of(0, 0, true, RS_QUANT_UNIFORM_TENSOR, 0);
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "0 bits");
	spec = spec_of(0, 0, true, RS_QUANT_KMEANS, 17);
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "17 bits");
	spec = spec_of(0, 0, true, RS_QUANT_COUNT, 4);
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "unknown quantiser");
	spec = spec_of(2, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	spec.value_bits = 0;
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "value_bits 0");
	spec = spec_of(2, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	spec.max_iterations = 0;
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "max_iterations");
	spec = spec_of(2, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	spec.tolerance = -1e-3;
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "tolerance");
	spec.tolerance = NAN;
	expect_reject(w, m, n, m, &spec, RS_EINVAL, "tolerance");
	spec = spec_of(2, 0, false, RS_QUANT_UNIFORM_TENSOR, 0);
	expect_reject(w, m, n, m - 1, &spec, RS_EINVAL, "leading dimension 19");
	w[3 + 7 * m] = NAN;
	expect_reject(w, m, n, m, &spec, RS_ENUMERIC, "element (3, 7)");
	w[3 + 7 * m] = INFINITY;
	expect_reject(w, m, n, m, &spec, RS_ENUMERIC, "not finite");
	free(w);

	/* binary and ternary ignore bits */
	w = test_gaussian_matrix(m, n);
	spec = spec_of(1, 0, true, RS_QUANT_BINARY, 0);
	{
		rs_combine_result res;
		rs_error err;
		CHECK(rs_combine(w, m, n, m, &spec, NULL, NULL, NULL, NULL, NULL, &res, &err) == RS_OK,
		      "binary at bits 0: %s", err.msg);
		rs_combine_result_free(&res);
	}
	free(w);
}

static void
check_cancel(void)
{
	size_t m = 40, n = 30;
	double *w = layer_like(m, n);
	rs_combine_spec spec = spec_of(3, 60, false, RS_QUANT_UNIFORM_TENSOR, 0);
	volatile int cancel = 1;
	rs_combine_result res;
	progress_log log;
	rs_error err;
	rs_status st;

	spec.tolerance = 0;
	spec.max_iterations = 100;
	memset(&log, 0, sizeof log);
	st = rs_combine(w, m, n, m, &spec, &cancel, on_progress, &log, NULL, NULL, &res, &err);
	CHECK(st == RS_ECANCELLED, "cancelled before the call: %s", rs_status_name(st));
	CHECK_CONTAINS(err.msg, "cancelled");
	CHECK(log.calls == 0, "no iteration ran (%zu)", log.calls);
	CHECK(res.errors == NULL && res.iterations == 0, "cancelled run leaves an empty result");
	rs_combine_result_free(&res);

	/* set from the progress callback after iteration 2: the check between
	 * iterations stops it there */
	cancel = 0;
	memset(&log, 0, sizeof log);
	log.cancel = &cancel;
	log.cancel_at = 2;
	st = rs_combine(w, m, n, m, &spec, &cancel, on_progress, &log, NULL, NULL, &res, &err);
	CHECK(st == RS_ECANCELLED, "cancelled after iteration 2: %s", rs_status_name(st));
	CHECK_CONTAINS(err.msg, "after 2 iterations");
	CHECK(log.calls == 2, "two iterations ran (%zu)", log.calls);
	CHECK(res.errors == NULL, "cancelled run frees its errors");
	rs_combine_result_free(&res);

	/* the same run uncancelled goes past iteration 2 */
	cancel = 0;
	memset(&log, 0, sizeof log);
	st = rs_combine(w, m, n, m, &spec, &cancel, on_progress, &log, NULL, NULL, &res, &err);
	CHECK(st == RS_OK && res.iterations > 2, "uncancelled: %zu iterations", res.iterations);
	rs_combine_result_free(&res);
	free(w);
}

/*
 * The parts of L + S + Q and Q + S as rs_combine_with_parts writes them:
 * the low-rank part has the spec's rank, the codes looked up in the
 * codebook are the quantised part, and L + S + codebook[codes] is exactly
 * the approximation returned.  On every quantiser, with and without L.
 */
static void
check_parts_output(void)
{
	static const rs_quantizer qs[] = { RS_QUANT_UNIFORM_TENSOR, RS_QUANT_UNIFORM_CHANNEL,
	                                   RS_QUANT_KMEANS, RS_QUANT_BINARY, RS_QUANT_TERNARY };
	size_t m = 30, n = 24, count = m * n, i, q, with_rank, combined = 0;
	double *w = layer_like(m, n);

	for (q = 0; q < sizeof qs / sizeof qs[0]; q++)
		for (with_rank = 0; with_rank < 2; with_rank++) {
			rs_combine_spec spec = {
				.rank = with_rank ? 3 : 0, .nonzeros = 40, .quantize = true,
				.quantizer = qs[q], .bits = 2, .value_bits = 32,
				.max_iterations = 30, .tolerance = 1e-9,
			};
			unsigned levels = 1u << rs_quantizer_bits(qs[q], 2);
			size_t nbook = qs[q] == RS_QUANT_UNIFORM_CHANNEL ? m * levels : levels;
			double *approx = rs_xmalloc(count * sizeof *approx);
			double *sparse = rs_xcalloc(count, sizeof *sparse);
			rs_combine_parts parts = {
				.lowrank = rs_xmalloc(count * sizeof(double)),
				.codes = rs_xmalloc(count * sizeof(uint16_t)),
				.codebook = rs_xmalloc(nbook * sizeof(double)),
			};
			rs_combine_result res;
			rs_error err;
			double worst = 0, sv[24], dummy = 0, *lr = rs_xmalloc(count * sizeof *lr);
			const char *what = rs_quantizer_name(qs[q]);

			CHECK(rs_combine_with_parts(w, m, n, m, &spec, NULL, NULL, NULL, approx, sparse,
			                            &parts, &res, &err) == RS_OK, "%s: solved", what);
			if (res.fallback != RS_COMBINE_NONE) {
				/* the parts describe the combination only */
				rs_combine_result_free(&res);
				goto next;
			}
			for (i = 0; i < count; i++) {
				size_t row = i % m, code = parts.codes[i];
				double qv;
				CHECK(code < levels, "%s: code %zu < %u levels", what, code, levels);
				qv = parts.codebook[qs[q] == RS_QUANT_UNIFORM_CHANNEL ?
				                    row * levels + code : code];
				worst = fmax(worst, fabs(parts.lowrank[i] + sparse[i] + qv - approx[i]));
			}
			combined++;
			CHECK(worst <= 1e-12 * (1 + fabs(approx[0])), "%s %s: L + S + book[codes] is the "
			      "approximation (worst %.3g)", what, with_rank ? "with L" : "no L", worst);
			memcpy(lr, parts.lowrank, count * sizeof *lr);
			LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)m, (int)n, lr, (int)m, sv, &dummy, 1,
			               &dummy, 1);
			CHECK(with_rank ? sv[3] <= 1e-10 * sv[0] : sv[0] == 0,
			      "%s: the low-rank part has rank %zu", what, spec.rank);
			rs_combine_result_free(&res);
next:
			free(lr);
			free(approx);
			free(sparse);
			free(parts.lowrank);
			free(parts.codes);
			free(parts.codebook);
		}
	/* the parts were checked on combinations, not only fallbacks */
	CHECK(combined >= 4, "%zu of 10 specs kept their combination", combined);
	free(w);
}

int
main(void)
{
	double *w;

	test_seed(20261123);
	check_storage();
	check_exact_recovery(60, 60, 12);
	check_exact_recovery(80, 50, 15);
	check_exact_recovery(45, 90, 12);
	w = test_gaussian_matrix(50, 40);
	check_specs_on(w, 50, 40, "gaussian");
	free(w);
	w = layer_like(60, 45);
	check_specs_on(w, 60, 45, "layer-like");
	free(w);
	w = layer_like(35, 70);
	check_specs_on(w, 35, 70, "wide layer-like");
	free(w);
	check_single_part_specs();
	check_fallbacks();
	check_widest_quantiser();
	check_leading_dimension();
	check_zero_matrix();
	check_rejects();
	check_cancel();
	check_parts_output();
	return test_done("test-combine");
}
