/*
 * io-zip.c — where a zip entry's bytes are, and reading the ones that
 * cannot be used in place; see rankscope/zipentry.h.
 *
 * The central directory is read from a private copy (the image may be a
 * map that shrinks, so it is copied under the guard first), and nothing
 * in it is trusted on its own: an offset is used only when the record,
 * the local header it points at and libzip's view of the same entry say
 * the same thing.  Disagreement is not an error here; the entry is then
 * read through libzip, which has its own checks.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/guard.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "rankscope/zipentry.h"

void
rs_zip_central_free(rs_zip_central *c)
{
	free(c->bytes);
	free(c->entries);
	*c = (rs_zip_central){0};
}

/* The zip64 extra field of a record: the fields that read 0xffffffff, in
 * this order.  False when the extra fields overrun their length. */
static bool
zip64_extra(const unsigned char *x, size_t elen, rs_zip_cd_entry *ce)
{
	size_t at = 0;

	while (at + 4 <= elen) {
		const unsigned char *f = x + at;
		size_t id = rs_read_le(f, 2), sz = rs_read_le(f + 2, 2), o = 4;

		if (at + 4 + sz > elen)
			return false;
		if (id == 1) {
			if (ce->usize == 0xffffffff && o + 8 <= 4 + sz)
				ce->usize = rs_read_le(f + o, 8), o += 8;
			if (ce->csize == 0xffffffff && o + 8 <= 4 + sz)
				ce->csize = rs_read_le(f + o, 8), o += 8;
			if (ce->lho == 0xffffffff && o + 8 <= 4 + sz)
				ce->lho = rs_read_le(f + o, 8);
		}
		at += 4 + sz;
	}
	return true;
}

rs_status
rs_zip_central_read(const char *path, const unsigned char *map, size_t len,
                    rs_zip_central *c, rs_error *err)
{
	size_t tail = len < 22 + 65535 ? len : 22 + 65535, at, i, pos;
	unsigned char *t = NULL, rec[56];
	uint64_t n, cdsize, cdoff;
	rs_status st = RS_OK;

	*c = (rs_zip_central){0};
	if (len < 22 || (t = malloc(tail)) == NULL)
		return RS_OK;
	if ((st = rs_guard_copy(t, map + len - tail, tail, path, NULL, err)) != RS_OK)
		goto out;
	for (at = tail - 22 + 1; at-- > 0;)
		if (rs_read_le(t + at, 4) == 0x06054b50)
			break;
	if (at == (size_t)-1)
		goto out;
	n = rs_read_le(t + at + 10, 2);
	cdsize = rs_read_le(t + at + 12, 4);
	cdoff = rs_read_le(t + at + 16, 4);
	if (n == 0xffff || cdsize == 0xffffffff || cdoff == 0xffffffff) {
		size_t eocd = len - tail + at;
		uint64_t z64;

		if (eocd < 20 || at < 20 || rs_read_le(t + at - 20, 4) != 0x07064b50)
			goto out;
		z64 = rs_read_le(t + at - 20 + 8, 8);
		if (z64 > len || len - z64 < 56)
			goto out;
		if ((st = rs_guard_copy(rec, map + z64, 56, path, NULL, err)) != RS_OK)
			goto out;
		if (rs_read_le(rec, 4) != 0x06064b50)
			goto out;
		n = rs_read_le(rec + 32, 8);
		cdsize = rs_read_le(rec + 40, 8);
		cdoff = rs_read_le(rec + 48, 8);
	}
	if (cdoff > len || cdsize > len - cdoff || n > cdsize / 46)
		goto out;
	c->bytes = malloc(cdsize ? cdsize : 1);
	c->entries = calloc(n ? n : 1, sizeof *c->entries);
	if (c->bytes == NULL || c->entries == NULL)
		goto bad;
	if ((st = rs_guard_copy(c->bytes, map + cdoff, cdsize, path, NULL, err)) != RS_OK)
		goto bad;
	for (i = 0, pos = 0; i < n; i++) {
		const unsigned char *e = c->bytes + pos;
		rs_zip_cd_entry *ce = &c->entries[i];
		size_t nlen, elen, clen;

		if (cdsize - pos < 46 || rs_read_le(e, 4) != 0x02014b50)
			goto bad;
		nlen = rs_read_le(e + 28, 2), elen = rs_read_le(e + 30, 2), clen = rs_read_le(e + 32, 2);
		if (cdsize - pos - 46 < nlen + elen + clen)
			goto bad;
		ce->method = (uint16_t)rs_read_le(e + 10, 2);
		ce->csize = rs_read_le(e + 20, 4);
		ce->usize = rs_read_le(e + 24, 4);
		ce->lho = rs_read_le(e + 42, 4);
		ce->name = e + 46;
		ce->nlen = nlen;
		if (!zip64_extra(e + 46 + nlen, elen, ce))
			goto bad;
		pos += 46 + nlen + elen + clen;
	}
	c->n = (size_t)n;
	goto out;
bad:
	rs_zip_central_free(c);
out:
	free(t);
	return st;
}

