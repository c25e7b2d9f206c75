/*
 * plan.h — a compression plan in memory: one choice per layer, and the
 * figures that choice implies.
 *
 * Methods: keep the layer dense; a rank-r factorisation; unstructured
 * magnitude pruning to a sparsity; pruning whole output or input channels;
 * quantisation (a quantiser at a bit width); low rank + sparse found by
 * alternating projections; and the decompositions of grouped.h, tucker.h,
 * cp.h and tt.h (channel-grouped SVD, Tucker-2, CP, TT-matrix).  A choice
 * is used only where it pays: a factorisation only when r (m + n) < m n
 * (parameters), every other method only when its storage in bits is below
 * the dense layer's.  Otherwise the layer stays dense, whatever was asked
 * for.
 *
 * Figures are computed on demand from the layer's analysis in O(1), so
 * front ends can recompute on every keypress.  The "solved" methods
 * (low rank + sparse and the four decompositions) take their errors from a
 * solve recorded in the entry (plan-solve.c, or the plan file); until it
 * has run their figures are not known.  Errors are relative Frobenius
 * errors: exact for pruning, quantisation, low rank and grouped SVD,
 * measured on the solve's result for the others.  The spectral error is
 * exact for dense and low-rank; for every other method it is a bound
 * (||E||_2 <= ||E||_F, i.e. err_fro ||W||_F / ||W||_2, or for grouped SVD
 * the smaller of that and sqrt(g) times ALDS's measure), and spec_is_bound
 * says so.
 */
#ifndef RANKSCOPE_PLAN_H
#define RANKSCOPE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/analysis.h"
#include "rankscope/layer.h"
#include "rankscope/quant.h"
#include "rankscope/spectrum.h"

typedef enum rs_method {
	RS_METHOD_DENSE,
	RS_METHOD_LOWRANK,
	RS_METHOD_PRUNE,            /* unstructured, by magnitude */
	RS_METHOD_PRUNE_ROWS,       /* whole output channels, by L2 norm */
	RS_METHOD_PRUNE_COLS,       /* whole input channels, by L2 norm */
	RS_METHOD_QUANT,
	RS_METHOD_LOWRANK_SPARSE,   /* L + S, alternating projections */
	RS_METHOD_GROUPED,          /* channel-grouped SVD (ALDS), grouped.h */
	RS_METHOD_TUCKER2,          /* Tucker-2 on the output and input modes, tucker.h */
	RS_METHOD_CP,               /* CP of rank R, cp.h */
	RS_METHOD_TT,               /* TT-matrix, tt.h */
	RS_METHOD_QUANT_SPARSE,     /* Q + S, alternating projections */
	RS_METHOD_LOWRANK_SPARSE_QUANT,  /* L + S + Q, alternating projections */
	RS_METHOD_COUNT
} rs_method;

/* Additive combinations (combine.h): which parts a method has. */
bool rs_method_is_combination(rs_method method);
bool rs_method_has_lowrank_part(rs_method method);
bool rs_method_has_quant_part(rs_method method);

/* Whether a method's errors come from a solve recorded in the entry: the
 * additive combinations and the decompositions (GROUPED, TUCKER2, CP, TT,
 * solved by plan-solve.c). */
bool rs_method_is_solved(rs_method method);
bool rs_method_is_decomposition(rs_method method);

struct rs_combine_spec;

const char *rs_method_name(rs_method method);
bool rs_method_parse(const char *name, rs_method *out);


#define RS_PLAN_TT_MAX_D 8

