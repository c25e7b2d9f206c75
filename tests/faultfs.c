/*
 * faultfs.c — an LD_PRELOAD shim for tests/cli-faults.sh: file system
 * faults on demand, for paths containing FAULTFS_PATH (nothing else is
 * touched, so the program's own stdout, stderr and libraries work).
 *
 *   FAULTFS_PATH=S       affect files whose path contains S (required)
 *   FAULTFS_FAIL=OPS     comma list of what fails: open (for writing or
 *                        creating), write, fsync, close, rename, link, mkdir
 *   FAULTFS_ERRNO=E      ENOSPC (default), EROFS, EACCES, EIO, EDQUOT, EFBIG
 *   FAULTFS_AFTER=N      with write in OPS: the first N bytes written succeed
 *                        (the write that crosses N is cut short there), as a
 *                        disk that fills up part way
 *   FAULTFS_CHUNK=N      every write writes at most N bytes (short writes)
 *   FAULTFS_SLOW_US=N    every write sleeps N microseconds first (a slow
 *                        disk: kill -9 then lands mid-write)
 *   FAULTFS_SHRINK=N     truncate a file to N bytes once it is mapped: when
 *                        the descriptor it was mapped from is closed (the
 *                        map stays; the file is cut short under it)
 *   FAULTFS_SHRINK_AT=mmap   ... or at once, as it is mapped
 *
 * A file descriptor's path is read back from /proc/self/fd, so files
 * opened by any means (mkstemp, O_TMPFILE) are covered.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char *match;
static char ops[128];
static int fault_errno = ENOSPC;
static long long after = -1, chunk = 0, slow_us = 0, shrink = -1;
static int shrink_at_mmap;
static int mapped_fd = -1;       /* a matching file mapped, to cut at its close */
static long long written;        /* bytes written to matching files so far */

__attribute__((constructor)) static void
configure(void)
{
	const char *e;

	match = getenv("FAULTFS_PATH");
	if (match != NULL && match[0] == '\0')
		match = NULL;
	if ((e = getenv("FAULTFS_FAIL")) != NULL)
		snprintf(ops, sizeof ops, ",%s,", e);
	if ((e = getenv("FAULTFS_ERRNO")) != NULL) {
		static const struct { const char *name; int value; } names[] = {
			{"ENOSPC", ENOSPC}, {"EROFS", EROFS}, {"EACCES", EACCES},
			{"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EFBIG", EFBIG},
		};
		size_t i;
		for (i = 0; i < sizeof names / sizeof names[0]; i++)
			if (strcmp(e, names[i].name) == 0)
				fault_errno = names[i].value;
	}
	if ((e = getenv("FAULTFS_AFTER")) != NULL)
		after = atoll(e);
	if ((e = getenv("FAULTFS_CHUNK")) != NULL)
		chunk = atoll(e);
	if ((e = getenv("FAULTFS_SLOW_US")) != NULL)
		slow_us = atoll(e);
	if ((e = getenv("FAULTFS_SHRINK")) != NULL)
		shrink = atoll(e);
	shrink_at_mmap = (e = getenv("FAULTFS_SHRINK_AT")) != NULL && strcmp(e, "mmap") == 0;
}

static int
failing(const char *op)
{
	char key[32];

	snprintf(key, sizeof key, ",%s,", op);
	return strstr(ops, key) != NULL;
}

/* A relative path is taken from the working directory, as the kernel does. */
static int
path_matches(const char *path)
{
	char full[8192], cwd[4096];

	if (match == NULL || path == NULL)
		return 0;
	if (path[0] != '/' && getcwd(cwd, sizeof cwd) != NULL) {
		snprintf(full, sizeof full, "%s/%s", cwd, path);
		path = full;
	}
	return strstr(path, match) != NULL;
}

