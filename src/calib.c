/* calib.c — calibration statistics; see rankscope/calib.h.
 *
 * The statistics file is opened with rs_model_open like a model (any
 * format rankscope reads), so its tensors are validated and mapped by the
 * same readers, and digested whole for plans: a plan made in the output
 * norm names the data it was made on. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/calib.h"
#include "rankscope/guard.h"
#include "rankscope/util.h"

/* Tolerances of the checks (calib.h). */
#define CALIB_SYMMETRY_TOL 1e-6
#define CALIB_PSD_TOL 1e-6

static const char *const suffixes[] = {".gram", ".diag", ".count"};

static rs_status
digest_file(const char *path, char *hex, rs_error *err)
{
	unsigned char buf[1 << 16];
	uint8_t digest[RS_SHA256_LEN];
	rs_sha256_ctx ctx;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
	rs_sha256_init(&ctx);
	while ((got = read(fd, buf, sizeof buf)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
		}
		rs_sha256_update(&ctx, buf, (size_t)got);
	}
	close(fd);
	rs_sha256_final(&ctx, digest);
	rs_sha256_hex(digest, hex);
	return RS_OK;
}

rs_calib *
rs_calib_open(const char *path, rs_error *err)
{
	rs_calib *c = rs_xcalloc(1, sizeof *c);

	c->path = rs_xstrdup(path);
	c->file = rs_model_open(path, err);
	if (!c->file) {
		rs_error_prefix(err, "calibration file: ");
		rs_calib_free(c);
		return NULL;
	}
	if (digest_file(path, c->sha256, err) != RS_OK) {
		rs_calib_free(c);
		return NULL;
	}
	return c;
}

void
rs_calib_free(rs_calib *c)
{
	if (!c)
		return;
	if (c->file)
		rs_model_close(c->file);
	free(c->path);
	free(c);
}

const char *
rs_calib_kind_name(rs_calib_kind kind)
{
	switch (kind) {
	case RS_CALIB_FULL: return "full";
	case RS_CALIB_DIAG: return "diag";
	case RS_CALIB_NONE: break;
	}
	return "none";
}

/* The tensor PREFIX + suffix for a layer, PREFIX = name less ".weight",
 * then the name itself. */
static const rs_tensor *
find_stat(const rs_calib *c, const char *layer_name, const char *suffix)
{
	size_t len = strlen(layer_name);
	static const char weight[] = ".weight";
	const rs_tensor *t = NULL;
	char *name;

	if (len > sizeof weight - 1 &&
	    strcmp(layer_name + len - (sizeof weight - 1), weight) == 0) {
		name = rs_xasprintf("%.*s%s", (int)(len - (sizeof weight - 1)), layer_name,
		                    suffix);
		t = rs_model_find(c->file, name);
		free(name);
	}
	if (!t) {
		name = rs_xasprintf("%s%s", layer_name, suffix);
		t = rs_model_find(c->file, name);
		free(name);
	}
	return t;
}

rs_calib_kind
rs_calib_kind_for(const rs_calib *c, const rs_layer *layer)
{
	if (find_stat(c, layer->name, ".gram"))
		return RS_CALIB_FULL;
	if (find_stat(c, layer->name, ".diag"))
		return RS_CALIB_DIAG;
	return RS_CALIB_NONE;
}

/* The input width a layer's Gram must have, or 0 with *why set when the
 * layer takes no calibration. */
static size_t
input_width(const rs_layer *layer, const char **why)
{
	*why = NULL;
	switch (layer->kind) {
	case RS_LAYER_EMBEDDING:
		*why = "an embedding is looked up, not multiplied by an input";
		return 0;
	case RS_LAYER_CONV:
		if (layer->kernel_in_out) {
			*why = "a transposed convolution's input is not the unfolded patches";
			return 0;
		}
		if (layer->groups > 1) {
			*why = "a grouped convolution sees a different input per group";
			return 0;
		}
		if (layer->fold != 0) {
			*why = "calibration figures need fold scheme 0 (f x c kh kw), "
			       "the one whose columns are the unfolded input patches";
			return 0;
		}
		return layer->kshape[1] * layer->kshape[2] * layer->kshape[3];
	case RS_LAYER_LINEAR:
	case RS_LAYER_COMPOSED:
		break;
	}
	return layer->cols;
}