rs_status
rs_zip_stored_offset(const char *path, const unsigned char *map, size_t len,
                     const rs_zip_central *c, size_t index, const zip_stat_t *zs,
                     uint64_t *data, rs_error *err)
{
	const rs_zip_cd_entry *ce;
	uint64_t start;
	size_t nlen, elen;
	unsigned char *lh;
	rs_status st;

	*data = 0;
	if (index >= c->n)
		return RS_OK;
	ce = &c->entries[index];
	if (ce->method != ZIP_CM_STORE || ce->usize != zs->size || ce->csize != zs->size ||
	    ce->nlen != strlen(zs->name) || memcmp(ce->name, zs->name, ce->nlen) != 0 ||
	    ce->lho > len || len - ce->lho < 30 + ce->nlen)
		return RS_OK;
	/* the local header and the name it should hold, in one guarded copy */
	lh = rs_xmalloc(30 + ce->nlen);
	if ((st = rs_guard_copy(lh, map + ce->lho, 30 + ce->nlen, path, NULL, err)) != RS_OK) {
		free(lh);
		return st;
	}
	nlen = rs_read_le(lh + 26, 2);
	elen = rs_read_le(lh + 28, 2);
	start = ce->lho + 30 + nlen + elen;
	if (rs_read_le(lh, 4) == 0x04034b50 && nlen == ce->nlen &&
	    len - ce->lho - 30 >= nlen + elen && zs->size <= len - start &&
	    memcmp(lh + 30, ce->name, nlen) == 0)
		*data = start;
	free(lh);
	return RS_OK;
}

rs_status
rs_zip_read_exact(zip_file_t *zf, unsigned char *dst, uint64_t n, const char *path,
                  const char *entry, rs_error *err)
{
	uint64_t done = 0;

	while (done < n) {
		zip_int64_t got = zip_fread(zf, dst + done, n - done);
		if (got < 0)
			return rs_error_set(err, RS_EFORMAT, "%s: entry '%s': %s", path, entry,
			                    zip_file_strerror(zf));
		if (got == 0)
			return rs_error_set(err, RS_EFORMAT, "%s: entry '%s': ends after %llu of "
			                    "the %llu bytes it declares", path, entry,
			                    (unsigned long long)done, (unsigned long long)n);
		done += (uint64_t)got;
	}
	return RS_OK;
}

rs_status
rs_zip_check_ratio(const zip_stat_t *zs, const char *path, const char *entry, rs_error *err)
{
	if (zs->comp_method != ZIP_CM_STORE && zs->comp_size > 0 &&
	    zs->size / zs->comp_size >= RS_NPZ_MAX_RATIO)
		return rs_error_set(err, RS_EFORMAT, "%s: entry '%s' declares %llu bytes from "
		                    "%llu compressed, a ratio above %u:1 that deflate cannot "
		                    "reach (a zip bomb or a damaged archive)", path, entry,
		                    (unsigned long long)zs->size,
		                    (unsigned long long)zs->comp_size, RS_NPZ_MAX_RATIO);
	return RS_OK;
}

