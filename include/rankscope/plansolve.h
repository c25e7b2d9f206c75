/*
 * plansolve.h — running the decomposition a plan entry asks for
 * (plan-solve.c), so that its figures are known.
 *
 * GROUPED, TUCKER2, CP and TT entries carry their errors (plan.h,
 * solved_*): this computes them from the layer's weights with the kernels
 * of grouped.h, tucker.h, cp.h and tt.h.
 *   GROUPED  exact Frobenius error; ALDS's spectral measure (a lower bound
 *            on the true relative spectral error) and, as the spectral
 *            error, the upper bound min(sqrt(g) measure, ||E||_F/||W||_2),
 *            both relative to ||W||_2 of the entry's own fold
 *   TUCKER2  HOOI's measured error and the HOSVD bound (the kernel's default
 *            sweeps and tolerance, as apply uses)
 *   CP       ALS's measured error (deterministic start, the kernel's default
 *            stopping rule, as apply uses)
 *   TT       TT-SVD's measured error and Oseledets' bound, at the entry's
 *            caps and eps (tt_eps, NaN: none); the ranks it reached replace
 *            the caps and the eps is cleared
 * For the last three the spectral error is the bound ||E||_2 <= ||E||_F.
 */
#ifndef RANKSCOPE_PLANSOLVE_H
#define RANKSCOPE_PLANSOLVE_H

#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/plan.h"
#include "rankscope/spectrum.h"
#include "rankscope/tt.h"

/*
 * Checks the entry's parameters against the layer (RS_EINVAL with a
 * message naming the layer and the value: a group count that does not
 * divide the input side, ranks out of range, TT modes that do not
 * multiply to the matrix's sides, a fold on a linear layer) without
 * solving anything.
 */
rs_status rs_plan_entry_check(const rs_layer *layer, const rs_plan_entry *e,
                              rs_error *err);

/*
 * Solves e (a GROUPED, TUCKER2, CP or TT entry) on the layer and records
 * its figures in e.  spectrum is the layer's (for ||W||_2 under the
 * layer's own fold).  path names the model in messages.  Other methods
 * are left as they are.
 */
rs_status rs_plan_entry_solve(const rs_layer *layer, const rs_spectrum *spectrum,
                              rs_plan_entry *e, const char *path, rs_error *err);

/*
 * A solved TT entry's TT-SVD again (deterministic) of w, column-major
 * rows x cols, at the ranks the entry records as caps, for apply and the
 * refinement to start from; NULL (RS_EINVAL) when it reaches other ranks
 * than the entry's, or on the kernel's errors.  Free with rs_tt_free.
 */
rs_tt *rs_plan_entry_tt(const rs_plan_entry *e, const double *w, size_t rows, size_t cols,
                        rs_error *err);

#endif
