/* la-outcurve.c — output errors of pruning and quantisation on G; see
 * rankscope/outcurve.h. */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/outcurve.h"
#include "rankscope/util.h"

void
rs_out_curves_free(rs_out_curves *c)
{
	if (!c)
		return;
	free(c->prune);
	free(c->prune_scored);
	free(c->scored_order);
	free(c->scored_fro);
	free(c->drop_rows);
	free(c->drop_cols);
	free(c);
}

/* tr(A G A^T) of a column-major rows x cols matrix (scratch rows x cols). */
static double
gram_trace(const double *a, size_t rows, size_t cols, const double *g, double *scratch)
{
	double t = 0;
	size_t i;

	cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)rows, (int)cols, 1.0, g,
	            (int)cols, a, (int)rows, 0.0, scratch, (int)rows);
	for (i = 0; i < rows * cols; i++)
		t += scratch[i] * a[i];
	return t;
}

/* The drop curve of W along `order` (W's element indices i + j rows), into
 * curve (count + 1).  y (rows x cols, row-major) is scratch: y[i][.] =
 * sum over dropped k in row i of w_ik G[k][.]. */
static void
drop_curve(const double *w, size_t rows, size_t cols, const double *g, const uint32_t *order,
           double *y, double *curve)
{
	size_t count = rows * cols, d, c;

	memset(y, 0, count * sizeof *y);
	curve[0] = 0;
	for (d = 0; d < count; d++) {
		size_t e = order[d], i = e % rows, j = e / rows;
		double wij = w[e], *yi = y + i * cols;
		const double *gj = g + j * cols;

		curve[d + 1] = curve[d] + wij * wij * gj[j] + 2 * wij * yi[j];
		for (c = 0; c < cols; c++)
			yi[c] += wij * gj[c];
	}
}

/* Elements of W by ascending score w_ij^2 G_jj (ties: lower index). */
typedef struct scored_elem {
	double score;
	uint32_t index;
} scored_elem;

static int
compare_scored(const void *x, const void *y)
{
	const scored_elem *a = x, *b = y;

	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Channels: output rows of W (i) or input columns (j), dropped in the order
 * of the weight figures; map the magnitudes' buffer order to W's. */
static void
channel_curves(rs_out_curves *c, const double *w, const double *g,
               const rs_magnitudes *mags, bool transposed, double *scratch)
{
	size_t m = c->rows, n = c->cols, d, i, j, k;
	const uint32_t *rows_order = transposed ? mags->col_order : mags->row_order;
	const uint32_t *cols_order = transposed ? mags->row_order : mags->col_order;
	double *h = scratch;   /* n x n: W^T W, once the rows are done */

	/* rows: each dropped row adds w_i G w_i^T, no cross terms; scratch
	 * (m x n) = W G first */
	cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)m, (int)n, 1.0, g, (int)n, w,
	            (int)m, 0.0, scratch, (int)m);
	c->drop_rows[0] = 0;
	for (d = 0; d < m; d++) {
		size_t r = rows_order[d];
		double v = 0;

		for (j = 0; j < n; j++)
			v += w[r + j * m] * scratch[r + j * m];
		c->drop_rows[d + 1] = c->drop_rows[d] + v;
	}
	/* columns: dropping set D adds sum_{j,k in D} H_jk G_jk, H = W^T W */
	cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, (int)n, (int)m, 1.0, w, (int)m,
	            0.0, h, (int)n);
	for (j = 0; j < n; j++)
		for (i = j + 1; i < n; i++)
			h[j + i * n] = h[i + j * n];
	c->drop_cols[0] = 0;
	for (d = 0; d < n; d++) {
		size_t a = cols_order[d];
		double v = h[a + a * n] * g[a + a * n];

		for (k = 0; k < d; k++) {
			size_t b = cols_order[k];
			v += 2 * h[a + b * n] * g[a + b * n];
		}
		c->drop_cols[d + 1] = c->drop_cols[d] + v;
	}
}

static rs_status
quant_curves(rs_out_curves *c, const double *w, const double *g, double *q, double *scratch,
             rs_error *err)
{
	size_t m = c->rows, n = c->cols, i;
	int qz;
	unsigned b;

	for (qz = 0; qz < RS_QUANT_COUNT; qz++) {
		bool fixed = qz == RS_QUANT_BINARY || qz == RS_QUANT_TERNARY;

		c->quant[qz][0] = c->total;
		for (b = 1; b <= RS_OUT_QUANT_BITS; b++) {
			rs_quant_result r;
			rs_status st;

			if (fixed && b > 1) {
				c->quant[qz][b] = c->quant[qz][1];
				continue;
			}
			st = rs_quantize(w, m, n, m, (rs_quantizer)qz, b, q, NULL, NULL, &r, err);
			if (st != RS_OK)
				return st;
			for (i = 0; i < m * n; i++)
				q[i] = w[i] - q[i];
			c->quant[qz][b] = gram_trace(q, m, n, g, scratch);
		}
	}
	return RS_OK;
}

