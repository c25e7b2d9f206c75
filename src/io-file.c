/* io-file.c — atomic whole-file writes; see rankscope/file.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/file.h"
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

rs_status
rs_file_write_atomic(const char *path, const void *data, size_t len,
                     bool durable, rs_error *err)
{
	char *tmp = rs_xasprintf("%s.tmp-XXXXXX", path);
	int fd = mkstemp(tmp), saved;

	if (fd < 0) {
		rs_error_set(err, RS_EIO, "%s: cannot create a temporary file beside it: %s",
		             path, strerror(errno));
		free(tmp);
		return RS_EIO;
	}
	if (write_fully(fd, data, len) != RS_OK || (durable && fsync(fd) != 0)) {
		saved = errno;
		close(fd);
		unlink(tmp);
		free(tmp);
		return rs_error_set(err, RS_EIO, "%s: write failed: %s", path,
		                    strerror(saved));
	}
	/* mkstemp creates 0600; a saved file should get the usual umask mode. */
	{
		mode_t mask = umask(0);
		umask(mask);
		fchmod(fd, 0666 & ~mask);
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		saved = errno;
		unlink(tmp);
		free(tmp);
		return rs_error_set(err, RS_EIO, "%s: cannot replace: %s", path,
		                    strerror(saved));
	}
	free(tmp);
	if (durable)
		rs_file_sync_directory(path);
	return RS_OK;
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
