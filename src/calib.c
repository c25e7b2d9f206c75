/* calib.c — calibration statistics; see rankscope/calib.h.
 *
 * The statistics file is opened with rs_model_open like a model (any
 * format rankscope reads), so its tensors are validated and mapped by the
 * same readers, and digested whole for plans: a plan made in the output
 * norm names the data it was made on.  llama.cpp's legacy imatrix.dat is
 * no weight file: when rs_model_open refuses a file that starts like one,
 * its own reader (io-imatrix.c) opens it.
 *
 * Diagonal statistics come under two namings:
 *   PREFIX.diag / PREFIX.count      rankscope's own (samples/calibrate.py),
 *                                   and the legacy imatrix's NAME.diag
 *   NAME.in_sum2 / NAME.counts      llama-imatrix's GGUF format: in_sum2 is
 *                                   the sum of x_j^2 over every input vector
 *                                   (already the sum a .diag holds), counts
 *                                   the number of vectors, both per matrix
 * (NAME.in_sum, the plain sums of x_j newer writers add, is not needed:
 * G = X^T X takes second moments only.)  An expert view NAME.e of a stack
 * (role.c) takes row e of its stack's statistics: in_sum2 is (E, n), one
 * row and one count per expert; the legacy file's E n values are E rows of
 * n.  An expert the data never reached (count 0, which llama-imatrix writes
 * rather than drop the stack) has no statistics. */
#include "config.h"

#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/calib.h"
#include "rankscope/guard.h"
#include "rankscope/imatrix.h"
#include "rankscope/util.h"

/* Tolerances of the checks (calib.h). */
#define CALIB_SYMMETRY_TOL 1e-6
#define CALIB_PSD_TOL 1e-6
/* Input vectors summed into G this many values at a time (load_inputs). */
#define CALIB_INPUT_BLOCK ((size_t)1 << 20)

/* Every tensor name a layer's statistics can end in (rs_calib_unmatched). */
static const char *const suffixes[] = {".gram", ".inputs", ".diag", ".count", ".in_sum2",
                                       ".counts", ".in_sum", ".mean_abs"};
/* Those a stack's statistics can have for its expert views. */
static const char *const stack_suffixes[] = {".diag", ".count", ".in_sum2", ".counts",
                                             ".in_sum", ".mean_abs"};

/* A naming of diagonal statistics: the values and their count. */
typedef struct diag_naming {
	const char *values;
	const char *count;
	bool zero_count_is_none;     /* llama-imatrix keeps experts it never saw */
	bool mean_abs;               /* ASVD's mean |x_j|: the diagonal taken is
	                                count mean_abs^2, a lower bound on the sum of
	                                x_j^2 (Jensen), used as an estimate */
} diag_naming;

static const diag_naming namings[] = {
	{".diag", ".count", false, false},
	{".in_sum2", ".counts", true, false},
	{".mean_abs", ".count", false, true},
};
#define NNAMINGS (sizeof namings / sizeof namings[0])

/* Where a layer's diagonal is: a tensor of its own, or row e of its
 * stack's. */
typedef struct diag_ref {
	const rs_tensor *t;          /* NULL: none */
	const diag_naming *naming;
	char *owner;                 /* the name its tensors hang off: the layer's,
	                                or its stack's (malloc'd) */
	bool expert;
	size_t e;
} diag_ref;

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

static int
by_name(const void *a, const void *b)
{
	const rs_tensor *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* The tensors sorted by name: every layer looks several names up, and a
 * model of experts has thousands of layers. */
static void
index_names(rs_calib *c)
{
	size_t i, n = c->file->ntensors;

	c->by_name = rs_xmalloc((n ? n : 1) * sizeof *c->by_name);
	for (i = 0; i < n; i++)
		c->by_name[i] = &c->file->tensors[i];
	qsort(c->by_name, n, sizeof *c->by_name, by_name);
}

rs_calib *
rs_calib_open(const char *path, rs_error *err)
{
	rs_calib *c = rs_xcalloc(1, sizeof *c);

	c->path = rs_xstrdup(path);
	c->file = rs_model_open(path, err);
	/* a legacy imatrix is refused as a weight file; its reader's message
	 * is the one that says what is wrong with it */
	if (!c->file && rs_imatrix_looks_like(path))
		c->file = rs_imatrix_open(path, err);
	if (!c->file) {
		rs_error_prefix(err, "calibration file: ");
		rs_calib_free(c);
		return NULL;
	}
	index_names(c);
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
	free(c->by_name);
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

static const rs_tensor *
find_tensor(const rs_calib *c, const char *name)
{
	rs_tensor key = {.name = (char *)name};
	const rs_tensor *k = &key, *const *hit;

	hit = bsearch(&k, c->by_name, c->file->ntensors, sizeof *c->by_name, by_name);
	return hit ? *hit : NULL;
}

/* The tensor PREFIX + suffix for a layer, PREFIX = name less ".weight",
 * then the name itself (llama.cpp's names keep ".weight"). */
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
		t = find_tensor(c, name);
		free(name);
	}
	if (!t) {
		name = rs_xasprintf("%s%s", layer_name, suffix);
		t = find_tensor(c, name);
		free(name);
	}
	return t;
}

