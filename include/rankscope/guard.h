/*
 * guard.h — reading a mapped file that may shrink under the map (io-guard.c).
 *
 * A model is mapped, not read (model.h).  If another program truncates or
 * rewrites the file while it is open, touching a page past the file's new
 * end raises SIGBUS, which would kill the process.  Every read of mapped
 * tensor bytes therefore runs under a guard: a fault inside the guarded
 * range abandons the read and becomes an error naming the file and the
 * tensor.  Why a signal guard rather than checking the size first: a check
 * is always stale (the file can shrink between the check and the read), and
 * copying everything through read(2) would give up the map.
 *
 * The guard is per thread and nests; a SIGBUS anywhere else (or raised by
 * kill) goes to whatever handler was installed before ours (the
 * workbench's terminal-restoring one, a sanitizer's, or the default).
 */
#ifndef RANKSCOPE_GUARD_H
#define RANKSCOPE_GUARD_H

#include <stddef.h>

#include "rankscope/error.h"

typedef void (*rs_guard_fn)(void *arg);

/*
 * Runs fn(arg), which reads [base, base + len) of a mapping of `path`.  If
 * that read faults, fn is abandoned where it stands and the call fails with
 * RS_EIO: "PATH: tensor 'NAME': the file shrank while it was open
 * (truncated or rewritten); reopen it" (NAME = `tensor`; NULL means the
 * header).  So fn must hold nothing that needs undoing when cut short: no
 * allocation, no lock, no stdio — plain loads and stores into memory the
 * caller owns.
 */
rs_status rs_guard_run(const void *base, size_t len, rs_guard_fn fn, void *arg,
                       const char *path, const char *tensor, rs_error *err);

/* memcpy(dst, src, len) of mapped bytes under the guard. */
rs_status rs_guard_copy(void *dst, const void *src, size_t len, const char *path,
                        const char *tensor, rs_error *err);

#endif
