/*
 * io-imatrix.c — llama.cpp's legacy importance matrix (imatrix.dat); see
 * rankscope/imatrix.h.
 *
 * The layout, from llama-imatrix's writer (save_imatrix_legacy) and the
 * readers of llama-imatrix and llama-quantize; raw writes of int32 and
 * float, so little-endian on every machine llama.cpp runs on:
 *
 *   int32 n_entries                      >= 1
 *   n_entries times:
 *     int32 len, len bytes               the weight's name, no NUL
 *     int32 ncall                        chunks (older writers: calls) seen
 *     int32 nval, nval float32 values    one per input column; a stack of
 *                                        E experts has E rows of n (nval = E n)
 *   then either nothing (the first writers; llama-quantize still reads
 *   such files), or
 *     int32 last_call                    the run's chunk count
 *     int32 len, len bytes               the dataset's file name
 *
 * What a value is.  llama-imatrix sums S_j = sum of x_j^2 over the c input
 * vectors a matrix saw (each expert of a stack its own c) and writes
 * S_j / c * ncall; llama-quantize divides by ncall again and uses the mean
 * of x_j^2.  (An expert the data never reached is written as 1 / 1 * ncall:
 * indistinguishable from data, and harmless, since a constant D gives the
 * weight figures.)  c is not in the file, so neither the sum nor the count
 * can be recovered: the values are the sums up to a factor ncall / c that
 * is the same for every column of one matrix.  Every calibration figure
 * is a ratio in that matrix's D (tr(E D E^T) / tr(W D W^T), the shift a
 * fraction of tr(D) / n), so it is unchanged by the factor, and the values
 * are kept as stored: NAME.diag points into the file's bytes, and there is
 * no NAME.count.
 *
 * The file is read into memory (rs_file_read_all), not mapped: names and
 * values interleave, every value is checked anyway, and a read cannot
 * fault the way a map of a shrinking file does.
 */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/file.h"
#include "rankscope/imatrix.h"
#include "rankscope/util.h"

/* The smallest entry: a length, a one-byte name, ncall, nval, one value. */
#define MIN_ENTRY_BYTES 17
/* The most bytes rs_imatrix_open reads (an imatrix of a 600B-parameter
 * model of experts is a few GB). */
#define IMATRIX_MAX_BYTES ((size_t)64 << 30)
#define NAME_SHOWN 160

typedef struct reader {
	const char *path;
	const unsigned char *bytes;
	size_t len, pos;
	rs_error *err;
	/* the entry being read, for messages (entry 0: the header) */
	size_t entry, nentries;
	char name[NAME_SHOWN];
} reader;

