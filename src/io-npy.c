/*
 * io-npy.c — NumPy .npy files and .npz archives (numpy.save, numpy.savez,
 * numpy.savez_compressed).
 *
 * .npy: "\x93NUMPY", major 1/2/3, minor 0, the header length (2 bytes for
 * v1, 4 for v2/v3, little-endian), then a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with
 * spaces and a newline, then the elements.  The dict is parsed strictly (a
 * literal, exactly those three keys, a tuple shape) without evaluating
 * anything, and the file must hold exactly header + elements.
 *
 * .npz: a zip of NAME.npy entries; tensor NAME, in the archive's order.
 * libzip reads the archive (zip64 included) and inflates.  A stored entry
 * is used in place: its data offset comes from the central directory
 * (zipentry.h; libzip 1.7 does not expose it), cross-checked against
 * libzip's view of the same entry and against the local header, whose copy
 * of the npy header must equal what libzip read; anything that does not
 * agree is read through libzip instead.  A deflated entry cannot be
 * mapped, so it is inflated into a buffer the model owns, after its
 * declared size has been checked against its npy header, deflate's maximum
 * ratio and RS_NPZ_MAX_INFLATED, and the stream must produce exactly that
 * size (a zip bomb fails before it allocates).
 *
 * Fortran-order arrays are copied into C order at open: every consumer of
 * rs_tensor (the loaders, the cache key, apply's verbatim copies) reads
 * elements in C order, and one copy here keeps all of them right.
 *
 * Reads of mapped bytes go through the SIGBUS guard (guard.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "rankscope/guard.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "rankscope/zipentry.h"

#define NAME_SHOWN 160

typedef struct descr_row {
	const char *descr;
	rs_dtype dtype;
} descr_row;

/* What numpy.save writes on a little-endian machine for each dtype we
 * take; single-byte types are '|'. */
static const descr_row descr_table[] = {
	{"<f2", RS_DTYPE_F16}, {"<f4", RS_DTYPE_F32}, {"<f8", RS_DTYPE_F64},
	{"|b1", RS_DTYPE_BOOL}, {"|u1", RS_DTYPE_U8}, {"|i1", RS_DTYPE_I8},
	{"<i2", RS_DTYPE_I16}, {"<u2", RS_DTYPE_U16}, {"<i4", RS_DTYPE_I32},
	{"<u4", RS_DTYPE_U32}, {"<i8", RS_DTYPE_I64}, {"<u8", RS_DTYPE_U64},
	{"<c8", RS_DTYPE_C64},
};

/* ---- the header dict ------------------------------------------------------ */

typedef struct lexer {
	const char *s;
	size_t n, i;
} lexer;

static void
skip_ws(lexer *l)
{
	while (l->i < l->n && (l->s[l->i] == ' ' || l->s[l->i] == '\t' ||
	                       l->s[l->i] == '\n' || l->s[l->i] == '\r'))
		l->i++;
}

static bool
take(lexer *l, char c)
{
	skip_ws(l);
	if (l->i < l->n && l->s[l->i] == c) {
		l->i++;
		return true;
	}
	return false;
}

/* A quoted string without escapes (numpy never writes any). */
static bool
lex_string(lexer *l, const char **start, size_t *len)
{
	char q;
	size_t b;

	skip_ws(l);
	if (l->i >= l->n || (l->s[l->i] != '\'' && l->s[l->i] != '"'))
		return false;
	q = l->s[l->i++];
	b = l->i;
	while (l->i < l->n && l->s[l->i] != q) {
		if (l->s[l->i] == '\\' || l->s[l->i] == '\n')
			return false;
		l->i++;
	}
	if (l->i >= l->n)
		return false;
	*start = l->s + b;
	*len = l->i - b;
	l->i++;
	return true;
}

static bool
lex_word(lexer *l, const char *w)
{
	size_t n = strlen(w);

	skip_ws(l);
	if (l->n - l->i >= n && memcmp(l->s + l->i, w, n) == 0) {
		l->i += n;
		return true;
	}
	return false;
}

typedef struct npy_header {
	char descr[24];
	bool fortran;
	size_t ndim;
	size_t *shape;
} npy_header;

