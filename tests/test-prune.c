/*
 * test-prune.c — magnitude pruning statistics against brute force: every
 * error is recomputed from an independently sorted copy for every count
 * dropped (elements, rows and columns), the mask against the set a plain
 * comparison sort picks, including matrices full of ties and F64 values
 * closer together than float can tell; storage arithmetic on cases worked
 * by hand; and a 2000 x 2000 layer built in reasonable time.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rankscope/prune.h"
#include "rankscope/util.h"
#include "testlib.h"

typedef struct pair {
	double value;
	size_t index;
} pair;

static int
pair_cmp(const void *pa, const void *pb)
{
	const pair *a = pa, *b = pb;

	if (a->value != b->value)
		return a->value < b->value ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

/* |w| with element indices (i + j rows), sorted by value then index. */
static pair *
brute_sorted(const double *w, size_t rows, size_t cols, size_t ld)
{
	pair *p = rs_xmalloc(rows * cols * sizeof *p);
	size_t i, j;

	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			p[i + j * rows].value = fabs(w[i + j * ld]);
			p[i + j * rows].index = i + j * rows;
		}
	qsort(p, rows * cols, sizeof *p, pair_cmp);
	return p;
}

/* sqrt(sum of the d smallest of n squared norms / all of them), the
 * squares sorted independently. */
static double
brute_error(const double *sq, size_t n, size_t d)
{
	pair *p = rs_xmalloc(n * sizeof *p);
	double part = 0, total = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		p[i].value = sq[i];
		p[i].index = i;
	}
	qsort(p, n, sizeof *p, pair_cmp);
	for (i = 0; i < n; i++) {
		if (i < d)
			part += p[i].value;
		total += p[i].value;
	}
	free(p);
	return total > 0 ? sqrt(part / total) : 0.0;
}

