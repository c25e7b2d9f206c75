/*
 * zipentry.h — the bytes of a zip archive's entries, for the readers of
 * zip-based formats (io-zip.c): NumPy's .npz, PyTorch checkpoints.
 *
 * libzip reads the archive (zip64 included), inflates and checks CRCs.
 * What libzip 1.7 does not give is where a stored entry's bytes begin in
 * the image, and that is what lets a reader point tensors into its map
 * instead of copying them.  rs_zip_central_read reads the central
 * directory for the local header offsets; rs_zip_stored_offset gives an
 * entry's data offset only when the central directory, the entry's local
 * header and libzip all agree on it.  An entry that is deflated, or whose
 * offset they do not agree on, is read through libzip into memory
 * (rs_zip_read_entry) after three checks: its declared size against
 * deflate's best ratio, against the model's running total of inflated
 * bytes, and the stream must give exactly that size, so a zip bomb fails
 * before it allocates.
 *
 * Mapped bytes are read under the SIGBUS guard (guard.h).
 */
#ifndef RANKSCOPE_ZIPENTRY_H
#define RANKSCOPE_ZIPENTRY_H

#include <stddef.h>
#include <stdint.h>
#include <zip.h>

#include "rankscope/error.h"
#include "rankscope/model.h"

/*
 * A zip-based model: the archive opened by libzip from an image in memory
 * (rs_zip_model_parse) or from a mapped file's descriptor (rs_zip_model_open,
 * which dups it: libzip reads with read(2), so a file shrinking meanwhile is
 * a read error there, never a fault), then `build` fills m from it.  On any
 * failure m is closed and NULL returned, the message naming m->path.
 */
typedef rs_status (*rs_zip_build_fn)(rs_model *m, zip_t *z, rs_error *err);
rs_model *rs_zip_model_parse(rs_model *m, const unsigned char *bytes, size_t len,
                             rs_zip_build_fn build, rs_error *err);
rs_model *rs_zip_model_open(rs_model *m, int fd, rs_zip_build_fn build, rs_error *err);

/* One central directory record, its sizes made 64-bit (zip64 extra). */
typedef struct rs_zip_cd_entry {
	uint64_t lho, csize, usize;   /* local header offset, compressed, uncompressed */
	uint16_t method;
	const unsigned char *name;    /* into rs_zip_central.bytes, not NUL-terminated */
	size_t nlen;
} rs_zip_cd_entry;

typedef struct rs_zip_central {
	unsigned char *bytes;         /* a private copy of the central directory */
	rs_zip_cd_entry *entries;
	size_t n;
} rs_zip_central;

/*
 * The central directory of the image map[0, len).  Leaves c empty (n = 0)
 * when it cannot be read, so the caller reads every entry through libzip;
 * fails only when the guard catches the file shrinking.  Free with
 * rs_zip_central_free.
 */
rs_status rs_zip_central_read(const char *path, const unsigned char *map, size_t len,
                              rs_zip_central *c, rs_error *err);
void rs_zip_central_free(rs_zip_central *c);

/*
 * Where the data of entry `index` (libzip's stat of it in zs) starts in
 * the image: *data > 0 when the entry is stored (not compressed) and the
 * central directory record of that index, its local header and zs agree
 * on its name and size, and the bytes fit in the image; 0 otherwise.
 */
rs_status rs_zip_stored_offset(const char *path, const unsigned char *map, size_t len,
                               const rs_zip_central *c, size_t index, const zip_stat_t *zs,
                               uint64_t *data, rs_error *err);

/* Reads exactly n bytes of an open entry ("PATH: entry 'NAME': ends after
 * K of the N bytes it declares" otherwise). */
rs_status rs_zip_read_exact(zip_file_t *zf, unsigned char *dst, uint64_t n,
                            const char *path, const char *entry, rs_error *err);

/* Refuses a compressed entry whose declared size is more than deflate's
 * best ratio (RS_NPZ_MAX_RATIO) of its compressed size. */
rs_status rs_zip_check_ratio(const zip_stat_t *zs, const char *path, const char *entry,
                             rs_error *err);

/*
 * The whole of entry `index` (zs: libzip's stat of it, with name, size,
 * compressed size and method) read into a new malloc'd buffer in *out,
 * which the caller frees.  Before anything is allocated: its compressed
 * size must fit in the archive's `archive_len` bytes (and be its size,
 * when stored), its size must be within the ratio and within `limit`
 * minus what *inflated already counts (then added to it).  It must read
 * to its exact size and its CRC must check.  RS_ENOMEM when the buffer
 * cannot be had.  `entry` names it in messages.
 */
rs_status rs_zip_read_entry(zip_t *z, zip_uint64_t index, const zip_stat_t *zs,
                            uint64_t archive_len, uint64_t *inflated, uint64_t limit,
                            unsigned char **out, const char *path, const char *entry,
                            rs_error *err);

#endif