#define HFAIL(...) rs_error_set(err, RS_EFORMAT, __VA_ARGS__)

/* shape: a tuple of non-negative integers, "(3,)" for one, "()" for none. */
static rs_status
parse_shape(lexer *l, npy_header *h, const char *path, const char *tn, rs_error *err)
{
	size_t cap = 0;
	bool comma = true;

	if (!take(l, '('))
		return HFAIL("%s: tensor '%s': npy header: shape must be a tuple of "
		             "non-negative integers", path, tn);
	for (;;) {
		size_t v = 0;
		bool digits = false;

		skip_ws(l);
		if (take(l, ')'))
			break;
		if (!comma)
			return HFAIL("%s: tensor '%s': npy header: shape: expected ',' or ')' "
			             "at byte %zu", path, tn, l->i);
		while (l->i < l->n && l->s[l->i] >= '0' && l->s[l->i] <= '9') {
			if (rs_mul_overflows(v, 10, &v) || v > SIZE_MAX - (size_t)(l->s[l->i] - '0'))
				return HFAIL("%s: tensor '%s': npy header: shape[%zu] does not fit "
				             "in %zu bits", path, tn, h->ndim, 8 * sizeof(size_t));
			v += (size_t)(l->s[l->i++] - '0');
			digits = true;
		}
		if (!digits)
			return HFAIL("%s: tensor '%s': npy header: shape[%zu] must be a "
			             "non-negative integer", path, tn, h->ndim);
		if (l->i < l->n && l->s[l->i] == 'L')   /* Python 2 longs */
			l->i++;
		if (h->ndim == cap) {
			size_t *bigger;
			cap = cap ? 2 * cap : 4;
			bigger = realloc(h->shape, cap * sizeof *h->shape);
			if (bigger == NULL)
				return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of "
				                    "memory for its shape", path, tn);
			h->shape = bigger;
		}
		h->shape[h->ndim++] = v;
		comma = take(l, ',');
		if (h->ndim == 1 && !comma && take(l, ')')) {
			/* "(3)" is the integer 3 in Python, not a tuple */
			return HFAIL("%s: tensor '%s': npy header: shape must be a tuple "
			             "(one dimension is written '(N,)')", path, tn);
		}
	}
	return RS_OK;
}

static rs_status
parse_descr(lexer *l, npy_header *h, const char *path, const char *tn, rs_error *err)
{
	const char *s;
	size_t n;

	skip_ws(l);
	if (l->i < l->n && l->s[l->i] == '[')
		return HFAIL("%s: tensor '%s': structured (record) dtype: only plain "
		             "numeric arrays are weights", path, tn);
	if (!lex_string(l, &s, &n) || n == 0 || n >= sizeof h->descr)
		return HFAIL("%s: tensor '%s': npy header: descr must be a dtype string "
		             "such as '<f4'", path, tn);
	memcpy(h->descr, s, n);
	h->descr[n] = '\0';
	return RS_OK;
}

