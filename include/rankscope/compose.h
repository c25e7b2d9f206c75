/*
 * compose.h — composed layers (compose.c): a layer declared as the product
 * of factor tensors stored separately, as LoRITa trains them.
 *
 * A declaration is a name pattern with exactly one '#', which stands for
 * the factor's index (a decimal number without leading zeros); the rest is
 * an fnmatch(3) glob in which '*' also matches '.'.  Tensors whose names
 * match and agree everywhere except at the '#' form one group, e.g.
 *   fc*.factors.#.weight  groups  fc1.factors.0.weight, fc1.factors.1.weight, ...
 * The group's factors F_0 ... F_{N-1} must be 2-D floating-point tensors
 * with indices 0..N-1 and chained shapes (F_k has as many columns as F_{k-1}
 * has rows); factor 0 is applied to the input first:
 *   W = F_{N-1} ... F_1 F_0      (rows of F_{N-1}) x (cols of F_0)
 * The composed layer's name is the group's name with the '#' and one '.'
 * beside it removed ("fc1.factors.weight").  Its spectrum and every query
 * are those of W, computed in double; it stands where its first factor
 * stands in the file.
 */
#ifndef RANKSCOPE_COMPOSE_H
#define RANKSCOPE_COMPOSE_H

#include <stddef.h>

#include "rankscope/error.h"
#include "rankscope/model.h"

typedef struct rs_compose_group {
	char *name;                /* the composed layer's name */
	const char *pattern;       /* the declaration it came from */
	const rs_tensor **factors; /* nfactors, factor 0 first */
	size_t nfactors;
	rs_tensor product;         /* describes W: name, 2-D shape, widest factor
	                              dtype, no data (it is never stored) */
	size_t product_shape[2];
} rs_compose_group;

typedef struct rs_compose_set {
	char **patterns;
	size_t npatterns;
	rs_compose_group *groups;  /* in the file order of their first factors */
	size_t ngroups;
} rs_compose_set;

/*
 * Groups the model's tensors by the patterns.  Errors name the model and
 * the pattern or group: a pattern without exactly one '#', one that matches
 * no tensor, a factor that is not a 2-D floating tensor, a missing index,
 * a leading zero, shapes that do not chain, a tensor claimed by two
 * patterns, a composed name that is already a tensor's.  npatterns == 0
 * gives an empty set.
 */
rs_compose_set *rs_compose_new(const rs_model *model, const char *const *patterns,
                               size_t npatterns, rs_error *err);
void rs_compose_free(rs_compose_set *set);

/* The group a tensor is a factor of, or NULL. */
const rs_compose_group *rs_compose_group_of(const rs_compose_set *set,
                                            const rs_tensor *tensor);

/*
 * W = F_{N-1} ... F_0 as doubles, column-major, element (i, j) at
 * dst[i + j * ld], ld >= rows (dgemm in double from the stored values).
 * Non-finite factor elements are RS_ENUMERIC naming the factor and element.
 */
rs_status rs_compose_product(const rs_compose_group *g, double *dst, size_t ld,
                             const char *path, rs_error *err);

/* Elements stored for the group: the sum of its factors' counts. */
size_t rs_compose_stored_count(const rs_compose_group *g);

#endif