/* Converts a float tensor's elements to double under the SIGBUS guard. */
static rs_status
load_values(const rs_calib *c, const rs_tensor *t, double *dst, rs_error *err)
{
	const rs_dtype_info *info = rs_dtype_get(t->dtype);
	unsigned char *copy;
	rs_status st;
	char name[96];

	if (!info->is_float && t->dtype != RS_DTYPE_I64 && t->dtype != RS_DTYPE_I32)
		return rs_error_set(err, RS_EFORMAT, "%s: tensor '%s': dtype %s is not a number type "
		    "calibration statistics can have", c->path,
		    rs_printable(name, sizeof name, t->name), info->name);
	copy = malloc(t->nbytes ? t->nbytes : 1);
	if (!copy)
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory", c->path,
		                    rs_printable(name, sizeof name, t->name));
	st = rs_guard_copy(copy, t->data, t->nbytes, c->path, t->name, err);
	if (st == RS_OK) {
		if (info->is_float) {
			rs_dtype_to_double(t->dtype, copy, t->count, dst, 1);
		} else {
			size_t i;

			for (i = 0; i < t->count; i++)
				dst[i] = t->dtype == RS_DTYPE_I64
				    ? (double)(int64_t)rs_read_le(copy + 8 * i, 8)
				    : (double)(int32_t)rs_read_le(copy + 4 * i, 4);
		}
	}
	free(copy);
	return st;
}

/* Checks a full Gram matrix in place (symmetrising it) and its spectrum. */
static rs_status
check_gram(const rs_calib *c, const rs_tensor *t, double *g, size_t n, rs_error *err)
{
	double gmax = 0, *a, *lambda;
	size_t i, j;
	lapack_int info;
	char name[96];

	rs_printable(name, sizeof name, t->name);
	for (i = 0; i < n * n; i++) {
		if (!isfinite(g[i]))
			return rs_error_set(err, RS_ENUMERIC,
			    "%s: tensor '%s': element (%zu, %zu) is %g: a Gram matrix must be finite",
			    c->path, name, i / n, i % n, g[i]);
		if (fabs(g[i]) > gmax)
			gmax = fabs(g[i]);
	}
	for (i = 0; i < n; i++)
		if (g[i + i * n] < 0)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: tensor '%s': diagonal element %zu is %g: a Gram matrix X^T X "
			    "has no negative diagonal", c->path, name, i, g[i + i * n]);
	for (j = 0; j < n; j++)
		for (i = j + 1; i < n; i++) {
			double a_ij = g[i + j * n], a_ji = g[j + i * n];

			if (fabs(a_ij - a_ji) > CALIB_SYMMETRY_TOL * gmax)
				return rs_error_set(err, RS_EFORMAT,
				    "%s: tensor '%s': not symmetric: (%zu, %zu) is %.9g but (%zu, %zu) "
				    "is %.9g", c->path, name, i, j, a_ij, j, i, a_ji);
			g[i + j * n] = g[j + i * n] = (a_ij + a_ji) / 2;
		}
	a = malloc(n * n * sizeof *a);
	lambda = malloc(n * sizeof *lambda);
	if (!a || !lambda) {
		free(a);
		free(lambda);
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory", c->path,
		                    name);
	}
	memcpy(a, g, n * n * sizeof *a);
	info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'L', (lapack_int)n, a, (lapack_int)n,
	                      lambda);
	if (info < 0)
		abort();
	if (info == 0 && lambda[0] < -CALIB_PSD_TOL * fabs(lambda[n - 1])) {
		rs_status st = rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': not positive semi-definite: eigenvalue %.6g against a "
		    "largest of %.6g (a Gram matrix X^T X has none below 0)",
		    c->path, name, lambda[0], lambda[n - 1]);
		free(a);
		free(lambda);
		return st;
	}
	free(a);
	free(lambda);
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC, "%s: tensor '%s': dsyevd did not converge",
		                    c->path, name);
	return RS_OK;
}

