/*
 * la-prune.c — magnitude statistics for pruning; see rankscope/prune.h.
 *
 * One sort of |w| per layer answers every sparsity query.  A 4096 x 4096
 * layer has 16.7M elements, so the sort is a stable LSD radix sort on the
 * bits of |w| rounded to float (non-negative floats order like their bit
 * patterns): four linear passes instead of a comparison sort, and no
 * quadratic behaviour on the long runs of equal values that quantised or
 * half-precision weights produce.  Key and element index travel packed in
 * one 64-bit word, so a pass moves one stream instead of two; stability
 * gives the tie-break by element index for free, because the elements
 * enter in index order.
 *
 * Rounding to float is exact for F32, F16 and BF16 weights.  When a value
 * is not exactly a float (F64 weights), the exact magnitudes are gathered
 * in sorted order and the runs of equal float keys re-sorted by them, so
 * the order is always "|w| ascending, then element index" on the values
 * given.  rs_prune_count_below compares the stored float magnitudes,
 * which is exact for the former and within float rounding of the
 * threshold for the latter.
 *
 * Squares are summed from the small end with compensation, so the small
 * errors users read at low sparsity keep their digits.  Peak memory is
 * what the finished statistics hold, 16 bytes per element.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/prune.h"
#include "rankscope/util.h"

/* Three passes of 11 bits cover a 32-bit key (the top digit has 10). */
#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)
#define RADIX_PASSES 3

/* Compensated (Kahan) running sum: the prefix sums add up to 2^32 terms. */
typedef struct ksum {
	double sum, carry;
} ksum;

static void
ksum_add(ksum *k, double x)
{
	double y = x - k->carry, t = k->sum + y;

	k->carry = (t - k->sum) - y;
	k->sum = t;
}

static uint32_t
float_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