/* Checks everything rs_magnitudes says about w against brute force. */
static void
check_against_brute(const char *what, const double *w, size_t rows, size_t cols,
                    size_t ld)
{
	size_t n = rows * cols, d, i, j, k;
	rs_magnitudes *m = rs_magnitudes_new(w, rows, cols, ld);
	pair *p = brute_sorted(w, rows, cols, ld);
	double *sq = rs_xmalloc(n * sizeof *sq);
	double *row_sq = rs_xcalloc(rows, sizeof *row_sq);
	double *col_sq = rs_xcalloc(cols, sizeof *col_sq);
	unsigned char *keep = rs_xmalloc(n);
	double prev;

	CHECK(m != NULL, "%s: magnitudes built", what);
	if (m == NULL)
		return;
	CHECK(m->rows == rows && m->cols == cols && m->count == n, "%s: dimensions", what);
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double x = w[i + j * ld];
			sq[i + j * rows] = x * x;
			row_sq[i] += x * x;
			col_sq[j] += x * x;
		}

	/* the order: value ascending, ties by element index */
	for (k = 0; k < n; k++) {
		CHECK(m->order[k] == p[k].index, "%s: order[%zu] = %u, want %zu", what, k,
		      (unsigned)m->order[k], p[k].index);
		CHECK(m->sorted_abs[k] == (float)p[k].value, "%s: sorted_abs[%zu] = %.9g, want %.9g",
		      what, k, (double)m->sorted_abs[k], p[k].value);
	}

	/* unstructured errors for every d, and the mask that goes with them */
	prev = -1;
	for (d = 0; d <= n; d++) {
		double e = rs_prune_error(m, d), want = brute_error(sq, n, d);
		size_t kept = 0;
		double dropped_sq = 0;

		CHECK_NEAR(e, want, 1e-14, what);
		CHECK(e >= prev, "%s: error falls from %.17g to %.17g at d = %zu", what, prev, e, d);
		prev = e;
		rs_prune_mask(m, d, keep);
		for (k = 0; k < n; k++) {
			/* k-th smallest (brute) is dropped exactly when k < d */
			CHECK(keep[p[k].index] == (k >= d), "%s: d = %zu, element %zu kept = %d",
			      what, d, p[k].index, keep[p[k].index]);
			if (keep[k])
				kept++;
			else
				dropped_sq += sq[k];
		}
		CHECK(kept == n - d, "%s: %zu kept at d = %zu", what, kept, d);
		if (n > 0 && m->total_sq > 0)
			CHECK_NEAR(sqrt(dropped_sq / m->total_sq), e, 1e-14, "mask energy = error");
	}
	CHECK(rs_prune_error(m, n + 7) == rs_prune_error(m, n), "%s: clamped", what);

	/* rows and columns */
	prev = -1;
	for (d = 0; d <= rows; d++) {
		double e = rs_prune_rows_error(m, d);
		CHECK_NEAR(e, brute_error(row_sq, rows, d), 1e-14, "rows error");
		CHECK(e >= prev, "%s: row error falls at %zu", what, d);
		prev = e;
	}
	prev = -1;
	for (d = 0; d <= cols; d++) {
		double e = rs_prune_cols_error(m, d);
		CHECK_NEAR(e, brute_error(col_sq, cols, d), 1e-14, "cols error");
		CHECK(e >= prev, "%s: column error falls at %zu", what, d);
		prev = e;
	}
	CHECK(rs_prune_rows_error(m, rows + 3) == rs_prune_rows_error(m, rows) &&
	      rs_prune_cols_error(m, cols + 3) == rs_prune_cols_error(m, cols),
	      "%s: row/column counts clamped", what);
	for (k = 0; k < rows; k++)
		CHECK(k == 0 || row_sq[m->row_order[k - 1]] < row_sq[m->row_order[k]] ||
		      (row_sq[m->row_order[k - 1]] == row_sq[m->row_order[k]] &&
		       m->row_order[k - 1] < m->row_order[k]), "%s: row order at %zu", what, k);
	for (k = 0; k < cols; k++)
		CHECK(k == 0 || col_sq[m->col_order[k - 1]] < col_sq[m->col_order[k]] ||
		      (col_sq[m->col_order[k - 1]] == col_sq[m->col_order[k]] &&
		       m->col_order[k - 1] < m->col_order[k]), "%s: column order at %zu", what, k);

	/* count_below against a linear count, at every value and between */
	for (k = 0; k <= n; k++) {
		double t[3];
		int s;
		t[0] = k < n ? (double)m->sorted_abs[k] : 1e300;
		t[1] = k < n ? nextafter(t[0], INFINITY) : -1.0;
		t[2] = k + 1 < n ? 0.5 * ((double)m->sorted_abs[k] + m->sorted_abs[k + 1]) : 0.0;
		for (s = 0; s < 3; s++) {
			size_t want = 0;
			for (j = 0; j < n; j++)
				if ((double)(float)p[j].value < t[s])
					want++;
			CHECK(rs_prune_count_below(m, t[s]) == want,
			      "%s: count_below(%.17g) = %zu, want %zu", what, t[s],
			      rs_prune_count_below(m, t[s]), want);
		}
	}

	free(p);
	free(sq);
	free(row_sq);
	free(col_sq);
	free(keep);
	rs_magnitudes_free(m);
}

/* A rows x cols matrix inside a buffer with leading dimension ld. */
static double *
random_matrix(size_t rows, size_t cols, size_t ld, int kind)
{
	double *w = rs_xmalloc(ld * cols * sizeof *w);
	size_t i;

	for (i = 0; i < ld * cols; i++) {
		switch (kind) {
		case 0:         /* Gaussian */
			w[i] = 2.385 * test_gaussian();
			break;
		case 1:         /* integers -3..3: long runs of ties, signs mixed */
			w[i] = (double)((int)(test_uniform() * 7.0) - 3);
			break;
		default:        /* F64 values closer than a float can tell apart */
			w[i] = (test_uniform() < 0.5 ? -1 : 1) *
			       (1.0 + 1e-12 * (double)(int)(test_uniform() * 5.0));
			break;
		}
	}
	/* the padding rows must never be read: poison them */
	for (i = 0; i < ld * cols; i++)
		if (i % ld >= rows)
			w[i] = NAN;
	return w;
}

