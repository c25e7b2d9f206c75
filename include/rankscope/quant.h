/*
 * quant.h — quantisers (la-quant.c), each with its exact error and honest
 * storage.
 *
 *   RS_QUANT_UNIFORM_TENSOR   2^b levels evenly spaced over [min, max] of the
 *                             tensor; stores b bits per weight + 2 x 32
 *                             (scale, offset)
 *   RS_QUANT_UNIFORM_CHANNEL  the same per output channel (row): b N + 64 m
 *   RS_QUANT_KMEANS           a 1-D k-means codebook of k = 2^b centres:
 *                             k-means++ seeding with a fixed seed, then Lloyd
 *                             iterations on the sorted values until no centre
 *                             moves by more than 1e-12 (max - min) or 1000
 *                             iterations (slow 1-D convergence needs more than
 *                             a hundred on some weights); b N + 32 k
 *   RS_QUANT_BINARY           alpha sign(w), alpha = mean |w| (the L2-optimal
 *                             scale); 1 bit per weight + 32
 *   RS_QUANT_TERNARY          alpha t, t in {-1, 0, 1}: the threshold and
 *                             alpha minimising the error exactly (over the
 *                             sorted magnitudes); 2 bits per weight + 32
 *
 * Errors are relative Frobenius: ||W - Q(W)||_F / ||W||_F, measured on the
 * quantised values the quantiser returns (what apply writes).
 */
#ifndef RANKSCOPE_QUANT_H
#define RANKSCOPE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/error.h"

typedef enum rs_quantizer {
	RS_QUANT_UNIFORM_TENSOR,
	RS_QUANT_UNIFORM_CHANNEL,
	RS_QUANT_KMEANS,
	RS_QUANT_BINARY,
	RS_QUANT_TERNARY,
	RS_QUANT_COUNT
} rs_quantizer;

const char *rs_quantizer_name(rs_quantizer q);
bool rs_quantizer_parse(const char *name, rs_quantizer *out);
/* Bits per weight of a quantiser at a requested width (binary 1,
 * ternary 2, the others `bits`). */
unsigned rs_quantizer_bits(rs_quantizer q, unsigned bits);

/*
 * The bits a quantised m x n matrix is stored in: b' bits per weight
 * (b' = rs_quantizer_bits) and what gives the levels.  Levels spelt out
 * (k-means' 2^b' centres; any codebook that was refined, whose levels no
 * longer follow the quantiser's rule: 2^b' levels, a row of them per
 * matrix row for uniform-channel) take value_bits each, the layer's value
 * dtype (32 for F32): each level is rounded on its own, by half an ulp.
 * A rule's numbers are F32 whatever the model, because a rounded step
 * would move level k by k times its rounding: an offset and a step for
 * uniform-tensor (64 bits), one pair per row for uniform-channel, one
 * scale for binary and ternary (32).  The one formula plans, scripts,
 * combinations and apply's files follow (rankscope-plan(5), storage_bits).
 */
uint64_t rs_quant_storage_bits(size_t rows, size_t cols, rs_quantizer q, unsigned bits,
                               unsigned value_bits, bool full_codebook);
/* Whether the levels are spelt out (k-means, or a full codebook) rather
 * than given by a rule (a grid or a scale). */
bool rs_quant_spells_levels(rs_quantizer q, bool full_codebook);
/* The numbers stored beside the codes: levels, or the rule's F32 numbers. */
uint64_t rs_quant_codebook_values(size_t rows, rs_quantizer q, unsigned bits,
                                  bool full_codebook);

typedef struct rs_quant_result {
	double rel_error;           /* ||W - Q(W)||_F / ||W||_F */
	uint64_t storage_bits;      /* codes + codebook / scales, F32
	                             * (rs_quant_storage_bits at 32) */
	double bits_per_weight;     /* storage_bits / N */
	unsigned levels;            /* distinct values available */
	size_t iterations;          /* Lloyd iterations (k-means), else 0 */
} rs_quant_result;

/*
 * Quantises the column-major m x n matrix w (leading dimension ld) with
 * q at `bits` (1..16; ignored by binary and ternary).  When q_out is not
 * NULL it receives Q(W) (column-major, leading dimension m); when codes is
 * not NULL it receives each element's level index and codebook (at least
 * 2^bits entries, or m 2^bits for per-channel) the level values, so apply
 * can write codes and codebooks.
 */
rs_status rs_quantize(const double *w, size_t rows, size_t cols, size_t ld,
                      rs_quantizer q, unsigned bits, double *q_out,
                      uint16_t *codes, double *codebook, rs_quant_result *result,
                      rs_error *err);

/*
 * The k-means errors and storage at every width 1..max_bits at once
 * (rel_errors[b], storage[b] for b = 1..max_bits; index 0 untouched), from
 * one sort of the data: the same codebooks rs_quantize finds, at a fraction
 * of the cost of max_bits separate calls.
 */
rs_status rs_quantize_kmeans_curve(const double *w, size_t rows, size_t cols, size_t ld,
                                   unsigned max_bits, double *rel_errors,
                                   uint64_t *storage, rs_error *err);

/* The uniform quantiser's (per tensor, or per channel = row) errors and
 * storage at every width 1..max_bits in one pass, each exactly what
 * rs_quantize reports at that width. */
rs_status rs_quantize_uniform_curve(const double *w, size_t rows, size_t cols, size_t ld,
                                    bool per_channel, unsigned max_bits, double *rel_errors,
                                    uint64_t *storage, rs_error *err);

#endif
