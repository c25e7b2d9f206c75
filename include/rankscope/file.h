/*
 * file.h — whole-file writes that never leave a half-written file behind
 * (io-file.c), shared by the spectrum cache, plan saves and apply.
 */
#ifndef RANKSCOPE_FILE_H
#define RANKSCOPE_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"

/* mkdir -p with mode 0700 for the components it creates. */
rs_status rs_mkdir_p(const char *dir, rs_error *err);

/*
 * A file being written to replace `path`.  The bytes go to a temporary in
 * path's directory that has no name at all (O_TMPFILE) where the file
 * system allows, so a process killed while writing leaves nothing behind;
 * elsewhere a named PATH.tmp-XXXXXX, removed on failure.  Commit gives the
 * complete file a temporary name and renames it over path, so path is at
 * every moment absent, the old file or the complete new one.
 *
 * When path exists and is not a regular file (a device such as /dev/null,
 * a FIFO), it is opened and written straight through: renaming over it
 * would replace the device node itself.  A directory is refused.
 */
typedef struct rs_file_out {
	int fd;
	char *path;
	char *tmp;       /* the temporary's name: mkstemp's, or given at commit */
	bool unnamed;    /* an O_TMPFILE temporary, not linked yet */
	bool direct;     /* path itself is being written (not a regular file) */
} rs_file_out;

rs_status rs_file_out_open(rs_file_out *out, const char *path, rs_error *err);
/* Writes all of data (short writes and EINTR retried). */
rs_status rs_file_out_write(rs_file_out *out, const void *data, size_t len,
                            rs_error *err);
/* Puts the file in place.  With `durable`, it is fsync'd before the rename
 * and its directory after, so the new contents also survive a crash.  On
 * failure path is untouched and the temporary removed.  Always closes. */
rs_status rs_file_out_commit(rs_file_out *out, bool durable, rs_error *err);
/* Gives up: closes and removes the temporary; path is untouched. */
void rs_file_out_abort(rs_file_out *out);

/*
 * rs_file_out_open + write + commit: readers see either the old file or the
 * complete new one; on failure the old file (if any) is untouched and no
 * temporary is left.
 */
rs_status rs_file_write_atomic(const char *path, const void *data, size_t len,
                               bool durable, rs_error *err);

/* fsyncs the directory holding path, so a rename into it is durable. */
void rs_file_sync_directory(const char *path);

/* Reads a whole file of at most `max` bytes into a malloc'd buffer. */
rs_status rs_file_read_all(const char *path, size_t max, unsigned char **data,
                           size_t *len, rs_error *err);

#endif