/* Case-insensitive substring search (role.c's rule for stacks). */
static bool
name_has(const char *name, size_t len, const char *word)
{
	size_t n = strlen(word), i, k;

	for (i = 0; i + n <= len; i++) {
		for (k = 0; k < n && tolower((unsigned char)name[i + k]) == word[k]; k++)
			;
		if (k == n)
			return true;
	}
	return false;
}

/* Whether a layer is view e of a stack of experts, named NAME.e by role.c
 * (NAME saying "expert" or "exps"): NAME's length and e. */
static bool
expert_view(const char *name, size_t *base_len, size_t *e)
{
	const char *dot = strrchr(name, '.'), *p;
	size_t v = 0;

	if (dot == NULL || dot == name || dot[1] == '\0' || (dot[1] == '0' && dot[2] != '\0'))
		return false;
	for (p = dot + 1; *p; p++) {
		if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = 10 * v + (size_t)(*p - '0');
	}
	*base_len = (size_t)(dot - name);
	if (!name_has(name, *base_len, "expert") && !name_has(name, *base_len, "exps"))
		return false;
	*e = v;
	return true;
}

static void
diag_ref_free(diag_ref *ref)
{
	free(ref->owner);
	ref->owner = NULL;
}

/* A layer's diagonal statistics by name (nothing read); false when it has
 * none. */
static bool
find_diag(const rs_calib *c, const char *layer_name, diag_ref *ref)
{
	size_t k, base_len, e;
	char *base;

	memset(ref, 0, sizeof *ref);
	for (k = 0; k < NNAMINGS; k++)
		if ((ref->t = find_stat(c, layer_name, namings[k].values)) != NULL) {
			ref->naming = &namings[k];
			ref->owner = rs_xstrdup(layer_name);
			return true;
		}
	if (!expert_view(layer_name, &base_len, &e))
		return false;
	base = rs_xstrndup(layer_name, base_len);
	for (k = 0; k < NNAMINGS; k++)
		if ((ref->t = find_stat(c, base, namings[k].values)) != NULL) {
			ref->naming = &namings[k];
			ref->owner = base;
			ref->expert = true;
			ref->e = e;
			return true;
		}
	free(base);
	return false;
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

/*
 * Converts elements [first, first + n) of a number tensor to double under
 * the SIGBUS guard: only their bytes are copied where elements are whole
 * bytes (one expert's row of a large stack), the whole tensor otherwise.
 */
static rs_status
load_range(const rs_calib *c, const rs_tensor *t, size_t first, size_t n, double *dst,
           rs_error *err)
{
	const rs_dtype_info *info = rs_dtype_get(t->dtype);
	size_t esize = info->block == 0 && info->bits % 8 == 0 ? info->bits / 8 : 0;
	size_t from = 0, count = t->count, nbytes = t->nbytes, i;
	unsigned char *copy;
	double *all = NULL;
	rs_status st;
	char name[96];

	if (!info->is_float && t->dtype != RS_DTYPE_I64 && t->dtype != RS_DTYPE_I32)
		return rs_error_set(err, RS_EFORMAT, "%s: tensor '%s': dtype %s is not a number type "
		    "calibration statistics can have", c->path,
		    rs_printable(name, sizeof name, t->name), info->name);
	if (esize != 0) {
		from = first * esize;
		count = n;
		nbytes = n * esize;
	} else if (first != 0 || n != t->count) {
		all = malloc(t->count * sizeof *all);
		if (!all)
			return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory", c->path,
			                    rs_printable(name, sizeof name, t->name));
	}
	copy = malloc(nbytes ? nbytes : 1);
	if (!copy) {
		free(all);
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory", c->path,
		                    rs_printable(name, sizeof name, t->name));
	}
	st = rs_guard_copy(copy, t->data + from, nbytes, c->path, t->name, err);
	if (st == RS_OK) {
		double *out = all ? all : dst;

		if (info->is_float) {
			rs_dtype_to_double(t->dtype, copy, count, out, 1);
		} else {
			for (i = 0; i < count; i++)
				out[i] = t->dtype == RS_DTYPE_I64
				    ? (double)(int64_t)rs_read_le(copy + 8 * i, 8)
				    : (double)(int32_t)rs_read_le(copy + 4 * i, 4);
		}
		if (all)
			memcpy(dst, all + first, n * sizeof *dst);
	}
	free(copy);
	free(all);
	return st;
}