rs_status
rs_zip_read_entry(zip_t *z, zip_uint64_t index, const zip_stat_t *zs, uint64_t archive_len,
                  uint64_t *inflated, uint64_t limit, unsigned char **out, const char *path,
                  const char *entry, rs_error *err)
{
	zip_file_t *zf;
	unsigned char *buf, extra;
	rs_status st;

	*out = NULL;
	if (zs->comp_size > archive_len)
		return rs_error_set(err, RS_EFORMAT, "%s: entry '%s' declares %llu compressed "
		                    "bytes, more than the archive's %llu (truncated or damaged)",
		                    path, entry, (unsigned long long)zs->comp_size,
		                    (unsigned long long)archive_len);
	if (zs->comp_method == ZIP_CM_STORE && zs->size != zs->comp_size)
		return rs_error_set(err, RS_EFORMAT, "%s: entry '%s' is stored but declares %llu "
		                    "bytes of %llu", path, entry, (unsigned long long)zs->size,
		                    (unsigned long long)zs->comp_size);
	if ((st = rs_zip_check_ratio(zs, path, entry, err)) != RS_OK)
		return st;
	if (*inflated > limit || zs->size > limit - *inflated)
		return rs_error_set(err, RS_EFORMAT, "%s: entry '%s': reading its %llu bytes "
		                    "would take the model past %llu bytes in memory", path, entry,
		                    (unsigned long long)zs->size, (unsigned long long)limit);
	if (zs->size > SIZE_MAX - 1 || (buf = malloc(zs->size ? (size_t)zs->size : 1)) == NULL)
		return rs_error_set(err, RS_ENOMEM, "%s: entry '%s': out of memory for its %llu "
		                    "bytes", path, entry, (unsigned long long)zs->size);
	zf = zip_fopen_index(z, index, 0);
	if (zf == NULL) {
		free(buf);
		return rs_error_set(err, RS_EFORMAT, "%s: entry '%s': %s", path, entry,
		                    zip_strerror(z));
	}
	st = rs_zip_read_exact(zf, buf, zs->size, path, entry, err);
	if (st == RS_OK && zip_fread(zf, &extra, 1) != 0)
		st = rs_error_set(err, RS_EFORMAT, "%s: entry '%s': inflates to more than the "
		                  "%llu bytes it declares", path, entry,
		                  (unsigned long long)zs->size);
	if (zip_fclose(zf) != 0 && st == RS_OK)
		st = rs_error_set(err, RS_EFORMAT, "%s: entry '%s': damaged (CRC or stream "
		                  "error)", path, entry);
	if (st != RS_OK) {
		free(buf);
		return st;
	}
	*inflated += zs->size;
	*out = buf;
	return RS_OK;
}

/* The archive libzip opened (or why not) given to build. */
static rs_model *
zip_model_finish(rs_model *m, zip_t *z, zip_error_t *ze, rs_zip_build_fn build,
                 rs_error *err)
{
	if (z == NULL) {
		rs_error_set(err, RS_EFORMAT, "%s: not a readable zip archive: %s", m->path,
		             zip_error_strerror(ze));
		zip_error_fini(ze);
		rs_model_close(m);
		return NULL;
	}
	zip_error_fini(ze);
	if (build(m, z, err) != RS_OK) {
		zip_discard(z);
		rs_model_close(m);
		return NULL;
	}
	zip_discard(z);
	return m;
}

rs_model *
rs_zip_model_parse(rs_model *m, const unsigned char *bytes, size_t len,
                   rs_zip_build_fn build, rs_error *err)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_t *z = NULL;

	zip_error_init(&ze);
	src = zip_source_buffer_create(len ? bytes : (const void *)"", len, 0, &ze);
	if (src != NULL) {
		z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
		if (z == NULL)
			zip_source_free(src);
	}
	return zip_model_finish(m, z, &ze, build, err);
}

rs_model *
rs_zip_model_open(rs_model *m, int fd, rs_zip_build_fn build, rs_error *err)
{
	zip_error_t ze;
	zip_t *z = NULL;
	int zfd = dup(fd), code = 0;

	zip_error_init(&ze);
	if (zfd >= 0) {
		z = zip_fdopen(zfd, ZIP_RDONLY | ZIP_CHECKCONS, &code);
		if (z == NULL)
			close(zfd);
	}
	zip_error_set(&ze, z == NULL ? (code ? code : ZIP_ER_OPEN) : 0, z == NULL ? errno : 0);
	return zip_model_finish(m, z, &ze, build, err);
}