typedef struct rs_plan_entry {
	rs_method method;
	size_t rank;             /* LOWRANK, LOWRANK_SPARSE(_QUANT), GROUPED (per group), CP;
	                            TUCKER2: r_out */
	size_t rank_in;          /* TUCKER2: r_in */
	size_t groups;           /* GROUPED: g >= 2, dividing the input side */
	int fold;                /* GROUPED on a conv layer: its own fold scheme;
	                            RS_FOLD_NONE otherwise */
	size_t tt_d;             /* TT: the modes and the ranks reached */
	size_t tt_rows[RS_PLAN_TT_MAX_D], tt_cols[RS_PLAN_TT_MAX_D];
	size_t tt_ranks[RS_PLAN_TT_MAX_D + 1];  /* caps (0: none) until solved */
	double tt_eps;           /* TT: relative Frobenius target of the solve, or
	                            NaN; the ranks it reaches are what is recorded */
	bool whitened;           /* LOWRANK: the truncation of W L, L L^T = G (SVD-LLM,
	                            whiten.h), optimal in the output norm; needs
	                            calibration */
	bool scored;             /* PRUNE: the mask drops the smallest w_ij^2 G_jj (outcurve.h),
	                            not the smallest |w_ij|; needs calibration */
	bool refined;            /* LOWRANK, PRUNE, QUANT: refined against the dense layer on
	                            the calibration (planrefine.h, NN-BCD): its figures
	                            are the refinement's, NaN until it has run */
	size_t refined_sweeps;   /* the sweeps it took */
	double refined_out, refined_fro;  /* its relative output and weight errors */
	double sparsity;         /* PRUNE*, the combinations: fraction dropped / of nonzeros */
	rs_quantizer quantizer;  /* QUANT, QUANT_SPARSE, LOWRANK_SPARSE_QUANT */
	unsigned bits;           /* the same: 1..RS_QUANT_CURVE_BITS */
	/* a solved method's figures; NaN until solved */
	double solved_error;     /* relative Frobenius error of the solve */
	double solved_spec;      /* GROUPED, TUCKER2, CP, TT: bound on the relative
	                            spectral error */
	double solved_fro_bound; /* TUCKER2, TT: the a-priori bound on solved_error
	                            (HOSVD, TT-SVD); NaN for the others */
	double solved_alds;      /* GROUPED: ALDS's measure max_g sigma_{g,r+1} / ||W||_2,
	                            a lower bound on the relative spectral error */
	double solved_out;       /* a solved method's output error on the calibration,
	                            measured on the parts apply writes (rs_apply_measure);
	                            NaN without calibration or until measured */
} rs_plan_entry;

typedef struct rs_plan {
	size_t nlayers;
	rs_plan_entry *entries;  /* rs_xmalloc'd, owned */
} rs_plan;

/* What an entry means for one layer. */
typedef struct rs_plan_figures {
	bool known;              /* false while what it needs is pending */
	rs_method method;        /* effective: DENSE where the choice does not pay */
	size_t rank;             /* LOWRANK(_SPARSE); k when dense */
	size_t nonzeros;         /* values kept by pruning / the sparse part */
	double err_fro;          /* relative, exact (0 when dense) */
	double err_spec;         /* exact for dense/low rank, else a bound */
	bool spec_is_bound;
	double energy;           /* 1 - err_fro^2 */
	/* relative output error ||(W - W') X^T||_F / ||W X^T||_F on the
	 * calibration inputs (whiten.h, outcurve.h): exact for dense, low
	 * rank, pruning and quantisation (an estimate when only G's diagonal
	 * is known: out_is_estimate); for the solved methods measured on the
	 * parts apply writes (solved_out); NaN without calibration or until
	 * known */
	double out_err;
	bool out_is_estimate;
	size_t params;           /* values stored */
	size_t flops;            /* per input vector: 2 per multiply-add */
	uint64_t bits;           /* storage, indices and codebooks included */
} rs_plan_figures;

typedef struct rs_plan_totals {
	size_t layers, pending, compressed;
	size_t params_before, params_after;
	size_t flops_before, flops_after;
	uint64_t bits_before, bits_after;
	double ratio;            /* params_before / params_after */
	double bits_ratio;       /* bits_before / bits_after */
	double worst_err_spec, worst_err_fro;
	/* the largest layer output error, NaN when some compressed layer has
	 * none (no calibration, or not computed for its method) */
	double worst_out_err;
	size_t worst_layer;      /* index of the worst err_spec (when layers > 0) */
	/* Bound on the relative output perturbation of a feed-forward chain
	 * with 1-Lipschitz activations: prod (1 + err_spec) - 1.  A bound, not
	 * a measurement (and built on bounds where err_spec is one). */
	double net_bound;
} rs_plan_totals;