static void
check_random(void)
{
	static const size_t shapes[][3] = {
		{7, 5, 7}, {6, 9, 10}, {1, 12, 1}, {12, 1, 15}, {13, 11, 13}, {4, 4, 6},
	};
	size_t s;
	int kind;
	char what[64];

	for (kind = 0; kind < 3; kind++)
		for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
			size_t r = shapes[s][0], c = shapes[s][1], ld = shapes[s][2];
			double *w = random_matrix(r, c, ld, kind);
			snprintf(what, sizeof what, "%zux%zu ld %zu kind %d", r, c, ld, kind);
			check_against_brute(what, w, r, c, ld);
			free(w);
		}
}

static void
check_ties_and_edges(void)
{
	/* All equal: the order is the element order, and so is the mask. */
	double w[12], tiny[1000];
	rs_magnitudes *m;
	unsigned char keep[12];
	size_t k;

	for (k = 0; k < 12; k++)
		w[k] = (k % 2 ? -1.5 : 1.5);
	m = rs_magnitudes_new(w, 3, 4, 3);
	CHECK(m != NULL, "equal values");
	for (k = 0; k < 12; k++)
		CHECK(m->order[k] == k, "equal values: order[%zu] = %u", k, (unsigned)m->order[k]);
	rs_prune_mask(m, 5, keep);
	for (k = 0; k < 12; k++)
		CHECK(keep[k] == (k >= 5), "equal values: the 5 lowest indices go (%zu)", k);
	CHECK_NEAR(rs_prune_error(m, 3), 0.5, 1e-15, "3 of 12 equal values: sqrt(1/4)");
	CHECK(rs_prune_count_below(m, 1.5) == 0 && rs_prune_count_below(m, 1.5000001) == 12,
	      "count_below around a tie");
	rs_magnitudes_free(m);

	/* A zero matrix has no error to lose. */
	memset(w, 0, sizeof w);
	m = rs_magnitudes_new(w, 4, 3, 4);
	CHECK(m != NULL && rs_prune_error(m, 6) == 0 && rs_prune_rows_error(m, 2) == 0 &&
	      rs_prune_cols_error(m, 3) == 0 && m->total_sq == 0, "zero matrix errors are 0");
	rs_magnitudes_free(m);

	/* Empty matrices. */
	m = rs_magnitudes_new(w, 0, 5, 0);
	CHECK(m != NULL && m->count == 0 && rs_prune_error(m, 0) == 0 &&
	      rs_prune_cols_error(m, 5) == 0 && rs_prune_count_below(m, 1.0) == 0,
	      "0x5 matrix");
	if (m != NULL)
		rs_prune_mask(m, 3, keep);
	rs_magnitudes_free(m);
	m = rs_magnitudes_new(w, 5, 0, 5);
	CHECK(m != NULL && m->count == 0 && rs_prune_rows_error(m, 2) == 0, "5x0 matrix");
	rs_magnitudes_free(m);
	m = rs_magnitudes_new(NULL, 0, 3, 0);
	CHECK(m != NULL && m->count == 0 && m->total_sq == 0, "0x3 matrix without storage");
	rs_magnitudes_free(m);
	rs_magnitudes_free(NULL);

	/* A tiny tail under a large value keeps its digits: the prefix sums
	 * start from the small end. */
	tiny[0] = 1.0;
	for (k = 1; k < 1000; k++)
		tiny[k] = 1e-9 * (1.0 + 1e-3 * (double)k);
	m = rs_magnitudes_new(tiny, 1000, 1, 1000);
	{
		double tail = 0;
		for (k = 1; k < 1000; k++)
			tail += tiny[k] * tiny[k];
		CHECK_NEAR(rs_prune_error(m, 999), sqrt(tail / (1.0 + tail)),
		           1e-13 * sqrt(tail), "tiny tail keeps its digits");
		CHECK(rs_prune_error(m, 1000) == 1.0, "everything dropped is exactly 1");
	}
	rs_magnitudes_free(m);

	/* Hand values: |w| = 3, 4, 0, 12 -> total 169. */
	{
		double h[4] = {-3, 4, 0, 12};
		m = rs_magnitudes_new(h, 2, 2, 2);
		CHECK(m->order[0] == 2 && m->order[1] == 0 && m->order[2] == 1 && m->order[3] == 3,
		      "hand order");
		CHECK_NEAR(rs_prune_error(m, 1), 0.0, 0, "dropping the zero costs nothing");
		CHECK_NEAR(rs_prune_error(m, 3), 5.0 / 13.0, 1e-16, "dropping 0, 3, 4");
		/* rows: (-3, 0) -> 9, (4, 12) -> 160; columns: (-3, 4) -> 25, (0, 12) -> 144 */
		CHECK_NEAR(rs_prune_rows_error(m, 1), 3.0 / 13.0, 1e-16, "row 0 dropped");
		CHECK_NEAR(rs_prune_cols_error(m, 1), 5.0 / 13.0, 1e-16, "column 0 dropped");
		CHECK(m->row_order[0] == 0 && m->col_order[1] == 1, "hand row/column order");
		CHECK(rs_prune_count_below(m, 4) == 2 && rs_prune_count_below(m, 4.0001) == 3 &&
		      rs_prune_count_below(m, 0) == 0 && rs_prune_count_below(m, 100) == 4,
		      "hand count_below");
		rs_magnitudes_free(m);
	}
}