static rs_status fail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "PATH: imatrix entry 3 of 7 ('blk.0.attn_q.weight'): " + the problem */
static rs_status
fail(reader *r, const char *fmt, ...)
{
	char msg[RS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (r->entry == 0)
		return rs_error_set(r->err, RS_EFORMAT, "%s: llama.cpp imatrix: %s", r->path, msg);
	if (r->name[0] == '\0')
		return rs_error_set(r->err, RS_EFORMAT, "%s: llama.cpp imatrix entry %zu of %zu: %s",
		                    r->path, r->entry, r->nentries, msg);
	return rs_error_set(r->err, RS_EFORMAT, "%s: llama.cpp imatrix entry %zu of %zu ('%s'): %s",
	                    r->path, r->entry, r->nentries, r->name, msg);
}

static size_t
left(const reader *r)
{
	return r->len - r->pos;
}

/* An int32 field; `what` names it for a file that ends first. */
static rs_status
take_i32(reader *r, const char *what, int32_t *v)
{
	if (left(r) < 4)
		return fail(r, "the file ends at byte %zu, inside %s (4 bytes; %zu left): "
		            "truncated?", r->len, what, left(r));
	*v = (int32_t)(uint32_t)rs_read_le(r->bytes + r->pos, 4);
	r->pos += 4;
	return RS_OK;
}

/* A length-prefixed string of 1..max bytes (0..max when `empty`), no NUL. */
static rs_status
take_string(reader *r, const char *what, size_t max, bool empty, size_t *at, size_t *n)
{
	int32_t len = 0;
	const unsigned char *nul;
	rs_status st;
	char lenwhat[64];

	snprintf(lenwhat, sizeof lenwhat, "%s's length", what);
	if ((st = take_i32(r, lenwhat, &len)) != RS_OK)
		return st;
	if (len < (empty ? 0 : 1) || (size_t)len > max)
		return fail(r, "%s is %d bytes long (it must be %d to %zu)", what, (int)len,
		            empty ? 0 : 1, max);
	if ((size_t)len > left(r))
		return fail(r, "%s takes %d bytes but the file has only %zu left: truncated?",
		            what, (int)len, left(r));
	nul = memchr(r->bytes + r->pos, '\0', (size_t)len);
	if (nul != NULL)
		return fail(r, "%s has a NUL byte at offset %zu", what,
		            (size_t)(nul - (r->bytes + r->pos)));
	*at = r->pos;
	*n = (size_t)len;
	r->pos += (size_t)len;
	return RS_OK;
}

static void
add_metadata(rs_model *m, const char *key, char *value)
{
	m->metadata = rs_xreallocarray(m->metadata, m->nmetadata + 1, sizeof *m->metadata);
	m->metadata[m->nmetadata].key = rs_xstrdup(key);
	m->metadata[m->nmetadata].value = value;
	m->nmetadata++;
}

/* One entry: its name, call count and values, as tensor NAME.diag. */
static rs_status
read_entry(reader *r, rs_model *m)
{
	size_t at, n, i;
	int32_t ncall = 0, nval = 0;
	rs_tensor *t;
	char *name;
	rs_status st;

	r->name[0] = '\0';
	if ((st = take_string(r, "the name", RS_IMATRIX_MAX_NAME, false, &at, &n)) != RS_OK)
		return st;
	name = rs_xstrndup((const char *)r->bytes + at, n);
	rs_printable(r->name, sizeof r->name, name);
	if ((st = take_i32(r, "the call count", &ncall)) != RS_OK ||
	    (st = take_i32(r, "the value count", &nval)) != RS_OK) {
		free(name);
		return st;
	}
	/* every writer counts at least one call (chunk) for an entry it writes */
	if (ncall < 1) {
		free(name);
		return fail(r, "call count %d (an entry is written after at least one call)",
		            (int)ncall);
	}
	if (nval < 1) {
		free(name);
		return fail(r, "value count %d (an entry has at least one value)", (int)nval);
	}
	if ((size_t)nval > left(r) / 4) {
		free(name);
		return fail(r, "%d values take %zu bytes but the file has only %zu left: "
		            "truncated?", (int)nval, (size_t)nval * 4, left(r));
	}
	for (i = 0; i < (size_t)nval; i++) {
		union { uint32_t u; float f; } v;

		v.u = (uint32_t)rs_read_le(r->bytes + r->pos + 4 * i, 4);
		if (!isfinite(v.f) || v.f < 0) {
			free(name);
			return fail(r, "value %zu is %g: an importance (a mean of squares) is finite and >= 0", i,
			            (double)v.f);
		}
	}
	m->tensors = rs_xreallocarray(m->tensors, m->ntensors + 1, sizeof *m->tensors);
	t = &m->tensors[m->ntensors++];
	memset(t, 0, sizeof *t);
	t->name = rs_xasprintf("%s.diag", name);
	free(name);
	t->dtype = RS_DTYPE_F32;
	t->ndim = 1;
	t->shape = rs_xcalloc(1, sizeof *t->shape);
	t->shape[0] = (size_t)nval;
	t->count = (size_t)nval;
	t->nbytes = 4 * (size_t)nval;
	t->offset = r->pos;
	t->data = r->bytes + r->pos;
	t->role = RS_ROLE_OTHER;
	r->pos += t->nbytes;
	return RS_OK;
}

/* After the entries: nothing, or the chunk count and the dataset's name,
 * ending exactly at the end of the file. */
static rs_status
read_trailer(reader *r, rs_model *m)
{
	int32_t last_call = 0;
	size_t at, n;
	rs_status st;

	r->entry = 0;
	if (left(r) == 0)
		return RS_OK;
	if (left(r) < 8)
		return fail(r, "%zu bytes after the last entry: the file ends there, or has "
		            "the trailer (int32 chunk count, int32 length, the dataset's name)",
		            left(r));
	if ((st = take_i32(r, "the chunk count", &last_call)) != RS_OK)
		return st;
	if (last_call < 0)
		return fail(r, "chunk count %d after the last entry (a count is >= 0)",
		            (int)last_call);
	if ((st = take_string(r, "the dataset name", INT32_MAX, true, &at, &n)) != RS_OK)
		return st;
	if (left(r) != 0)
		return fail(r, "%zu bytes after the dataset name, at byte %zu: the file "
		            "should end there", left(r), r->pos);
	add_metadata(m, "imatrix.chunk_count", rs_xasprintf("%d", (int)last_call));
	add_metadata(m, "imatrix.datasets", rs_xstrndup((const char *)r->bytes + at, n));
	return RS_OK;
}

static int
by_tensor_name(const void *a, const void *b)
{
	const rs_tensor *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* Two entries of one name would be two different statistics for one
 * weight: refused rather than one silently chosen. */
static rs_status
check_unique(reader *r, const rs_model *m)
{
	const rs_tensor **sorted;
	size_t i;
	rs_status st = RS_OK;

	if (m->ntensors < 2)
		return RS_OK;
	sorted = rs_xmalloc(m->ntensors * sizeof *sorted);
	for (i = 0; i < m->ntensors; i++)
		sorted[i] = &m->tensors[i];
	qsort(sorted, m->ntensors, sizeof *sorted, by_tensor_name);
	for (i = 1; i < m->ntensors && st == RS_OK; i++)
		if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
			size_t len = strlen(sorted[i]->name) - strlen(".diag");
			char *name = rs_xstrndup(sorted[i]->name, len);

			r->entry = 0;
			st = fail(r, "two entries are named '%s' (entries %zu and %zu)",
			          rs_printable(r->name, sizeof r->name, name),
			          (size_t)(sorted[i - 1] - m->tensors) + 1,
			          (size_t)(sorted[i] - m->tensors) + 1);
			free(name);
		}
	free(sorted);
	return st;
}

static rs_status
parse(reader *r, rs_model *m)
{
	int32_t nentries = 0;
	size_t i;
	rs_status st;

	r->entry = 0;
	if ((st = take_i32(r, "the entry count", &nentries)) != RS_OK)
		return st;
	if (nentries < 1)
		return fail(r, "entry count %d (a file llama-imatrix writes has at least one)",
		            (int)nentries);
	if ((size_t)nentries > left(r) / MIN_ENTRY_BYTES)
		return fail(r, "entry count %d cannot fit in the file's %zu bytes (an entry "
		            "takes at least %d)", (int)nentries, r->len, MIN_ENTRY_BYTES);
	r->nentries = (size_t)nentries;
	for (i = 0; i < r->nentries; i++) {
		r->entry = i + 1;
		if ((st = read_entry(r, m)) != RS_OK)
			return st;
	}
	if ((st = read_trailer(r, m)) != RS_OK)
		return st;
	return check_unique(r, m);
}

rs_model *
rs_imatrix_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	reader r = {.path = path, .bytes = bytes, .len = len, .err = err};
	rs_model *m = rs_xcalloc(1, sizeof *m);

	m->path = rs_xstrdup(path);
	m->format = "imatrix";
	m->file_size = len;
	m->network_order = true;   /* the writer's order (llama.cpp sorts names) */
	/* no header apart from the data: the digest is of no bytes */
	rs_sha256(bytes, 0, m->header_sha256);
	if (parse(&r, m) != RS_OK) {
		rs_model_close(m);
		return NULL;
	}
	return m;
}