/* The dict literal of hlen bytes; every key exactly once, nothing else. */
static rs_status
parse_dict(const char *text, size_t len, npy_header *h, const char *path,
           const char *tn, rs_error *err)
{
	lexer l = {text, len, 0};
	bool seen_descr = false, seen_fortran = false, seen_shape = false;
	rs_status st;

	if (memchr(text, '\0', len) != NULL)
		return HFAIL("%s: tensor '%s': npy header holds a NUL byte", path, tn);
	if (!take(&l, '{'))
		return HFAIL("%s: tensor '%s': npy header is not a Python dict literal "
		             "({'descr': ..., 'fortran_order': ..., 'shape': ...})", path, tn);
	while (!take(&l, '}')) {
		const char *k;
		size_t kn;
		bool *seen;

		if (!lex_string(&l, &k, &kn))
			return HFAIL("%s: tensor '%s': npy header: expected a quoted key or '}' "
			             "at byte %zu", path, tn, l.i);
		seen = kn == 5 && memcmp(k, "descr", 5) == 0 ? &seen_descr :
		       kn == 13 && memcmp(k, "fortran_order", 13) == 0 ? &seen_fortran :
		       kn == 5 && memcmp(k, "shape", 5) == 0 ? &seen_shape : NULL;
		if (seen == NULL) {
			char shown[64], key[64];
			snprintf(key, sizeof key, "%.*s", (int)(kn < 60 ? kn : 60), k);
			return HFAIL("%s: tensor '%s': npy header: unexpected key '%s' (a header "
			             "has exactly descr, fortran_order and shape)", path, tn,
			             rs_printable(shown, sizeof shown, key));
		}
		if (*seen)
			return HFAIL("%s: tensor '%s': npy header: key '%.*s' given twice", path,
			             tn, (int)kn, k);
		*seen = true;
		if (!take(&l, ':'))
			return HFAIL("%s: tensor '%s': npy header: expected ':' after '%.*s'",
			             path, tn, (int)kn, k);
		if (seen == &seen_descr)
			st = parse_descr(&l, h, path, tn, err);
		else if (seen == &seen_shape)
			st = parse_shape(&l, h, path, tn, err);
		else if (lex_word(&l, "True"))
			h->fortran = true, st = RS_OK;
		else if (lex_word(&l, "False"))
			h->fortran = false, st = RS_OK;
		else
			st = HFAIL("%s: tensor '%s': npy header: fortran_order must be True or "
			           "False", path, tn);
		if (st != RS_OK)
			return st;
		if (!take(&l, ',')) {
			if (!take(&l, '}'))
				return HFAIL("%s: tensor '%s': npy header: expected ',' or '}' at "
				             "byte %zu", path, tn, l.i);
			break;
		}
	}
	skip_ws(&l);
	if (l.i != l.n)
		return HFAIL("%s: tensor '%s': npy header: %zu bytes after the dict", path,
		             tn, l.n - l.i);
	if (!seen_descr || !seen_fortran || !seen_shape)
		return HFAIL("%s: tensor '%s': npy header: missing '%s'", path, tn,
		             !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
	return RS_OK;
}

static rs_status
descr_dtype(const char *descr, rs_dtype *out, const char *path, const char *tn,
            rs_error *err)
{
	char shown[64];
	const char *sd = rs_printable(shown, sizeof shown, descr);
	size_t i;

	for (i = 0; i < sizeof descr_table / sizeof descr_table[0]; i++)
		if (strcmp(descr, descr_table[i].descr) == 0) {
			*out = descr_table[i].dtype;
			return RS_OK;
		}
	if (descr[0] == '>')
		return HFAIL("%s: tensor '%s': big-endian dtype '%s' is not read (save it "
		             "little-endian: arr.astype('<%s'))", path, tn, sd, sd + 1);
	if (strcmp(descr, "<V2") == 0 || strcmp(descr, "|V2") == 0)
		return HFAIL("%s: tensor '%s': dtype '%s' is raw 2-byte records: numpy has "
		             "no bfloat16, and extension types (ml_dtypes) save as bare "
		             "bytes that cannot be told from any other record; save it as "
		             "float32", path, tn, sd);
	if (descr[0] != '\0' && (descr[1] == 'O' || descr[0] == 'O'))
		return HFAIL("%s: tensor '%s': dtype '%s' is an array of Python objects "
		             "(a pickle), not numbers", path, tn, sd);
	return HFAIL("%s: tensor '%s': unsupported dtype '%s' (rankscope reads '<f2', "
	             "'<f4', '<f8' as layers, and bool, integers and '<c8' as other "
	             "tensors)", path, tn, sd);
}

/*
 * The npy frame at the start of `b` (have bytes of an object of `total`
 * bytes): its header end (prefix + dict length) in *end, or an error.
 */
static rs_status
npy_frame(const unsigned char *b, size_t have, uint64_t total, size_t *prefix,
          size_t *end, const char *path, const char *tn, rs_error *err)
{
	uint64_t hlen;

	if (have < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
		return HFAIL("%s: tensor '%s': not an npy array (%s)", path, tn,
		             have < 10 ? "too short for the 10-byte npy preamble" :
		                         "no \\x93NUMPY magic");
	if (b[6] < 1 || b[6] > 3 || b[7] != 0)
		return HFAIL("%s: tensor '%s': npy format version %u.%u (rankscope reads "
		             "1.0, 2.0 and 3.0)", path, tn, b[6], b[7]);
	*prefix = b[6] == 1 ? 10 : 12;
	if (have < *prefix)
		return HFAIL("%s: tensor '%s': too short for the %zu-byte npy preamble",
		             path, tn, *prefix);
	hlen = rs_read_le(b + 8, b[6] == 1 ? 2 : 4);
	if (hlen > RS_NPY_MAX_HEADER)
		return HFAIL("%s: tensor '%s': npy header length %llu exceeds the limit of "
		             "%u bytes", path, tn, (unsigned long long)hlen, RS_NPY_MAX_HEADER);
	if (hlen > total - *prefix)
		return HFAIL("%s: tensor '%s': npy header length %llu runs past the end of "
		             "its %llu bytes (truncated file?)", path, tn,
		             (unsigned long long)hlen, (unsigned long long)total);
	*end = *prefix + (size_t)hlen;
	return RS_OK;
}

/* Fills t from the header bytes [0, end) of an object of `total` bytes. */
static rs_status
npy_tensor(const unsigned char *b, size_t prefix, size_t end, uint64_t total,
           rs_tensor *t, npy_header *h, const char *path, rs_error *err)
{
	char shown[NAME_SHOWN];
	const char *tn = rs_printable(shown, sizeof shown, t->name);
	size_t i, bits;
	rs_status st;

	if ((st = parse_dict((const char *)b + prefix, end - prefix, h, path, tn, err)) != RS_OK)
		return st;
	if ((st = descr_dtype(h->descr, &t->dtype, path, tn, err)) != RS_OK)
		return st;
	t->ndim = h->ndim;
	t->shape = h->shape;
	h->shape = NULL;
	t->count = 1;
	for (i = 0; i < t->ndim; i++)
		if (rs_mul_overflows(t->count, t->shape[i], &t->count))
			return HFAIL("%s: tensor '%s': element count of its shape overflows",
			             path, tn);
	bits = rs_dtype_get(t->dtype)->bits;
	if (rs_mul_overflows(t->count, bits / 8, &t->nbytes))
		return HFAIL("%s: tensor '%s': byte size of its shape overflows", path, tn);
	if (t->nbytes > total - end)
		return HFAIL("%s: tensor '%s': %zu elements of '%s' need %zu bytes but only "
		             "%llu follow the header (truncated file?)", path, tn, t->count,
		             h->descr, t->nbytes, (unsigned long long)(total - end));
	if (t->nbytes != total - end)
		return HFAIL("%s: tensor '%s': %llu bytes after the array's %zu (shape says "
		             "%zu elements of '%s')", path, tn,
		             (unsigned long long)(total - end - t->nbytes), t->nbytes,
		             t->count, h->descr);
	return RS_OK;
}

/* ---- models ---------------------------------------------------------------- */

static rs_model *
new_model(const char *path, const char *format, const unsigned char *map, size_t len)
{
	rs_model *m = rs_xcalloc(1, sizeof *m);

	m->path = rs_xstrdup(path);
	m->format = format;
	m->map = map;
	m->map_len = len;
	m->file_size = len;
	return m;
}

static void
own_buffer(rs_model *m, void *buf)
{
	m->buffers = rs_xrealloc(m->buffers, (m->nbuffers + 1) * sizeof *m->buffers);
	m->buffers[m->nbuffers++] = buf;
}

typedef struct permute_args {
	const unsigned char *src;
	unsigned char *dst;
	size_t esize, ndim, count;
	const size_t *shape;
	size_t *idx, *fstride;
} permute_args;

/* dst (C order) from src (Fortran order); loads and stores only. */
static void
permute_fortran(void *arg)
{
	permute_args *a = arg;
	size_t o, f = 0, k;

	for (o = 0; o < a->count; o++) {
		memcpy(a->dst + o * a->esize, a->src + f * a->esize, a->esize);
		for (k = a->ndim; k-- > 0;) {
			a->idx[k]++;
			f += a->fstride[k];
			if (a->idx[k] < a->shape[k])
				break;
			f -= a->shape[k] * a->fstride[k];
			a->idx[k] = 0;
		}
	}
}

/*
 * Points t at its elements, starting at src; a Fortran-order array of two
 * or more dimensions is copied into C order first (a buffer of m's).
 */
static rs_status
place_data(rs_model *m, rs_tensor *t, const unsigned char *src, bool fortran,
           rs_error *err)
{
	permute_args a = {0};
	size_t k, nontrivial = 0;
	rs_status st;

	for (k = 0; k < t->ndim; k++)
		nontrivial += t->shape[k] > 1;
	if (!fortran || nontrivial < 2 || t->count == 0) {
		t->data = src;
		return RS_OK;
	}
	a.dst = malloc(t->nbytes);
	a.idx = calloc(t->ndim, sizeof *a.idx);
	a.fstride = malloc(t->ndim * sizeof *a.fstride);
	if (a.dst == NULL || a.idx == NULL || a.fstride == NULL) {
		free(a.dst), free(a.idx), free(a.fstride);
		return rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory for "
		                    "its %zu bytes in C order", m->path, t->name, t->nbytes);
	}
	for (k = 0; k < t->ndim; k++)
		a.fstride[k] = k == 0 ? 1 : a.fstride[k - 1] * t->shape[k - 1];
	a.src = src;
	a.esize = rs_dtype_get(t->dtype)->bits / 8;
	a.ndim = t->ndim;
	a.count = t->count;
	a.shape = t->shape;
	st = rs_guard_run(src, t->nbytes, permute_fortran, &a, m->path, t->name, err);
	free(a.idx);
	free(a.fstride);
	if (st != RS_OK) {
		free(a.dst);
		return st;
	}
	own_buffer(m, a.dst);
	t->data = a.dst;
	return RS_OK;
}

/* "dir/w.npy" -> "w" */
static char *
npy_tensor_name(const char *path)
{
	size_t n;
	const char *base = rs_path_stem(path, ".npy", &n);

	return rs_xstrndup(base, n);
}

static rs_model *
npy_image(const char *path, const unsigned char *map, size_t len, rs_error *err)
{
	rs_model *m = new_model(path, "npy", map, len);
	unsigned char pre[12], *hdr = NULL;
	size_t prefix, end, have = len < 12 ? len : 12;
	npy_header h = {0};
	rs_tensor *t;

	m->tensors = t = rs_xcalloc(1, sizeof *t);
	m->ntensors = 1;
	t->name = npy_tensor_name(path);
	if (rs_guard_copy(pre, map, have, path, NULL, err) != RS_OK ||
	    npy_frame(pre, have, len, &prefix, &end, path, t->name, err) != RS_OK)
		goto fail;
	hdr = malloc(end);
	if (hdr == NULL) {
		rs_error_set(err, RS_ENOMEM, "%s: out of memory for its npy header", path);
		goto fail;
	}
	if (rs_guard_copy(hdr, map, end, path, NULL, err) != RS_OK ||
	    npy_tensor(hdr, prefix, end, len, t, &h, path, err) != RS_OK)
		goto fail;
	m->header_len = end - prefix;
	rs_sha256(hdr + prefix, end - prefix, m->header_sha256);
	t->offset = end;
	if (place_data(m, t, map + end, h.fortran, err) != RS_OK)
		goto fail;
	free(hdr);
	return m;
fail:
	free(hdr);
	free(h.shape);
	rs_model_close(m);
	return NULL;
}

rs_model *
rs_npy_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	return npy_image(path, bytes, len, err);
}