static void
check_dropped(void)
{
	CHECK(rs_prune_dropped(10, 0.3) == 3, "floor(0.3 * 10)");
	CHECK(rs_prune_dropped(7, 0.5) == 3, "floor(3.5)");
	CHECK(rs_prune_dropped(1000, 0.999) == 999, "0.999 of 1000");
	CHECK(rs_prune_dropped(10, 0.0) == 0 && rs_prune_dropped(10, -0.5) == 0 &&
	      rs_prune_dropped(10, NAN) == 0, "no sparsity drops nothing");
	CHECK(rs_prune_dropped(10, 1.0) == 10 && rs_prune_dropped(10, 2.0) == 10,
	      "full sparsity drops all");
	CHECK(rs_prune_dropped(0, 0.5) == 0, "empty layer");
}

static void
check_storage(void)
{
	rs_index_format f = RS_INDEX_CSR;

	/* 100x100, 500 kept at 32 bits: bitmap 10000 + 16000 = 26000;
	 * CSR 32 * 101 + 500 * 16 + 16000 = 27232. */
	CHECK(rs_sparse_storage_bits(100, 100, 500, 32, &f) == 26000 && f == RS_INDEX_BITMAP,
	      "100x100 nnz 500: bitmap 26000");
	/* 1000x1000, 100 kept at 16 bits: bitmap 1000000 + 1600;
	 * CSR 32032 + 1600 + 1600 = 35232. */
	f = RS_INDEX_BITMAP;
	CHECK(rs_sparse_storage_bits(1000, 1000, 100, 16, &f) == 35232 && f == RS_INDEX_CSR,
	      "1000x1000 nnz 100: CSR 35232");
	/* 2 x 70000: column indices need 32 bits.  CSR 96 + 320 + 80 = 496. */
	f = RS_INDEX_BITMAP;
	CHECK(rs_sparse_storage_bits(2, 70000, 10, 8, &f) == 496 && f == RS_INDEX_CSR,
	      "cols > 65536: 32-bit indices");
	/* 2 x 65536 still fits 16 bits: 96 + 160 + 80 = 336. */
	CHECK(rs_sparse_storage_bits(2, 65536, 10, 8, NULL) == 336, "cols = 65536: 16-bit indices");
	CHECK(rs_sparse_storage_bits(2, 65537, 10, 8, NULL) == 496, "cols = 65537: 32-bit indices");
	/* 1 x 96 with 2 kept: bitmap 96 = CSR 64 + 32; the tie goes to the bitmap. */
	f = RS_INDEX_CSR;
	CHECK(rs_sparse_storage_bits(1, 96, 2, 32, &f) == 96 + 64 && f == RS_INDEX_BITMAP,
	      "tie: bitmap");
	CHECK(rs_sparse_storage_bits(1, 97, 2, 32, &f) == 96 + 64 && f == RS_INDEX_CSR,
	      "one more column: CSR");
	/* dense layer: bitmap of 4096 x 4096 plus every value */
	CHECK(rs_sparse_storage_bits(4096, 4096, 4096 * 4096, 16, &f) ==
	      (uint64_t)4096 * 4096 * 17 && f == RS_INDEX_BITMAP, "dense 4096^2 at fp16");
	CHECK(strcmp(rs_index_format_name(RS_INDEX_BITMAP), "bitmap") == 0 &&
	      strcmp(rs_index_format_name(RS_INDEX_CSR), "csr") == 0, "format names");
}

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void
check_large(void)
{
	/* 2000 x 2000 float-valued weights, a third of them tied at zero */
	size_t n = 2000, count = n * n, k, d;
	double *w = rs_xmalloc(count * sizeof *w), t0, elapsed, prev = -1;
	rs_magnitudes *m;
	unsigned char *keep = rs_xmalloc(count);

	for (k = 0; k < count; k++)
		w[k] = test_uniform() < 1.0 / 3 ? 0.0 : (double)(float)test_gaussian();
	t0 = seconds();
	m = rs_magnitudes_new(w, n, n, n);
	elapsed = seconds() - t0;
	printf("magnitudes of a 2000x2000 layer: %.3f s\n", elapsed);
	/* Loose enough for a sanitised build on a busy machine; a sort that
	 * went quadratic on the third of the values tied at zero would not
	 * finish at all. */
	CHECK(elapsed < 10.0, "2000x2000 built in %.2f s", elapsed);
	CHECK(m != NULL, "large built");
	for (k = 1; k < count; k++)
		if (!(m->sorted_abs[k - 1] < m->sorted_abs[k] ||
		      (m->sorted_abs[k - 1] == m->sorted_abs[k] && m->order[k - 1] < m->order[k])))
			break;
	CHECK(k == count, "large: sorted with index tie-break (first break at %zu)", k);
	for (k = 0; k < count; k++)
		if ((float)fabs(w[m->order[k]]) != m->sorted_abs[k])
			break;
	CHECK(k == count, "large: order matches values (first mismatch at %zu)", k);
	for (d = 0; d <= count; d += 99991) {
		double e = rs_prune_error(m, d);
		CHECK(e >= prev, "large: monotone at %zu", d);
		prev = e;
	}
	d = rs_prune_dropped(count, 0.5);
	rs_prune_mask(m, d, keep);
	{
		double dropped_sq = 0, total = 0;
		size_t kept = 0;
		for (k = 0; k < count; k++) {
			total += w[k] * w[k];
			if (keep[k])
				kept++;
			else
				dropped_sq += w[k] * w[k];
		}
		CHECK(kept == count - d, "large: half kept");
		CHECK_NEAR(rs_prune_error(m, d), sqrt(dropped_sq / total), 1e-12, "large: error at 50%");
		CHECK_NEAR(m->total_sq, total, 1e-12 * total, "large: total");
	}
	free(keep);
	free(w);
	rs_magnitudes_free(m);
}