static int
fd_matches(int fd, char *path, size_t len)
{
	char proc[64];
	ssize_t n;

	if (match == NULL || fd < 0)
		return 0;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	n = readlink(proc, path, len - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return strstr(path, match) != NULL;
}

#define NEXT(name) static __typeof__(name) *real_##name; \
	if (real_##name == NULL) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static int
fail(void)
{
	errno = fault_errno;
	return -1;
}

static int
open_fails(const char *path, int flags)
{
	int writing = (flags & (O_WRONLY | O_RDWR | O_CREAT)) != 0;
#ifdef O_TMPFILE
	writing = writing || (flags & O_TMPFILE) == O_TMPFILE;
#endif
	return writing && failing("open") && path_matches(path);
}

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	NEXT(open);

	va_start(ap, flags);
	mode = (mode_t)va_arg(ap, int);
	va_end(ap);
	if (open_fails(path, flags))
		return fail();
	return real_open(path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	NEXT(open64);

	va_start(ap, flags);
	mode = (mode_t)va_arg(ap, int);
	va_end(ap);
	if (open_fails(path, flags))
		return fail();
	return real_open64(path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	NEXT(openat);

	va_start(ap, flags);
	mode = (mode_t)va_arg(ap, int);
	va_end(ap);
	if (open_fails(path, flags))
		return fail();
	return real_openat(dirfd, path, flags, mode);
}

/* How much of a write of len bytes to let through; -1 to fail it. */
static long long
write_allowance(int fd, size_t len)
{
	char path[4096];
	long long n = (long long)len, before;

	if (!fd_matches(fd, path, sizeof path))
		return n;
	if (slow_us > 0)
		usleep((useconds_t)slow_us);
	if (chunk > 0 && n > chunk)
		n = chunk;
	if (!failing("write"))
		return n;
	if (after < 0)
		return -1;
	before = __atomic_fetch_add(&written, n, __ATOMIC_RELAXED);
	if (before >= after) {
		__atomic_fetch_sub(&written, n, __ATOMIC_RELAXED);
		return -1;
	}
	if (before + n > after) {
		__atomic_fetch_sub(&written, before + n - after, __ATOMIC_RELAXED);
		n = after - before;
	}
	return n;
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	long long n;
	NEXT(write);

	if (len == 0 || (n = write_allowance(fd, len)) == (long long)len)
		return real_write(fd, buf, len);
	if (n < 0)
		return fail();
	return real_write(fd, buf, (size_t)n);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t offset)
{
	long long n;
	NEXT(pwrite);

	if (len == 0 || (n = write_allowance(fd, len)) == (long long)len)
		return real_pwrite(fd, buf, len, offset);
	if (n < 0)
		return fail();
	return real_pwrite(fd, buf, (size_t)n, offset);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t offset)
{
	long long n;
	NEXT(pwrite64);

	if (len == 0 || (n = write_allowance(fd, len)) == (long long)len)
		return real_pwrite64(fd, buf, len, offset);
	if (n < 0)
		return fail();
	return real_pwrite64(fd, buf, (size_t)n, offset);
}

static int
fd_op_fails(const char *op, int fd)
{
	char path[4096];

	return failing(op) && fd_matches(fd, path, sizeof path);
}

int
fsync(int fd)
{
	NEXT(fsync);

	if (fd_op_fails("fsync", fd))
		return fail();
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	NEXT(fdatasync);

	if (fd_op_fails("fsync", fd))
		return fail();
	return real_fdatasync(fd);
}

static void cut(int fd);

int
close(int fd)
{
	NEXT(close);

	if (fd == mapped_fd) {
		cut(fd);
		mapped_fd = -1;
	}
	/* a delayed write error reported at close: the descriptor is closed
	 * all the same, as close(2) does */
	if (fd_op_fails("close", fd)) {
		real_close(fd);
		return fail();
	}
	return real_close(fd);
}

int
rename(const char *from, const char *to)
{
	NEXT(rename);

	if (failing("rename") && (path_matches(from) || path_matches(to)))
		return fail();
	return real_rename(from, to);
}

int
renameat(int fromfd, const char *from, int tofd, const char *to)
{
	NEXT(renameat);

	if (failing("rename") && (path_matches(from) || path_matches(to)))
		return fail();
	return real_renameat(fromfd, from, tofd, to);
}

int
linkat(int fromfd, const char *from, int tofd, const char *to, int flags)
{
	NEXT(linkat);

	if (failing("link") && path_matches(to))
		return fail();
	return real_linkat(fromfd, from, tofd, to, flags);
}

int
link(const char *from, const char *to)
{
	NEXT(link);

	if (failing("link") && path_matches(to))
		return fail();
	return real_link(from, to);
}

int
mkdir(const char *path, mode_t mode)
{
	NEXT(mkdir);

	if (failing("mkdir") && path_matches(path))
		return fail();
	return real_mkdir(path, mode);
}

static void
cut(int fd)
{
	char path[4096];

	if (fd_matches(fd, path, sizeof path) && truncate(path, (off_t)shrink) != 0)
		perror("faultfs: truncate");
}

/* Shrinks a matching file once it is mapped (now, or at its close). */
static void
maybe_shrink(void *map, int fd)
{
	char path[4096];

	if (map == MAP_FAILED || shrink < 0 || !fd_matches(fd, path, sizeof path))
		return;
	if (shrink_at_mmap)
		cut(fd);
	else
		mapped_fd = fd;
}

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	void *map;
	NEXT(mmap);

	map = real_mmap(addr, len, prot, flags, fd, offset);
	if (fd >= 0)
		maybe_shrink(map, fd);
	return map;
}

void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	void *map;
	NEXT(mmap64);

	map = real_mmap64(addr, len, prot, flags, fd, offset);
	if (fd >= 0)
		maybe_shrink(map, fd);
	return map;
}
