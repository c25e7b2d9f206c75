/* analysis.c — quantisation curves and channel pruning on layer analyses;
 * see rankscope/analysis.h. */
#include "config.h"

#include <stdlib.h>

#include "rankscope/analysis.h"

rs_status
rs_quant_curve_build(const double *w, size_t rows, size_t cols, size_t ld,
                     bool transposed, rs_quant_curve *out, rs_error *err)
{
	double *wt = NULL;
	int q;
	unsigned b;
	size_t i, j;
	rs_status st = RS_OK;
	/* the kernels report storage at F32; plans cost it in the value dtype */
	uint64_t storage[RS_QUANT_CURVE_BITS + 1];

	for (q = 0; q < RS_QUANT_COUNT; q++) {
		bool fixed = q == RS_QUANT_BINARY || q == RS_QUANT_TERNARY;
		rs_quant_result r;

		out->err[q][0] = 1.0;
		if (q == RS_QUANT_KMEANS) {
			/* every width from one sort */
			st = rs_quantize_kmeans_curve(w, rows, cols, ld, RS_QUANT_CURVE_BITS,
			                              out->err[q], storage, err);
			if (st != RS_OK) {
				free(wt);
				return st;
			}
			continue;
		}
		if (q == RS_QUANT_UNIFORM_TENSOR || q == RS_QUANT_UNIFORM_CHANNEL) {
			bool channels = q == RS_QUANT_UNIFORM_CHANNEL;
			/* channels are rows of W: columns of what we hold when it is W^T */
			if (channels && transposed && wt == NULL) {
				wt = malloc(rows * cols * sizeof *wt);
				if (wt == NULL)
					return rs_error_set(err, RS_ENOMEM, "out of memory for a "
					                    "transposed copy");
				for (j = 0; j < cols; j++)
					for (i = 0; i < rows; i++)
						wt[j + i * cols] = w[i + j * ld];
			}
			/* every width in one pass */
			if (channels && transposed)
				st = rs_quantize_uniform_curve(wt, cols, rows, cols, true,
				                               RS_QUANT_CURVE_BITS, out->err[q],
				                               storage, err);
			else
				st = rs_quantize_uniform_curve(w, rows, cols, ld, channels,
				                               RS_QUANT_CURVE_BITS, out->err[q],
				                               storage, err);
			if (st != RS_OK) {
				free(wt);
				return st;
			}
			continue;
		}
		for (b = 1; b <= RS_QUANT_CURVE_BITS; b++) {
			/* binary and ternary have no width: one run serves all */
			if (fixed && b > 1) {
				out->err[q][b] = out->err[q][1];
				continue;
			}
			st = rs_quantize(w, rows, cols, ld, (rs_quantizer)q, b, NULL, NULL, NULL, &r, err);
			if (st != RS_OK) {
				free(wt);
				return st;
			}
			out->err[q][b] = r.rel_error;
		}
	}
	free(wt);
	return RS_OK;
}

double
rs_analysis_prune_outputs_error(const rs_layer_analysis *a, size_t dropped)
{
	return a->transposed ? rs_prune_cols_error(a->magnitudes, dropped) :
	                       rs_prune_rows_error(a->magnitudes, dropped);
}

double
rs_analysis_prune_inputs_error(const rs_layer_analysis *a, size_t dropped)
{
	return a->transposed ? rs_prune_rows_error(a->magnitudes, dropped) :
	                       rs_prune_cols_error(a->magnitudes, dropped);
}
