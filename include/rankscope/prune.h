/*
 * prune.h — magnitude pruning (la-prune.c): exact errors at any sparsity
 * from one sort per layer.
 *
 * Unstructured: dropping the d smallest |w| of an m x n layer leaves the
 * exact relative error sqrt(sum of those d squares) / ||W||_F.  The
 * magnitudes are sorted once (ties broken by element index, so the set
 * dropped is deterministic and apply can reproduce it) and the squares are
 * prefix-summed from the small end, so each query is O(1) and accurate
 * for small errors.  Structured: whole rows (output channels) or columns
 * (input channels) by L2 norm, likewise.
 *
 * Storage of a sparse layer is counted honestly: the kept values plus an
 * index, either a bitmap (m n bits) or CSR (32 (m + 1) bits of row
 * pointers plus a column index per kept value, 16 bits when n <= 65536,
 * else 32), whichever is smaller.
 */
#ifndef RANKSCOPE_PRUNE_H
#define RANKSCOPE_PRUNE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rs_magnitudes {
	size_t rows, cols, count;     /* count = rows * cols */
	float *sorted_abs;            /* count values, ascending */
	uint32_t *order;              /* element index (i + j * rows) of each sorted value */
	double *prefix_sq;            /* count + 1: sum of the j smallest squares */
	double *row_prefix_sq;        /* rows + 1: sums of the j smallest squared row norms */
	uint32_t *row_order;          /* rows by ascending norm (ties: lower index first) */
	double *col_prefix_sq;        /* cols + 1 */
	uint32_t *col_order;
	double total_sq;              /* ||W||_F^2 */
} rs_magnitudes;

/*
 * Builds the statistics of a column-major m x n matrix (leading dimension
 * ld).  NULL when memory runs out or count exceeds UINT32_MAX.
 */
rs_magnitudes *rs_magnitudes_new(const double *w, size_t rows, size_t cols, size_t ld);
void rs_magnitudes_free(rs_magnitudes *mags);

/* Elements dropped at sparsity p in [0, 1]: floor(p * count). */
size_t rs_prune_dropped(size_t count, double sparsity);

/* Relative Frobenius errors of dropping the `dropped` smallest elements,
 * rows or columns (clamped to the available count). */
double rs_prune_error(const rs_magnitudes *mags, size_t dropped);
double rs_prune_rows_error(const rs_magnitudes *mags, size_t dropped_rows);
double rs_prune_cols_error(const rs_magnitudes *mags, size_t dropped_cols);

/* How many elements have |w| < threshold (binary search), for one global
 * threshold across layers. */
size_t rs_prune_count_below(const rs_magnitudes *mags, double threshold);

typedef enum rs_index_format {
	RS_INDEX_BITMAP,
	RS_INDEX_CSR
} rs_index_format;

const char *rs_index_format_name(rs_index_format format);

/* Bits to store nnz kept values of value_bits each in an m x n layer, and
 * the cheaper index format (written to *format when non-NULL). */
uint64_t rs_sparse_storage_bits(size_t rows, size_t cols, size_t nnz,
                                unsigned value_bits, rs_index_format *format);

/* Marks, in keep[count] (column-major element order), the elements that
 * survive dropping the `dropped` smallest: exactly the set the error
 * queries describe. */
void rs_prune_mask(const rs_magnitudes *mags, size_t dropped, unsigned char *keep);

#endif