/* ---- npz ------------------------------------------------------------------- */

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Entry i of the archive as tensor i of m: its npy header read through
 * libzip, then its elements mapped in place (stored, offset agreed) or
 * read into a buffer m owns (deflated, or no agreed offset).
 */
static rs_status
npz_entry(rs_model *m, zip_t *z, const rs_zip_central *c, size_t i, uint64_t *inflated,
          rs_sha256_ctx *digest, rs_error *err)
{
	const char *path = m->path;
	rs_tensor *t = &m->tensors[i];
	const unsigned needed = ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE |
	                        ZIP_STAT_COMP_METHOD;
	zip_stat_t zs;
	zip_file_t *zf = NULL;
	unsigned char pre[12], *hdr = NULL, *buf = NULL, *inplace = NULL, extra;
	char shown[NAME_SHOWN];
	const char *en;
	size_t prefix, end, nlen, have;
	uint64_t data_at = 0;
	npy_header h = {0};
	rs_status st;

	if (zip_stat_index(z, (zip_uint64_t)i, ZIP_FL_ENC_RAW, &zs) != 0 ||
	    (zs.valid & needed) != needed)
		return HFAIL("%s: entry %zu: %s", path, i, zip_strerror(z));
	en = rs_printable(shown, sizeof shown, zs.name);
	nlen = strlen(zs.name);
	if (nlen <= 4 || strcmp(zs.name + nlen - 4, ".npy") != 0)
		return HFAIL("%s: entry '%s' is not an npy array (an .npz holds only "
		             "NAME.npy entries)", path, en);
	t->name = rs_xstrndup(zs.name, nlen - 4);
	if ((zs.valid & ZIP_STAT_ENCRYPTION_METHOD) && zs.encryption_method != ZIP_EM_NONE)
		return HFAIL("%s: entry '%s' is encrypted", path, en);
	if ((st = rs_zip_check_ratio(&zs, path, en, err)) != RS_OK)
		return st;
	if (zs.comp_method == ZIP_CM_STORE && m->map != NULL &&
	    (st = rs_zip_stored_offset(path, m->map, m->map_len, c, i, &zs, &data_at,
	                               err)) != RS_OK)
		return st;
	zf = zip_fopen_index(z, (zip_uint64_t)i, 0);
	if (zf == NULL)
		return HFAIL("%s: entry '%s': %s", path, en, zip_strerror(z));
	have = zs.size < 12 ? (size_t)zs.size : 12;
	if ((st = rs_zip_read_exact(zf, pre, have, path, en, err)) != RS_OK ||
	    (st = npy_frame(pre, have, zs.size, &prefix, &end, path, t->name, err)) != RS_OK)
		goto out;
	hdr = rs_xmalloc(end > have ? end : have);   /* bounded by RS_NPY_MAX_HEADER */
	memcpy(hdr, pre, have);
	if (end > have &&
	    (st = rs_zip_read_exact(zf, hdr + have, end - have, path, en, err)) != RS_OK)
		goto out;
	if ((st = npy_tensor(hdr, prefix, end, zs.size, t, &h, path, err)) != RS_OK)
		goto out;
	rs_sha256_update(digest, (const unsigned char *)zs.name, nlen + 1);
	rs_sha256_update(digest, hdr + prefix, end - prefix);
	m->header_len += end - prefix;
	if (data_at != 0) {
		/* the bytes at the agreed offset must be the header libzip read */
		unsigned char *check = rs_xmalloc(end);
		st = rs_guard_copy(check, m->map + data_at, end, path, t->name, err);
		if (st == RS_OK && memcmp(check, hdr, end) == 0)
			inplace = (unsigned char *)m->map + data_at + end;
		free(check);
		if (st != RS_OK)
			goto out;
	}
	if (inplace != NULL) {
		t->offset = data_at + end;
		st = place_data(m, t, inplace, h.fortran, err);
		goto out;
	}
	if (t->nbytes > RS_NPZ_MAX_INFLATED - *inflated) {
		st = HFAIL("%s: entry '%s': inflating its %zu bytes would take the model past "
		           "%llu bytes in memory", path, en, t->nbytes,
		           (unsigned long long)RS_NPZ_MAX_INFLATED);
		goto out;
	}
	*inflated += t->nbytes;
	buf = malloc(t->nbytes ? t->nbytes : 1);
	if (buf == NULL) {
		st = rs_error_set(err, RS_ENOMEM, "%s: tensor '%s': out of memory for its "
		                  "%zu inflated bytes", path, en, t->nbytes);
		goto out;
	}
	/* a header shorter than the 12 bytes read first left data in pre */
	if (have > end)
		memcpy(buf, pre + end, have - end);
	if (t->nbytes > have - (have > end ? end : have) &&
	    (st = rs_zip_read_exact(zf, buf + (have > end ? have - end : 0),
	                     t->nbytes - (have > end ? have - end : 0), path, en, err)) != RS_OK)
		goto out;
	if (zip_fread(zf, &extra, 1) != 0) {
		st = HFAIL("%s: entry '%s': inflates to more than the %llu bytes it declares",
		           path, en, (unsigned long long)zs.size);
		goto out;
	}
	own_buffer(m, buf);
	st = place_data(m, t, buf, h.fortran, err);
	buf = NULL;
out:
	free(buf);
	free(hdr);
	free(h.shape);
	if (zf != NULL && zip_fclose(zf) != 0 && st == RS_OK)
		st = HFAIL("%s: entry '%s': damaged (CRC or stream error)", path, en);
	return st;
}