/* "(2, 64)" */
static const char *
shape_text(const rs_tensor *t, char *buf, size_t len)
{
	size_t i, o = (size_t)snprintf(buf, len, "(");

	for (i = 0; i < t->ndim && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%zu", i ? ", " : "", t->shape[i]);
	if (o < len)
		snprintf(buf + o, len - o, ")");
	return buf;
}

/*
 * Checks the shape of a diagonal against a layer of n inputs and finds the
 * layer's row: its first element and how many rows (experts) the tensor
 * holds.  A layer's own diagonal is (n) (or (1, n), how ggml writes one
 * matrix's row when its count is two-dimensional); a stack's is (E, n),
 * or E n values in a row (the legacy imatrix).
 */
static rs_status
locate_row(const rs_calib *c, const diag_ref *ref, const rs_layer *layer, size_t n,
           size_t *first, size_t *rows, rs_error *err)
{
	const rs_tensor *t = ref->t;
	char name[96], lname[96], owner[96], shape[96];

	rs_printable(name, sizeof name, t->name);
	rs_printable(lname, sizeof lname, layer->name);
	shape_text(t, shape, sizeof shape);
	if (!ref->expert) {
		if ((t->ndim == 1 && t->shape[0] == n) ||
		    (t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == n)) {
			*first = 0;
			*rows = 1;
			return RS_OK;
		}
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': layer '%s' has %zu inputs, so its diagonal has %zu values, "
		    "not shape %s", c->path, name, lname, n, n, shape);
	}
	rs_printable(owner, sizeof owner, ref->owner);
	if (t->ndim == 2 && t->shape[1] == n)
		*rows = t->shape[0];
	else if (t->ndim == 1 && t->count % n == 0)
		*rows = t->count / n;
	else
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': layer '%s' (expert %zu of the stack '%s') has %zu inputs, "
		    "so the stack's statistics are rows of %zu values (experts x %zu), not "
		    "shape %s", c->path, name, lname, ref->e, owner, n, n, n, shape);
	if (ref->e >= *rows)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': has rows for %zu expert%s of the stack '%s', none for "
		    "layer '%s' (expert %zu)", c->path, name, *rows, *rows == 1 ? "" : "s",
		    owner, lname, ref->e);
	*first = ref->e * n;
	return RS_OK;
}

/* The count of the vectors a diagonal summed (NaN when the file has
 * none): one number for a layer's own, one per expert (or one for all)
 * for a stack's. */
static rs_status
ref_count(const rs_calib *c, const diag_ref *ref, size_t rows, double *count, rs_error *err)
{
	const rs_tensor *t = find_stat(c, ref->owner, ref->naming->count);
	char name[96];
	rs_status st;

	*count = NAN;
	if (!t)
		return RS_OK;
	rs_printable(name, sizeof name, t->name);
	if (!ref->expert && t->count != 1)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': a count is one number, not %zu", c->path, name, t->count);
	if (ref->expert && t->count != 1 && t->count != rows)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': %zu counts for the statistics of %zu experts (a count is "
		    "one number per expert, or one for all)", c->path, name, t->count, rows);
	if ((st = load_range(c, t, t->count == 1 ? 0 : ref->e, 1, count, err)) != RS_OK)
		return st;
	if (!isfinite(*count) || *count < 0)
		return rs_error_set(err, RS_EFORMAT, "%s: tensor '%s': count %g is not a count",
		                    c->path, name, *count);
	return RS_OK;
}

/* Whether a diagonal found by name is one an expert never reached: all
 * that the file can say, so a stack's unseen experts keep weight figures.
 * Any fault is left to rs_calib_load to report. */
static bool
never_reached(const rs_calib *c, const diag_ref *ref, const rs_layer *layer)
{
	const char *why;
	size_t n = input_width(layer, &why), first, rows;
	double count;

	if (!ref->naming->zero_count_is_none || n == 0)
		return false;
	if (locate_row(c, ref, layer, n, &first, &rows, NULL) != RS_OK ||
	    ref_count(c, ref, rows, &count, NULL) != RS_OK)
		return false;
	return count == 0;
}