static float
bits_float(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/*
 * Stable LSD radix sort of n words by their high 32 bits (the float key;
 * the low half is the element index), in three passes of 11 bits.  A
 * pass whose digit is the same for every key, such as the top digit of
 * weights in a narrow range, is skipped.  The result ends in a; tmp is
 * scratch of the same size.
 */
static void
radix_sort_high(uint64_t *a, uint64_t *tmp, size_t n)
{
	size_t (*hist)[RADIX_SIZE];
	uint64_t *src = a, *dst = tmp, *t;
	size_t i;
	unsigned pass;

	if (n < 2)
		return;
	hist = rs_xcalloc(RADIX_PASSES, sizeof *hist);
	for (i = 0; i < n; i++) {
		uint64_t u = a[i];
		hist[0][(u >> 32) & (RADIX_SIZE - 1)]++;
		hist[1][(u >> (32 + RADIX_BITS)) & (RADIX_SIZE - 1)]++;
		hist[2][u >> (32 + 2 * RADIX_BITS)]++;
	}
	for (pass = 0; pass < RADIX_PASSES; pass++) {
		unsigned shift = 32 + pass * RADIX_BITS;
		size_t *h = hist[pass], total = 0, d;

		if (h[(src[0] >> shift) & (RADIX_SIZE - 1)] == n)
			continue;
		for (d = 0; d < RADIX_SIZE; d++) {
			size_t c = h[d];
			h[d] = total;
			total += c;
		}
		for (i = 0; i < n; i++)
			dst[h[(src[i] >> shift) & (RADIX_SIZE - 1)]++] = src[i];
		t = src; src = dst; dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof *a);
	free(hist);
}

typedef struct keyed {
	double value;
	uint32_t index;
} keyed;

static int
keyed_cmp(const void *pa, const void *pb)
{
	const keyed *a = pa, *b = pb;

	if (a->value != b->value)
		return a->value < b->value ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

/*
 * Within each run of equal float keys, orders val (the exact magnitudes,
 * in sorted order) and order by val; index order is kept among equal
 * values.  Runs already in order, which are nearly all, cost one look.
 * Short runs are put right by insertion (stable), long ones by qsort on
 * (value, index).  false when memory runs out.
 */
#define INSERTION_RUN 16

static bool
refine_runs(const float *key, double *val, uint32_t *order, size_t n)
{
	size_t a = 0, b, k, t;

	while (a < n) {
		uint32_t bits = float_bits(key[a]);
		bool sorted = true;

		for (b = a + 1; b < n && float_bits(key[b]) == bits; b++)
			if (val[b] < val[b - 1])
				sorted = false;
		if (sorted) {
			/* nothing to do */
		} else if (b - a <= INSERTION_RUN) {
			for (k = a + 1; k < b; k++) {
				double v = val[k];
				uint32_t e = order[k];
				for (t = k; t > a && val[t - 1] > v; t--) {
					val[t] = val[t - 1];
					order[t] = order[t - 1];
				}
				val[t] = v;
				order[t] = e;
			}
		} else {
			keyed *run = malloc((b - a) * sizeof *run);
			if (run == NULL)
				return false;
			for (k = a; k < b; k++) {
				run[k - a].value = val[k];
				run[k - a].index = order[k];
			}
			qsort(run, b - a, sizeof *run, keyed_cmp);
			for (k = a; k < b; k++) {
				val[k] = run[k - a].value;
				order[k] = run[k - a].index;
			}
			free(run);
		}
		a = b;
	}
	return true;
}

/*
 * Sorts n squared norms ascending (ties: lower index first) into order and
 * their compensated prefix sums into prefix[n + 1].
 */
static bool
sort_norms(const double *norm_sq, size_t n, uint32_t *order, double *prefix)
{
	keyed *k = malloc((n ? n : 1) * sizeof *k);
	ksum acc = {0, 0};
	size_t i;

	if (k == NULL)
		return false;
	for (i = 0; i < n; i++) {
		k[i].value = norm_sq[i];
		k[i].index = (uint32_t)i;
	}
	qsort(k, n, sizeof *k, keyed_cmp);
	prefix[0] = 0.0;
	for (i = 0; i < n; i++) {
		order[i] = k[i].index;
		ksum_add(&acc, k[i].value);
		prefix[i + 1] = acc.sum;
	}
	free(k);
	return true;
}

static bool
line_norms(rs_magnitudes *m, const double *w, size_t ld)
{
	size_t rows = m->rows, cols = m->cols, i, j;
	double *row_sq = calloc(rows ? rows : 1, sizeof *row_sq);
	double *col_sq = calloc(cols ? cols : 1, sizeof *col_sq);
	bool ok = false;

	m->row_prefix_sq = malloc((rows + 1) * sizeof *m->row_prefix_sq);
	m->row_order = malloc((rows ? rows : 1) * sizeof *m->row_order);
	m->col_prefix_sq = malloc((cols + 1) * sizeof *m->col_prefix_sq);
	m->col_order = malloc((cols ? cols : 1) * sizeof *m->col_order);
	if (row_sq == NULL || col_sq == NULL || m->row_prefix_sq == NULL ||
	    m->row_order == NULL || m->col_prefix_sq == NULL || m->col_order == NULL)
		goto out;
	/* Column by column, so w is read in memory order.  An empty matrix
	 * may come without storage: w is not touched then. */
	for (j = 0; j < cols && rows > 0; j++) {
		const double *col = w + j * ld;
		double s = 0;
		for (i = 0; i < rows; i++) {
			double x2 = col[i] * col[i];
			s += x2;
			row_sq[i] += x2;
		}
		col_sq[j] = s;
	}
	ok = sort_norms(row_sq, rows, m->row_order, m->row_prefix_sq) &&
	     sort_norms(col_sq, cols, m->col_order, m->col_prefix_sq);
out:
	free(row_sq);
	free(col_sq);
	return ok;
}

/*
 * Fills prefix[0..count] with the compensated sums of the smallest
 * squares.  Float-exact data squares the sorted floats; otherwise the
 * exact magnitudes are gathered into prefix[1..count] first (one pass of
 * random reads), their runs put in exact order, and summed in place.
 */
static bool
sum_squares(rs_magnitudes *m, const double *w, size_t ld, bool float_exact)
{
	double *prefix = m->prefix_sq;
	ksum acc = {0, 0};
	size_t k, count = m->count, rows = m->rows;

	if (!float_exact) {
		for (k = 0; k < count; k++) {
			uint32_t e = m->order[k];
			prefix[k + 1] = fabs(ld == rows ? w[e] : w[e % rows + e / rows * ld]);
		}
		if (!refine_runs(m->sorted_abs, prefix + 1, m->order, count))
			return false;
	}
	prefix[0] = 0.0;
	for (k = 0; k < count; k++) {
		double a = float_exact ? (double)m->sorted_abs[k] : prefix[k + 1];
		ksum_add(&acc, a * a);
		prefix[k + 1] = acc.sum;
	}
	m->total_sq = prefix[count];
	return true;
}

rs_magnitudes *
rs_magnitudes_new(const double *w, size_t rows, size_t cols, size_t ld)
{
	rs_magnitudes *m;
	size_t count, alloc, i, j, k;
	uint64_t *packed = NULL, *tmp = NULL;
	bool float_exact = true;

	/* Element, row and column indices are stored as uint32_t. */
	if (rs_mul_overflows(rows, cols, &count) || count > UINT32_MAX ||
	    rows > UINT32_MAX || cols > UINT32_MAX)
		return NULL;
	m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	m->rows = rows;
	m->cols = cols;
	m->count = count;
	alloc = count ? count : 1;
	packed = malloc(alloc * sizeof *packed);
	tmp = malloc(alloc * sizeof *tmp);
	if (packed == NULL || tmp == NULL)
		goto fail;
	k = 0;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++, k++) {
			double a = fabs(w[i + j * ld]);
			float f = (float)a;
			if ((double)f != a)
				float_exact = false;
			packed[k] = (uint64_t)float_bits(f) << 32 | k;
		}
	radix_sort_high(packed, tmp, count);
	free(tmp);
	tmp = NULL;

	m->sorted_abs = malloc(alloc * sizeof *m->sorted_abs);
	m->order = malloc(alloc * sizeof *m->order);
	if (m->sorted_abs == NULL || m->order == NULL)
		goto fail;
	for (k = 0; k < count; k++) {
		m->sorted_abs[k] = bits_float((uint32_t)(packed[k] >> 32));
		m->order[k] = (uint32_t)packed[k];
	}
	free(packed);
	packed = NULL;

	m->prefix_sq = malloc((count + 1) * sizeof *m->prefix_sq);
	if (m->prefix_sq == NULL || !sum_squares(m, w, ld, float_exact) ||
	    !line_norms(m, w, ld))
		goto fail;
	return m;

fail:
	free(packed);
	free(tmp);
	rs_magnitudes_free(m);
	return NULL;
}

void
rs_magnitudes_free(rs_magnitudes *mags)
{
	if (mags == NULL)
		return;
	free(mags->sorted_abs);
	free(mags->order);
	free(mags->prefix_sq);
	free(mags->row_prefix_sq);
	free(mags->row_order);
	free(mags->col_prefix_sq);
	free(mags->col_order);
	free(mags);
}

size_t
rs_prune_dropped(size_t count, double sparsity)
{
	double d;

	/* NaN and negative sparsities drop nothing. */
	if (!(sparsity > 0))
		return 0;
	if (sparsity >= 1)
		return count;
	d = floor(sparsity * (double)count);
	return d >= (double)count ? count : (size_t)d;
}

/*
 * sqrt(prefix[d] / prefix[n]): the denominator is the same sum the
 * numerators come from, so dropping everything is exactly 1.
 */
static double
relative_error(const double *prefix, size_t n, size_t dropped)
{
	if (dropped > n)
		dropped = n;
	return prefix[n] > 0 ? sqrt(prefix[dropped] / prefix[n]) : 0.0;
}

double
rs_prune_error(const rs_magnitudes *mags, size_t dropped)
{
	return relative_error(mags->prefix_sq, mags->count, dropped);
}

double
rs_prune_rows_error(const rs_magnitudes *mags, size_t dropped_rows)
{
	return relative_error(mags->row_prefix_sq, mags->rows, dropped_rows);
}

double
rs_prune_cols_error(const rs_magnitudes *mags, size_t dropped_cols)
{
	return relative_error(mags->col_prefix_sq, mags->cols, dropped_cols);
}

size_t
rs_prune_count_below(const rs_magnitudes *mags, double threshold)
{
	/* First position whose value is not below the threshold; the sorted
	 * values are non-decreasing, so that is the count. */
	size_t lo = 0, hi = mags->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((double)mags->sorted_abs[mid] < threshold)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const char *
rs_index_format_name(rs_index_format format)
{
	switch (format) {
	case RS_INDEX_BITMAP:
		return "bitmap";
	case RS_INDEX_CSR:
		return "csr";
	}
	return "?";
}

uint64_t
rs_sparse_storage_bits(size_t rows, size_t cols, size_t nnz, unsigned value_bits,
                       rs_index_format *format)
{
	uint64_t bitmap = (uint64_t)rows * cols;
	uint64_t idx_bits = cols <= 65536 ? 16 : 32;
	uint64_t csr = 32 * ((uint64_t)rows + 1) + (uint64_t)nnz * idx_bits;
	uint64_t values = (uint64_t)nnz * value_bits;

	/* On a tie the bitmap wins: it is the simpler one to decode. */
	if (bitmap <= csr) {
		if (format != NULL)
			*format = RS_INDEX_BITMAP;
		return bitmap + values;
	}
	if (format != NULL)
		*format = RS_INDEX_CSR;
	return csr + values;
}

void
rs_prune_mask(const rs_magnitudes *mags, size_t dropped, unsigned char *keep)
{
	size_t k;

	if (dropped > mags->count)
		dropped = mags->count;
	memset(keep, 1, mags->count);
	for (k = 0; k < dropped; k++)
		keep[mags->order[k]] = 0;
}