/*
 * A million equal values: every prefix is d x^2, so the error at d is
 * sqrt(d / count).  Adding the same rounded square a million times
 * without compensation drifts by about 1e-11; the compensated sums must
 * stay at rounding level.  The order must be the element order.
 */
static void
check_equal_values_at_scale(void)
{
	size_t n = 1000, count = n * n, d, k;
	double *w = rs_xmalloc(count * sizeof *w);
	rs_magnitudes *m;

	for (k = 0; k < count; k++)
		w[k] = k % 3 ? 0.1 : -0.1;
	m = rs_magnitudes_new(w, n, n, n);
	CHECK(m != NULL, "a million equal values");
	for (k = 0; k < count; k++)
		if (m->order[k] != k)
			break;
	CHECK(k == count, "equal values keep element order (first break at %zu)", k);
	for (d = 1; d < count; d += 77777)
		CHECK_NEAR(rs_prune_error(m, d), sqrt((double)d / (double)count), 2e-15,
		           "compensated prefix of equal squares");
	rs_magnitudes_free(m);
	free(w);
}

int
main(void)
{
	test_seed(20261123);
	check_dropped();
	check_storage();
	check_ties_and_edges();
	check_random();
	check_equal_values_at_scale();
	check_large();
	return test_done("test-prune");
}