/* An entry keeping the layer dense. */
rs_plan_entry rs_plan_entry_dense(void);
rs_plan_entry rs_plan_entry_lowrank(size_t rank);

/* The alternating projections' spec of a combination entry (rank, the
 * nonzeros its sparsity keeps, the quantiser), with the default
 * iterations and tolerance every front end and apply use. */
void rs_plan_entry_combine_spec(const rs_layer *layer, const rs_plan_entry *e,
                                struct rs_combine_spec *spec);

struct rs_combine_result;

/* A finished solve of a combination entry, taken into the entry: its error,
 * or, when a single part does better at the same storage (the kernel's
 * fallback), that part instead (lowrank at r', prune keeping s', quant at
 * b' with the entry's quantiser). */
void rs_plan_entry_take_solve(const rs_layer *layer, rs_plan_entry *e,
                              const struct rs_combine_result *res);

/* The matrix a layer's entry factorises: the layer's, or for a grouped
 * entry on a conv layer the one of the entry's own fold scheme. */
void rs_plan_entry_matrix(const rs_layer *layer, const rs_plan_entry *e,
                          size_t *rows, size_t *cols);

/* Parameters and FLOPs (per input vector, or per output position of a
 * conv) of a decomposition entry (GROUPED, TUCKER2, CP, TT) as its shapes
 * give them, whether or not it has been solved. */
void rs_plan_entry_cost(const rs_layer *layer, const rs_plan_entry *e,
                        size_t *params, size_t *flops);

/* A plan of n layers, all dense. */
void rs_plan_init(rs_plan *plan, size_t nlayers);
void rs_plan_free(rs_plan *plan);
void rs_plan_copy(rs_plan *dst, const rs_plan *src);
bool rs_plan_equal(const rs_plan *a, const rs_plan *b);
bool rs_plan_entry_equal(const rs_plan_entry *a, const rs_plan_entry *b);

/* Whether rank r pays off for an m x n layer: r (m + n) < m n. */
bool rs_lowrank_pays(size_t rows, size_t cols, size_t rank);

/* Storage bits of the dense layer (its source dtype's width). */
uint64_t rs_layer_dense_bits(const rs_layer *layer);

/*
 * The dtype a compressed layer's values (factors, sparse values, kept
 * channels, cores) are stored in, as plans cost them and apply writes
 * them: the model's own F16 or BF16, else F32 (an F64 layer's parts are
 * float32 arithmetic; GGUF's block types dequantise exactly to float32).
 * A composed layer takes its first factor's.
 */
rs_dtype rs_layer_value_dtype(const rs_layer *layer);
/* Its bits per value: 16 or 32. */
unsigned rs_layer_value_bits(const rs_layer *layer);

void rs_plan_figures_for(const rs_layer *layer, const rs_layer_analysis *analysis,
                         const rs_plan_entry *entry, rs_plan_figures *out);

/* The parameters of an effective choice in a few characters, for tables:
 * "r=37", "p=0.50", "kmeans/4b", "r=8 p=0.90", "" for dense. */
void rs_plan_describe(const rs_plan_entry *entry, const rs_plan_figures *figures,
                      char *buf, size_t len);

/* analyses[i].spectrum may be NULL for pending layers. */
void rs_plan_totals_compute(const rs_plan *plan, const rs_layer *layers,
                            const rs_layer_analysis *analyses, rs_plan_totals *out);

/* Entries for the global modes: keep a fraction of each layer's full rank
 * (rank = max(1, round(fraction k))), or the smallest rank keeping a
 * fraction of its energy (at least 1). */
rs_plan_entry rs_plan_entry_keep_ratio(const rs_spectrum *s, double fraction);
rs_plan_entry rs_plan_entry_energy(const rs_spectrum *s, double fraction);

#endif