rs_out_curves *
rs_out_curves_new(const double *w, size_t rows, size_t cols, const double *g,
                  const rs_magnitudes *mags, bool mags_transposed, rs_error *err)
{
	size_t count = rows * cols, e, i, j;
	rs_out_curves *c = calloc(1, sizeof *c);
	double *y = NULL, *scratch = NULL;
	scored_elem *s = NULL;
	uint32_t *mag_order = NULL;

	if (!c)
		goto oom;
	c->rows = rows;
	c->cols = cols;
	c->count = count;
	c->prune = malloc((count + 1) * sizeof *c->prune);
	c->prune_scored = malloc((count + 1) * sizeof *c->prune_scored);
	c->scored_order = malloc((count ? count : 1) * sizeof *c->scored_order);
	c->scored_fro = malloc((count + 1) * sizeof *c->scored_fro);
	c->drop_rows = malloc((rows + 1) * sizeof *c->drop_rows);
	c->drop_cols = malloc((cols + 1) * sizeof *c->drop_cols);
	y = malloc((count > cols * cols ? count : cols * cols) * sizeof *y);
	scratch = malloc((count > cols * cols ? count : cols * cols) * sizeof *scratch);
	s = malloc((count ? count : 1) * sizeof *s);
	mag_order = calloc(count ? count : 1, sizeof *mag_order);
	if (!c->prune || !c->prune_scored || !c->scored_order || !c->scored_fro || !c->drop_rows ||
	    !c->drop_cols || !y || !scratch || !s || !mag_order)
		goto oom;

	c->total = gram_trace(w, rows, cols, g, scratch);
	/* the magnitude order, in W's coordinates */
	for (e = 0; e < count; e++) {
		uint32_t b = mags->order[e];
		if (mags_transposed) {
			/* buffer W^T is cols x rows: element (j, i) at j + i cols */
			j = b % cols;
			i = b / cols;
			mag_order[e] = (uint32_t)(i + j * rows);
		} else {
			mag_order[e] = b;
		}
	}
	drop_curve(w, rows, cols, g, mag_order, y, c->prune);
	for (e = 0; e < count; e++) {
		s[e].score = w[e] * w[e] * g[(e / rows) * (cols + 1)];
		s[e].index = (uint32_t)e;
	}
	qsort(s, count, sizeof *s, compare_scored);
	c->scored_fro[0] = 0;
	c->fro_total = 0;
	for (e = 0; e < count; e++) {
		double v = w[s[e].index];

		c->scored_order[e] = s[e].index;
		c->scored_fro[e + 1] = c->scored_fro[e] + v * v;
		c->fro_total += w[e] * w[e];
	}
	drop_curve(w, rows, cols, g, c->scored_order, y, c->prune_scored);
	channel_curves(c, w, g, mags, mags_transposed, scratch);
	if (quant_curves(c, w, g, y, scratch, err) != RS_OK) {
		free(y);
		free(scratch);
		free(s);
		free(mag_order);
		rs_out_curves_free(c);
		return NULL;
	}
	free(y);
	free(scratch);
	free(s);
	free(mag_order);
	return c;
oom:
	free(y);
	free(scratch);
	free(s);
	free(mag_order);
	rs_out_curves_free(c);
	rs_error_set(err, RS_ENOMEM, "out of memory for the output curves of a %zu x %zu layer",
	             rows, cols);
	return NULL;
}

static double
relative(const rs_out_curves *c, double v)
{
	if (!(c->total > 0))
		return NAN;
	return v > 0 ? sqrt(v / c->total) : 0;
}

double
rs_out_prune_error(const rs_out_curves *c, size_t dropped, bool scored)
{
	if (dropped > c->count)
		dropped = c->count;
	return relative(c, (scored ? c->prune_scored : c->prune)[dropped]);
}

double
rs_out_rows_error(const rs_out_curves *c, size_t dropped)
{
	return relative(c, c->drop_rows[dropped > c->rows ? c->rows : dropped]);
}

double
rs_out_cols_error(const rs_out_curves *c, size_t dropped)
{
	return relative(c, c->drop_cols[dropped > c->cols ? c->cols : dropped]);
}

double
rs_out_quant_error(const rs_out_curves *c, rs_quantizer q, unsigned bits)
{
	if ((unsigned)q >= RS_QUANT_COUNT || bits < 1 || bits > RS_OUT_QUANT_BITS)
		return NAN;
	return relative(c, c->quant[q][bits]);
}

double
rs_out_scored_fro_error(const rs_out_curves *c, size_t dropped)
{
	if (dropped > c->count)
		dropped = c->count;
	return c->fro_total > 0 ? sqrt(c->scored_fro[dropped] / c->fro_total) : 0;
}

void
rs_out_scored_mask(const rs_out_curves *c, size_t dropped, unsigned char *keep)
{
	size_t d;

	if (dropped > c->count)
		dropped = c->count;
	memset(keep, 1, c->count);
	for (d = 0; d < dropped; d++)
		keep[c->scored_order[d]] = 0;
}