/* m (path, map) from an opened archive. */
static rs_status
npz_build(rs_model *m, zip_t *z, rs_error *err)
{
	zip_int64_t n = zip_get_num_entries(z, 0);
	rs_zip_central c = {0};
	rs_sha256_ctx digest;
	uint64_t inflated = 0;
	char **names;
	size_t i;
	rs_status st = RS_OK;

	if (n <= 0)
		return HFAIL("%s: the archive holds no arrays", m->path);
	m->tensors = calloc((size_t)n, sizeof *m->tensors);
	if (m->tensors == NULL)
		return rs_error_set(err, RS_ENOMEM, "%s: out of memory for %lld entries",
		                    m->path, (long long)n);
	if (m->map != NULL &&
	    (st = rs_zip_central_read(m->path, m->map, m->map_len, &c, err)) != RS_OK)
		return st;
	if (c.n != (size_t)n)
		rs_zip_central_free(&c);   /* disagrees with libzip: read everything through it */
	rs_sha256_init(&digest);
	for (i = 0; i < (size_t)n && st == RS_OK; i++) {
		m->ntensors = i + 1;
		st = npz_entry(m, z, &c, i, &inflated, &digest, err);
	}
	rs_zip_central_free(&c);
	if (st != RS_OK)
		return st;
	rs_sha256_final(&digest, m->header_sha256);
	/* numpy.load keys entries by name: a repeated name hides an array */
	names = rs_xcalloc(m->ntensors, sizeof *names);
	for (i = 0; i < m->ntensors; i++)
		names[i] = m->tensors[i].name;
	qsort(names, m->ntensors, sizeof *names, compare_names);
	for (i = 1; i < m->ntensors && st == RS_OK; i++)
		if (strcmp(names[i - 1], names[i]) == 0) {
			char shown[NAME_SHOWN];
			st = HFAIL("%s: tensor '%s' appears twice in the archive", m->path,
			           rs_printable(shown, sizeof shown, names[i]));
		}
	free(names);
	return st;
}

rs_model *
rs_npz_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	return rs_zip_model_parse(new_model(path, "npz", bytes, len), bytes, len, npz_build, err);
}

/* ---- opening files ------------------------------------------------------------ */

rs_model *
rs_npy_open(const char *path, rs_error *err)
{
	rs_mapped_file f;

	if (!rs_file_map(path, &f, err))
		return NULL;
	return rs_file_map_adopt(path, &f, npy_image(path, rs_file_map_bytes(&f),
	                                             (size_t)f.size, err), err);
}

/* libzip reads the archive with read(2) from its own descriptor, so a file
 * shrinking meanwhile is a read error there, never a fault; only mapped
 * stored entries are read from the map, under the guard. */
rs_model *
rs_npz_open(const char *path, rs_error *err)
{
	rs_mapped_file f;
	rs_model *m;

	if (!rs_file_map(path, &f, err))
		return NULL;
	m = new_model(path, "npz", f.map, (size_t)f.size);
	return rs_file_map_adopt(path, &f, rs_zip_model_open(m, f.fd, npz_build, err), err);
}