rs_calib_kind
rs_calib_kind_for(const rs_calib *c, const rs_layer *layer)
{
	rs_calib_kind kind = RS_CALIB_NONE;
	diag_ref ref;

	if (find_stat(c, layer->name, ".gram") || find_stat(c, layer->name, ".inputs"))
		return RS_CALIB_FULL;
	if (find_diag(c, layer->name, &ref))
		kind = never_reached(c, &ref, layer) ? RS_CALIB_NONE : RS_CALIB_DIAG;
	diag_ref_free(&ref);
	return kind;
}

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

/* A layer's whole Gram matrix, checked. */
static rs_status
load_full(const rs_calib *c, const rs_layer *layer, const rs_tensor *t, size_t n,
          double *g, double *count, rs_error *err)
{
	diag_ref own = {.naming = &namings[0], .owner = (char *)layer->name};
	char name[96], lname[96];
	rs_status st;

	rs_printable(name, sizeof name, t->name);
	rs_printable(lname, sizeof lname, layer->name);
	if (t->ndim != 2 || t->shape[0] != n || t->shape[1] != n)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': layer '%s' has %zu inputs, so its Gram matrix is %zu x %zu, "
		    "not %s%zu%s%zu", c->path, name, lname, n, n, n, t->ndim == 2 ? "" : "of shape ",
		    t->ndim >= 1 ? t->shape[0] : 0, t->ndim >= 2 ? " x " : "",
		    t->ndim >= 2 ? t->shape[1] : 0);
	/* row-major symmetric = column-major up to the symmetry checked next */
	if ((st = load_range(c, t, 0, t->count, g, err)) != RS_OK ||
	    (st = check_gram(c, t, g, n, err)) != RS_OK)
		return st;
	return ref_count(c, &own, 1, count, err);
}

/*
 * A layer's Gram matrix from the input vectors themselves, PREFIX.inputs
 * (s, n): G = X^T X summed in double precision (dsyrk), the count s unless
 * PREFIX.count says otherwise; checked as a given Gram matrix is.  Users
 * who record activations need not reduce them first.
 */
static rs_status
load_inputs(const rs_calib *c, const rs_layer *layer, const rs_tensor *t, size_t n,
            double *g, double *count, rs_error *err)
{
	diag_ref own = {.naming = &namings[0], .owner = (char *)layer->name};
	char name[96], lname[96];
	size_t s, i, j, first, rows, block;
	double *x;
	rs_status st = RS_OK;

	rs_printable(name, sizeof name, t->name);
	rs_printable(lname, sizeof lname, layer->name);
	if (t->ndim != 2 || t->shape[1] != n || t->shape[0] == 0)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': layer '%s' has %zu inputs, so its input vectors are "
		    "(samples, %zu) with at least one sample, not a %zu-D tensor of %zu x %zu",
		    c->path, name, lname, n, n, t->ndim, t->ndim >= 1 ? t->shape[0] : 0,
		    t->ndim >= 2 ? t->shape[1] : 0);
	s = t->shape[0];
	/* a block of rows at a time (about 8 MiB), summed into G */
	block = n < CALIB_INPUT_BLOCK ? CALIB_INPUT_BLOCK / n : 1;
	x = malloc((block < s ? block : s) * n * sizeof *x);
	if (!x)
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory for %zu x %zu",
		                    c->path, name, block, n);
	memset(g, 0, n * n * sizeof *g);
	for (first = 0; st == RS_OK && first < s; first += rows) {
		rows = s - first < block ? s - first : block;
		/* row-major (rows, n) is column-major X^T (n x rows) */
		st = load_range(c, t, first * n, rows * n, x, err);
		for (i = 0; st == RS_OK && i < rows * n; i++)
			if (!isfinite(x[i]))
				st = rs_error_set(err, RS_ENUMERIC, "%s: tensor '%s': sample %zu, input "
				                  "%zu is %g: inputs must be finite", c->path, name,
				                  first + i / n, i % n, x[i]);
		if (st == RS_OK)
			cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (blasint)n, (blasint)rows,
			            1.0, x, (blasint)n, 1.0, g, (blasint)n);
	}
	if (st == RS_OK) {
		for (j = 0; j < n; j++)
			for (i = j + 1; i < n; i++)
				g[i + j * n] = g[j + i * n];
		st = check_gram(c, t, g, n, err);
	}
	free(x);
	if (st != RS_OK)
		return st;
	if ((st = ref_count(c, &own, 1, count, err)) == RS_OK && isnan(*count))
		*count = (double)s;
	return st;
}

/* A layer's diagonal (its own, or its row of a stack's), checked, on g's
 * diagonal; *none when it is an expert the data never reached. */