rs_model *
rs_imatrix_open(const char *path, rs_error *err)
{
	unsigned char *bytes;
	size_t len;
	rs_model *m;

	if (rs_file_read_all(path, IMATRIX_MAX_BYTES, &bytes, &len, err) != RS_OK)
		return NULL;
	m = rs_imatrix_parse(path, bytes, len, err);
	if (m == NULL) {
		free(bytes);
		return NULL;
	}
	m->buffers = rs_xreallocarray(m->buffers, m->nbuffers + 1, sizeof *m->buffers);
	m->buffers[m->nbuffers++] = bytes;
	return m;
}

bool
rs_imatrix_sniff(const unsigned char *head, size_t n)
{
	int32_t nentries, len;
	size_t i;

	if (n < 9)
		return false;
	nentries = (int32_t)(uint32_t)rs_read_le(head, 4);
	len = (int32_t)(uint32_t)rs_read_le(head + 4, 4);
	if (nentries < 1 || len < 1 || len > RS_IMATRIX_MAX_NAME)
		return false;
	/* a name starts with a visible character; only its first bytes are
	 * looked at, so a lying length still reaches the reader (and a NUL in
	 * the name its message) */
	if (head[8] <= 0x20 || head[8] >= 0x7f)
		return false;
	for (i = 9; i < n && i < 8 + (size_t)len && i < 16; i++)
		if ((head[i] < 0x20 && head[i] != 0) || head[i] == 0x7f)
			return false;
	return true;
}

bool
rs_imatrix_looks_like(const char *path)
{
	unsigned char head[8 + RS_IMATRIX_MAX_NAME];
	ssize_t got;
	struct stat st;
	/* non-blocking: a FIFO must not hang the open (only files are read) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return false;
	}
	got = pread(fd, head, sizeof head, 0);
	close(fd);
	return got > 0 && rs_imatrix_sniff(head, (size_t)got);
}
