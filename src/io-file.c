/* io-file.c — atomic whole-file writes; see rankscope/file.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rankscope/file.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

rs_status
rs_mkdir_p(const char *dir, rs_error *err)
{
	char *path = rs_xstrdup(dir), *p;
	rs_status st = RS_OK;

	for (p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST) {
				st = rs_error_set(err, RS_EIO, "%s: cannot create directory: %s",
				                  path, strerror(errno));
				break;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	free(path);
	return st;
}

static rs_status
write_fully(int fd, const unsigned char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;   /* no progress and no reason given */
		if (n <= 0)
			return RS_EIO;
		data += n;
		len -= (size_t)n;
	}
	return RS_OK;
}

void
rs_file_sync_directory(const char *path)
{
	char *dir = rs_xstrdup(path), *slash = strrchr(dir, '/');
	int fd;

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

static char *
directory_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return rs_xstrdup(".");
	if (slash == path)
		return rs_xstrdup("/");
	return rs_xstrndup(path, (size_t)(slash - path));
}

/* An unnamed temporary in path's directory, or -1 with errno (EOPNOTSUPP
 * and friends when the file system cannot; then a named one is used).  It
 * can be named later only through /proc/self/fd (linkat with AT_EMPTY_PATH
 * needs a capability), so without /proc there are none. */
static int
open_unnamed(const char *path)
{
#ifdef O_TMPFILE
	char *dir;
	int fd;

	if (access("/proc/self/fd", X_OK) != 0) {
		errno = EOPNOTSUPP;
		return -1;
	}
	dir = directory_of(path);
	/* mode 0666: the umask gives the saved file its usual mode */
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
	free(dir);
	return fd;
#else
	(void)path;
	errno = EOPNOTSUPP;
	return -1;
#endif
}

rs_status
rs_file_out_open(rs_file_out *out, const char *path, rs_error *err)
{
	struct stat st;

	memset(out, 0, sizeof *out);
	out->fd = -1;
	out->path = rs_xstrdup(path);
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			rs_error_set(err, RS_EIO, "%s: cannot replace: %s", path, strerror(EISDIR));
			goto fail;
		}
		out->direct = true;
		out->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (out->fd < 0) {
			rs_error_set(err, RS_EIO, "%s: cannot open for writing: %s", path,
			             strerror(errno));
			goto fail;
		}
		return RS_OK;
	}
	out->fd = open_unnamed(path);
	if (out->fd >= 0) {
		out->unnamed = true;
		return RS_OK;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) {
		/* ENOENT: a kernel without O_TMPFILE can report the directory as
		 * missing; a really missing one fails again just below */
		rs_error_set(err, RS_EIO, "%s: cannot create a temporary file beside it: %s",
		             path, strerror(errno));
		goto fail;
	}
	out->tmp = rs_xasprintf("%s.tmp-XXXXXX", path);
	out->fd = mkstemp(out->tmp);
	if (out->fd < 0) {
		rs_error_set(err, RS_EIO, "%s: cannot create a temporary file beside it: %s",
		             path, strerror(errno));
		goto fail;
	}
	/* mkstemp creates 0600; a saved file should get the usual umask mode. */
	{
		mode_t mask = umask(0);
		umask(mask);
		fchmod(out->fd, 0666 & ~mask);
	}
	return RS_OK;
fail:
	rs_file_out_abort(out);
	return RS_EIO;
}

rs_status
rs_file_out_write(rs_file_out *out, const void *data, size_t len, rs_error *err)
{
	if (write_fully(out->fd, data, len) != RS_OK)
		return rs_error_set(err, RS_EIO, "%s: write failed: %s%s", out->path,
		                    strerror(errno), out->direct ? "" : " (nothing was replaced)");
	return RS_OK;
}

void
rs_file_out_abort(rs_file_out *out)
{
	if (out->fd >= 0)
		close(out->fd);
	if (out->tmp != NULL)
		unlink(out->tmp);
	free(out->tmp);
	free(out->path);
	memset(out, 0, sizeof *out);
	out->fd = -1;
}

/* Links the unnamed temporary as PATH.tmp-XXXXXX (six random characters,
 * retried while taken), the name rename then moves over path. */