static rs_status
load_diag(const rs_calib *c, const rs_layer *layer, const diag_ref *ref, size_t n,
          double *g, double *count, bool *none, rs_error *err)
{
	size_t first, rows, i;
	double *d;
	char name[96];
	rs_status st;

	*none = false;
	if ((st = locate_row(c, ref, layer, n, &first, &rows, err)) != RS_OK ||
	    (st = ref_count(c, ref, rows, count, err)) != RS_OK)
		return st;
	if (ref->naming->zero_count_is_none && *count == 0) {
		*none = true;
		return RS_OK;
	}
	d = malloc(n * sizeof *d);
	if (!d)
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory", c->path,
		                    rs_printable(name, sizeof name, ref->t->name));
	st = load_range(c, ref->t, first, n, d, err);
	rs_printable(name, sizeof name, ref->t->name);
	for (i = 0; st == RS_OK && i < n; i++) {
		if (!isfinite(d[i]) || d[i] < 0)
			st = rs_error_set(err, isfinite(d[i]) ? RS_EFORMAT : RS_ENUMERIC,
			    "%s: tensor '%s': value %zu is %g: a sum of squares is finite and "
			    ">= 0", c->path, name, first + i, d[i]);
		else if (ref->naming->mean_abs)
			g[i + i * n] = (isnan(*count) ? 1.0 : *count) * d[i] * d[i];
		else
			g[i + i * n] = d[i];
	}
	free(d);
	return st;
}

rs_status
rs_calib_load(const rs_calib *c, const rs_layer *layer, rs_calib_kind *kind,
              double **gram, double *count, rs_error *err)
{
	const rs_tensor *full = find_stat(c, layer->name, ".gram");
	const rs_tensor *inputs = full ? NULL : find_stat(c, layer->name, ".inputs");
	diag_ref ref = {0};
	const char *why;
	size_t n;
	double *g;
	char name[96], lname[96];
	bool none = false;
	rs_status st;

	*gram = NULL;
	*count = NAN;
	*kind = RS_CALIB_NONE;
	if (inputs)
		full = inputs;
	if (full)
		*kind = RS_CALIB_FULL;
	else if (find_diag(c, layer->name, &ref))
		*kind = RS_CALIB_DIAG;
	else
		return RS_OK;
	n = input_width(layer, &why);
	if (n == 0) {
		st = rs_error_set(err, RS_EINVAL,
		    "%s: tensor '%s': layer '%s' takes no calibration: %s", c->path,
		    rs_printable(name, sizeof name, full ? full->name : ref.t->name),
		    rs_printable(lname, sizeof lname, layer->name), why);
		diag_ref_free(&ref);
		return st;
	}
	g = calloc(n * n, sizeof *g);
	if (!g) {
		st = rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory for %zu x %zu",
		    c->path, rs_printable(name, sizeof name, full ? full->name : ref.t->name), n, n);
		diag_ref_free(&ref);
		return st;
	}
	if (inputs)
		st = load_inputs(c, layer, inputs, n, g, count, err);
	else if (full)
		st = load_full(c, layer, full, n, g, count, err);
	else
		st = load_diag(c, layer, &ref, n, g, count, &none, err);
	diag_ref_free(&ref);
	if (st != RS_OK || none) {
		free(g);
		if (none)
			*kind = RS_CALIB_NONE;
		return st;
	}
	*gram = g;
	return RS_OK;
}

/* Marks the tensors named owner + each suffix. */
static void
claim(const rs_calib *c, const char *owner, const char *const *sfx, size_t nsfx, bool *used)
{
	size_t s;

	for (s = 0; s < nsfx; s++) {
		const rs_tensor *t = find_stat(c, owner, sfx[s]);

		if (t)
			used[t - c->file->tensors] = true;
	}
}

const char *
rs_calib_unmatched(const rs_calib *c, const rs_layer *layers, size_t nlayers, size_t *count)
{
	bool *used = rs_xcalloc(c->file->ntensors ? c->file->ntensors : 1, sizeof *used);
	const char *first = NULL;
	size_t i, l, base_len, e;

	for (l = 0; l < nlayers; l++) {
		claim(c, layers[l].name, suffixes, sizeof suffixes / sizeof suffixes[0], used);
		if (expert_view(layers[l].name, &base_len, &e)) {
			char *base = rs_xstrndup(layers[l].name, base_len);

			claim(c, base, stack_suffixes, sizeof stack_suffixes / sizeof stack_suffixes[0],
			      used);
			free(base);
		}
	}
	*count = 0;
	for (i = 0; i < c->file->ntensors; i++)
		if (!used[i]) {
			if (!first)
				first = c->file->tensors[i].name;
			(*count)++;
		}
	free(used);
	return first;
}