static rs_status
load_count(const rs_calib *c, const rs_layer *layer, double *count, rs_error *err)
{
	const rs_tensor *t = find_stat(c, layer->name, ".count");
	char name[96];

	*count = NAN;
	if (!t)
		return RS_OK;
	if (t->count != 1)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': a count is one number, not %zu", c->path,
		    rs_printable(name, sizeof name, t->name), t->count);
	if (load_values(c, t, count, err) != RS_OK)
		return err->code;
	if (!isfinite(*count) || *count < 0)
		return rs_error_set(err, RS_EFORMAT, "%s: tensor '%s': count %g is not a count",
		                    c->path, rs_printable(name, sizeof name, t->name), *count);
	return RS_OK;
}

rs_status
rs_calib_load(const rs_calib *c, const rs_layer *layer, rs_calib_kind *kind,
              double **gram, double *count, rs_error *err)
{
	const rs_tensor *t;
	const char *why;
	size_t n, i;
	double *g, *d;
	char name[96], lname[96];
	rs_status st;

	*gram = NULL;
	*count = NAN;
	*kind = rs_calib_kind_for(c, layer);
	if (*kind == RS_CALIB_NONE)
		return RS_OK;
	t = find_stat(c, layer->name, *kind == RS_CALIB_FULL ? ".gram" : ".diag");
	rs_printable(name, sizeof name, t->name);
	rs_printable(lname, sizeof lname, layer->name);
	n = input_width(layer, &why);
	if (n == 0)
		return rs_error_set(err, RS_EINVAL,
		    "%s: tensor '%s': layer '%s' takes no calibration: %s", c->path, name, lname,
		    why);
	if (*kind == RS_CALIB_FULL &&
	    (t->ndim != 2 || t->shape[0] != n || t->shape[1] != n))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': layer '%s' has %zu inputs, so its Gram matrix is %zu x %zu, "
		    "not %s%zu%s%zu", c->path, name, lname, n, n, n, t->ndim == 2 ? "" : "of shape ",
		    t->ndim >= 1 ? t->shape[0] : 0, t->ndim >= 2 ? " x " : "",
		    t->ndim >= 2 ? t->shape[1] : 0);
	if (*kind == RS_CALIB_DIAG && (t->ndim != 1 || t->shape[0] != n))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': layer '%s' has %zu inputs, so its diagonal has %zu values, "
		    "not shape (%zu%s)", c->path, name, lname, n, n,
		    t->ndim >= 1 ? t->shape[0] : 0, t->ndim > 1 ? ", ..." : "");
	g = calloc(n * n, sizeof *g);
	d = *kind == RS_CALIB_DIAG ? malloc(n * sizeof *d) : NULL;
	if (!g || (*kind == RS_CALIB_DIAG && !d)) {
		free(g);
		free(d);
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory for %zu x %zu",
		                    c->path, name, n, n);
	}
	if (*kind == RS_CALIB_FULL) {
		/* row-major symmetric = column-major up to the symmetry checked next */
		st = load_values(c, t, g, err);
		if (st == RS_OK)
			st = check_gram(c, t, g, n, err);
	} else {
		st = load_values(c, t, d, err);
		for (i = 0; st == RS_OK && i < n; i++) {
			if (!isfinite(d[i]) || d[i] < 0)
				st = rs_error_set(err, isfinite(d[i]) ? RS_EFORMAT : RS_ENUMERIC,
				    "%s: tensor '%s': value %zu is %g: a sum of squares is finite and "
				    ">= 0", c->path, name, i, d[i]);
			else
				g[i + i * n] = d[i];
		}
	}
	free(d);
	if (st == RS_OK)
		st = load_count(c, layer, count, err);
	if (st != RS_OK) {
		free(g);
		return st;
	}
	*gram = g;
	return RS_OK;
}

const char *
rs_calib_unmatched(const rs_calib *c, const rs_layer *layers, size_t nlayers, size_t *count)
{
	const char *first = NULL;
	size_t i, l, s;

	*count = 0;
	for (i = 0; i < c->file->ntensors; i++) {
		const rs_tensor *t = &c->file->tensors[i];
		bool matched = false;

		for (l = 0; l < nlayers && !matched; l++)
			for (s = 0; s < sizeof suffixes / sizeof suffixes[0] && !matched; s++)
				matched = find_stat(c, layers[l].name, suffixes[s]) == t;
		if (!matched) {
			if (!first)
				first = t->name;
			(*count)++;
		}
	}
	return first;
}