static int
name_unnamed(rs_file_out *out)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	static unsigned long counter;
	char proc[64];
	int attempt, i;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", out->fd);
	for (attempt = 0; attempt < 100; attempt++) {
		struct timespec now;
		unsigned long v;

		clock_gettime(CLOCK_REALTIME, &now);
		v = (unsigned long)now.tv_nsec ^ ((unsigned long)getpid() << 16) ^
		    (__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) * 2654435761u);
		free(out->tmp);
		out->tmp = rs_xasprintf("%s.tmp-XXXXXX", out->path);
		for (i = 0; i < 6; i++, v /= 36)
			out->tmp[strlen(out->tmp) - 6 + (size_t)i] = digits[v % 36];
		if (linkat(AT_FDCWD, proc, AT_FDCWD, out->tmp, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	attempt = errno;
	free(out->tmp);
	out->tmp = NULL;
	errno = attempt;
	return -1;
}

rs_status
rs_file_out_commit(rs_file_out *out, bool durable, rs_error *err)
{
	rs_status st = RS_OK;
	int saved;

	if (out->direct) {
		/* a device or FIFO: nothing to rename, and fsync means nothing */
		if (close(out->fd) != 0)
			st = rs_error_set(err, RS_EIO, "%s: write failed: %s", out->path,
			                  strerror(errno));
		out->fd = -1;
		rs_file_out_abort(out);
		return st;
	}
	if (durable && fsync(out->fd) != 0) {
		st = rs_error_set(err, RS_EIO, "%s: write failed: %s (nothing was replaced)",
		                  out->path, strerror(errno));
		goto out;
	}
	if (out->unnamed && name_unnamed(out) != 0) {
		st = rs_error_set(err, RS_EIO, "%s: cannot replace: %s", out->path,
		                  strerror(errno));
		goto out;
	}
	saved = close(out->fd);
	out->fd = -1;
	if (saved != 0) {
		/* a delayed write error (NFS, quota) surfaces at close */
		st = rs_error_set(err, RS_EIO, "%s: write failed: %s (nothing was replaced)",
		                  out->path, strerror(errno));
		goto out;
	}
	if (rename(out->tmp, out->path) != 0) {
		st = rs_error_set(err, RS_EIO, "%s: cannot replace: %s", out->path,
		                  strerror(errno));
		goto out;
	}
	free(out->tmp);
	out->tmp = NULL;    /* renamed: nothing to remove */
	if (durable)
		rs_file_sync_directory(out->path);
out:
	rs_file_out_abort(out);
	return st;
}

rs_status
rs_file_write_atomic(const char *path, const void *data, size_t len,
                     bool durable, rs_error *err)
{
	rs_file_out out;

	if (rs_file_out_open(&out, path, err) != RS_OK)
		return RS_EIO;
	if (rs_file_out_write(&out, data, len, err) != RS_OK) {
		rs_file_out_abort(&out);
		return RS_EIO;
	}
	return rs_file_out_commit(&out, durable, err);
}

rs_status
rs_file_read_all(const char *path, size_t max, unsigned char **data,
                 size_t *len, rs_error *err)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return rs_error_set(err, RS_EIO, "%s: cannot open: %s", path,
		                    strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_size > max) {
		close(fd);
		return rs_error_set(err, RS_EIO,
		    "%s: not a regular file of at most %zu bytes", path, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		free(buf);
		return rs_error_set(err, RS_EIO, "%s: short read", path);
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return RS_OK;
}

bool
rs_file_map(const char *path, rs_mapped_file *f, rs_error *err)
{
	struct stat st;

	f->map = NULL;
	f->size = 0;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rs_error_set(err, RS_EIO, "%s: not a regular file", path);
		close(f->fd);
		return false;
	}
	f->size = (uint64_t)st.st_size;
	if (f->size > 0) {
		f->map = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			rs_error_set(err, RS_EIO, "%s: cannot map: %s", path, strerror(errno));
			close(f->fd);
			return false;
		}
	}
	return true;
}

const unsigned char *
rs_file_map_bytes(const rs_mapped_file *f)
{
	return f->map ? f->map : (const unsigned char *)"";
}

rs_model *
rs_file_map_adopt(const char *path, rs_mapped_file *f, rs_model *m, rs_error *err)
{
	struct stat now;

	if (fstat(f->fd, &now) == 0 && (uint64_t)now.st_size != f->size) {
		rs_model_close(m);
		m = NULL;
		rs_error_set(err, RS_EIO, "%s: the file changed size while it was being "
		             "opened (truncated or rewritten); open it again", path);
	}
	close(f->fd);   /* the mapping keeps the file alive */
	if (m == NULL) {
		if (f->map != NULL)
			munmap(f->map, (size_t)f->size);
		return NULL;
	}
	m->owns_map = f->map != NULL;
	if (f->map == NULL)
		m->map = NULL;
	return m;
}
