/*
 * file.h — whole-file writes that never leave a half-written file behind
 * (io-file.c), shared by the spectrum cache and, later, plan saving.
 */
#ifndef RANKSCOPE_FILE_H
#define RANKSCOPE_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"

/* mkdir -p with mode 0700 for the components it creates. */
rs_status rs_mkdir_p(const char *dir, rs_error *err);

/*
 * Writes data to a temporary file in path's directory and renames it over
 * path, so readers see either the old file or the complete new one.  With
 * `durable`, the file is fsync'd before the rename and the directory after,
 * so the new contents also survive a crash.  On failure the old file (if
 * any) is untouched and the temporary is removed.
 */
rs_status rs_file_write_atomic(const char *path, const void *data, size_t len,
                               bool durable, rs_error *err);

/* fsyncs the directory holding path, so a rename into it is durable. */
void rs_file_sync_directory(const char *path);

/* Reads a whole file of at most `max` bytes into a malloc'd buffer. */
rs_status rs_file_read_all(const char *path, size_t max, unsigned char **data,
                           size_t *len, rs_error *err);

#endif
