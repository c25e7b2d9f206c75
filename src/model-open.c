/*
 * model-open.c — rs_model_open: which reader a weight file goes to.
 *
 * The format is recognised from the file's content, never from its name: a
 * .bin can be anything, and a renamed file must still get the right reader
 * or an honest refusal.  Two tables drive it.  `readers` holds the formats
 * rankscope reads (name, sniff, open); adding a format is one row there and
 * its module.  `lookalikes` holds formats it does not read, so that a
 * refusal says what the file looks like ("an ONNX model") rather than how a
 * safetensors parser choked on it.
 *
 * Sniffing reads the file with pread (the first PROBE_LEN bytes) and, for a
 * zip, lists its entry names through libzip; nothing is mapped, so a file
 * changing meanwhile cannot fault.  The chosen reader opens and validates
 * the file itself from scratch.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "rankscope/model.h"
#include "rankscope/role.h"
#include "rankscope/util.h"

#define PROBE_LEN 65536
#define ZIP_NAMES_MAX 4096   /* entries looked at to tell zips apart */

typedef struct probe {
	const unsigned char *head;   /* the file's first n bytes */
	size_t n;
	uint64_t size;
	bool is_zip;                 /* libzip opened it */
	size_t nentries;             /* of a zip */
	size_t nnpy;                 /* entries named *.npy */
	size_t npkl;                 /* entries named *data.pkl */
	bool keras;                  /* has model.weights.h5 or config.json + .h5 */
} probe;

typedef struct reader {
	const char *name;
	bool (*sniff)(const probe *p);
	rs_model *(*open)(const char *path, rs_error *err);
} reader;

typedef struct lookalike {
	const char *what;            /* "an ONNX model (protobuf)" */
	bool (*match)(const probe *p);
} lookalike;

static bool
starts(const probe *p, size_t at, const char *magic, size_t len)
{
	return p->n >= at + len && memcmp(p->head + at, magic, len) == 0;
}

/* A safetensors frame: a plausible header length, then '{'. */
static bool
sniff_safetensors(const probe *p)
{
	uint64_t hlen;

	if (p->n < 9)
		return false;
	hlen = rs_read_le(p->head, 8);
	return hlen >= 2 && hlen <= RS_SAFETENSORS_MAX_HEADER && hlen <= p->size - 8 &&
	       p->head[8] == '{';
}

static bool
sniff_npy(const probe *p)
{
	return starts(p, 0, "\x93NUMPY", 6);
}

/* numpy.savez writes nothing but NAME.npy entries. */
static bool
sniff_npz(const probe *p)
{
	return p->is_zip && p->nentries > 0 && p->nnpy == p->nentries;
}

#define NREADERS (sizeof readers / sizeof readers[0])

static bool is_empty(const probe *p) { return p->size == 0; }
static bool is_gguf(const probe *p) { return starts(p, 0, "GGUF", 4); }
static bool is_gzip(const probe *p) { return starts(p, 0, "\x1f\x8b", 2); }
static bool is_keras_zip(const probe *p) { return p->is_zip && p->keras; }
static bool is_zip(const probe *p) { return p->is_zip || starts(p, 0, "PK\x03\x04", 4); }
static bool is_tar(const probe *p) { return starts(p, 257, "ustar", 5); }

/* The HDF5 superblock sits at 0, 512, 1024, 2048 ... (a user block may
 * come first). */
static bool
is_hdf5(const probe *p)
{
	size_t at;

	for (at = 0; at < p->n; at = at ? 2 * at : 512)
		if (starts(p, at, "\x89HDF\r\n\x1a\n", 8))
			return true;
	return false;
}

/* torch.save before 1.6 (and with _use_new_zipfile_serialization=False):
 * a pickle of PyTorch's magic number 0x1950a86a20f9469cfc6c. */
static bool
is_legacy_torch(const probe *p)
{
	return starts(p, 0, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14);
}

static bool
is_pickle(const probe *p)
{
	return p->n >= 2 && p->head[0] == 0x80 && p->head[1] >= 2 && p->head[1] <= 5;
}

/*
 * ONNX's ModelProto as every exporter writes it (protobuf writes fields in
 * number order): ir_version (field 1, a one-byte varint) first, then a
 * field ModelProto defines, with its wire type; every further field the
 * probe holds must be well formed (a field ModelProto defines with its
 * wire type, or another with a valid wire type).  Lengths are not held
 * against the file's size: a truncated model must still reach the reader,
 * which says where it ends.
 */
static bool
is_onnx(const probe *p)
{
	/* 1 + the wire type of each ModelProto field; 0: not one of them */
	static const unsigned char defined[26] = {
		[1] = 1, [2] = 3, [3] = 3, [4] = 3, [5] = 1, [6] = 3, [7] = 3, [8] = 3,
		[14] = 3, [20] = 3, [25] = 3,
	};
	size_t i = 2, fields = 1;

	if (p->n < 3 || p->head[0] != 0x08 || p->head[1] < 1 || p->head[1] > 63)
		return false;
	while (i < p->n) {
		uint64_t v[2] = {0, 0};   /* the tag, then a varint value or a length */
		uint64_t field;
		unsigned k, shift, wire = 0;

		for (k = 0; k < 2; k++) {
			for (shift = 0;; shift += 7) {
				if (i >= p->n)
					return fields > 1 || k > 0;   /* the probe ends here */
				if (shift > 63)
					return false;
				v[k] |= (uint64_t)(p->head[i] & 0x7f) << shift;
				if ((p->head[i++] & 0x80) == 0)
					break;
			}
			if (k > 0)
				break;
			field = v[0] >> 3;
			wire = (unsigned)(v[0] & 7);
			if (field == 0 || (wire != 0 && wire != 1 && wire != 2 && wire != 5))
				return false;
			if (field < sizeof defined && defined[field] != 0 && defined[field] != wire + 1)
				return false;
			if (fields == 1 && (field >= sizeof defined || defined[field] == 0))
				return false;
			if (wire == 1 || wire == 5)
				break;
		}
		if (wire == 1 || wire == 5) {
			if (p->n - i < (wire == 1 ? 8u : 4u))
				return true;
			i += wire == 1 ? 8 : 4;
		} else if (wire == 2) {
			if (v[1] > p->n - i)
				return true;          /* runs past the probe */
			i += (size_t)v[1];
		}
		fields++;
	}
	return true;
}

/* torch.save since 1.6: a zip whose entries sit under one ARCHIVE/ folder,
 * ARCHIVE/data.pkl among them. */
static bool
sniff_torch(const probe *p)
{
	return p->is_zip && p->npkl > 0;
}

static bool is_hf_index(const probe *p);

static const reader readers[] = {
	{"safetensors", sniff_safetensors, rs_safetensors_open},
	{"NumPy .npy", sniff_npy, rs_npy_open},
	{"NumPy .npz (numpy.savez, numpy.savez_compressed)", sniff_npz, rs_npz_open},
	{"PyTorch checkpoints (torch.save zip: .pt, .pth, .bin)", sniff_torch, rs_torch_open},
	{"ONNX models", is_onnx, rs_onnx_open},
	{"GGUF v2 and v3 (llama.cpp)", is_gguf, rs_gguf_open},
	{"Hugging Face sharded checkpoints (model.safetensors.index.json, "
	 "pytorch_model.bin.index.json, or their directory)", is_hf_index, rs_sharded_open},
};
#define NREADERS (sizeof readers / sizeof readers[0])

/* Valid UTF-8 of printable characters and whitespace, no NUL: text of
 * some kind.  A multi-byte character cut by the probe's end still counts. */
static bool
is_text(const probe *p)
{
	size_t i = 0, k, more;

	if (p->n == 0)
		return false;
	while (i < p->n) {
		unsigned char c = p->head[i++];

		if (c < 0x80) {
			if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') ||
			    c == 0x7f)
				return false;
			continue;
		}
		more = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
		if (more == 0 || c > 0xf4)
			return false;
		for (k = 0; k < more && i < p->n; k++, i++)
			if ((p->head[i] & 0xc0) != 0x80)
				return false;
	}
	return true;
}

static size_t
first_nonspace(const probe *p)
{
	size_t i = 0;

	while (i < p->n && (p->head[i] == ' ' || p->head[i] == '\n' ||
	                    p->head[i] == '\r' || p->head[i] == '\t'))
		i++;
	return i;
}

static bool
is_json(const probe *p)
{
	size_t i = first_nonspace(p);
	return is_text(p) && i < p->n && (p->head[i] == '{' || p->head[i] == '[');
}

/* model.safetensors.index.json and its kin: {"metadata": ..., "weight_map": ...} */
static bool
is_hf_index(const probe *p)
{
	return is_json(p) && memmem(p->head, p->n, "\"weight_map\"", 12) != NULL;
}

/* Most specific first: a PyTorch zip is also a zip, an index is also JSON. */
static const lookalike lookalikes[] = {
	{"an empty file (0 bytes, too short for any format)", is_empty},
	{"a Keras 3 archive (.keras zip)", is_keras_zip},
	{"a zip archive that is not an .npz (not every entry is NAME.npy)", is_zip},
	{"a legacy PyTorch checkpoint (torch.save before 1.6, a bare pickle); convert it "
	 "with torch.save(torch.load(F), F2), which writes the zip format", is_legacy_torch},
	{"a Python pickle (legacy PyTorch or joblib checkpoint?)", is_pickle},
	{"a tar archive (PyTorch's oldest torch.save format?); convert it with "
	 "torch.save(torch.load(F), F2), which writes the zip format", is_tar},
	{"an HDF5 file (Keras .h5 weights?)", is_hdf5},
	{"a gzip-compressed file (decompress it first)", is_gzip},
	{"JSON text", is_json},
	{"text", is_text},
};
#define NLOOKALIKES (sizeof lookalikes / sizeof lookalikes[0])

const char *
rs_tensor_layout_name(rs_tensor_layout layout)
{
	return layout == RS_LAYOUT_IN_OUT ? "in,out" : "out,in";
}

const char *
rs_tensor_role_name(rs_tensor_role role)
{
	static const char *const names[] = {
		[RS_ROLE_UNKNOWN] = "unknown", [RS_ROLE_LINEAR] = "linear",
		[RS_ROLE_CONV] = "conv", [RS_ROLE_EMBEDDING] = "embedding",
		[RS_ROLE_OTHER] = "other",
	};
	return (unsigned)role < sizeof names / sizeof names[0] ? names[role] : "unknown";
}

const char *
rs_model_formats(void)
{
	static char list[512];
	size_t i, o = 0;

	if (list[0] == '\0')
		for (i = 0; i < NREADERS; i++)
			o += (size_t)snprintf(list + o, sizeof list - o, "%s%s",
			                      i ? (i + 1 == NREADERS ? " and " : ", ") : "",
			                      readers[i].name);
	return list;
}

static bool
ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Entry names of a zip, when libzip can read it as one. */
static void
probe_zip(int fd, probe *p)
{
	zip_t *z;
	zip_int64_t n, i;
	int zfd = dup(fd), zerr = 0;
	bool config = false, h5 = false;

	if (zfd < 0)
		return;
	z = zip_fdopen(zfd, ZIP_RDONLY, &zerr);
	if (z == NULL) {
		close(zfd);
		return;
	}
	p->is_zip = true;
	n = zip_get_num_entries(z, 0);
	p->nentries = n > 0 ? (size_t)n : 0;
	for (i = 0; i < n && i < ZIP_NAMES_MAX; i++) {
		const char *name = zip_get_name(z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);

		if (name == NULL)
			continue;
		p->nnpy += ends_with(name, ".npy");
		p->npkl += ends_with(name, "data.pkl");
		config |= strcmp(name, "config.json") == 0;
		h5 |= ends_with(name, ".h5");
	}
	if (n > ZIP_NAMES_MAX)
		p->nnpy += (size_t)(n - ZIP_NAMES_MAX);   /* the reader checks them all */
	p->keras = config && h5;
	zip_discard(z);
}

/* What an unknown file starts with, for the message. */
static void
describe_bytes(const probe *p, char *buf, size_t len)
{
	size_t i, o;

	o = (size_t)snprintf(buf, len, "data rankscope does not know (first bytes");
	for (i = 0; i < p->n && i < 8 && o + 4 < len; i++)
		o += (size_t)snprintf(buf + o, len - o, " %02x", p->head[i]);
	snprintf(buf + o, len - o, ")");
}

/*
 * Natural order of names: digit runs compare as numbers, so "layers.9"
 * comes before "layers.10"; the rest byte by byte.  Leading zeros are
 * ignored by value and break ties by length ("01" after "1").
 */
int
rs_name_natural_compare(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *sa = a, *sb = b;
			size_t la, lb;

			while (*sa == '0') sa++;
			while (*sb == '0') sb++;
			for (a = sa; *a >= '0' && *a <= '9'; a++)
				;
			for (b = sb; *b >= '0' && *b <= '9'; b++)
				;
			la = (size_t)(a - sa);
			lb = (size_t)(b - sb);
			if (la != lb)
				return la < lb ? -1 : 1;
			if (memcmp(sa, sb, la) != 0)
				return memcmp(sa, sb, la) < 0 ? -1 : 1;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

static int
compare_tensor_names(const void *x, const void *y)
{
	const rs_tensor *a = x, *b = y;
	int c = rs_name_natural_compare(a->name, b->name);

	/* names are unique within a model; this keeps the order total */
	return c ? c : strcmp(a->name, b->name);
}

/* What every reader's model gets before anyone sees it: the network's
 * order (the reader's, or natural order of names), and the roles the file
 * did not state. */
static rs_model *
finish_model(rs_model *m)
{
	if (m == NULL)
		return NULL;
	rs_roles_split_experts(m);
	if (!m->network_order && m->ntensors > 1)
		qsort(m->tensors, m->ntensors, sizeof *m->tensors, compare_tensor_names);
	rs_roles_infer(m);
	return m;
}

rs_model *
rs_model_open(const char *path, rs_error *err)
{
	return finish_model(rs_model_read(path, err));
}

rs_model *
rs_model_read(const char *path, rs_error *err)
{
	unsigned char *head;
	struct stat st;
	ssize_t got;
	probe p = {0};
	const char *what = NULL;
	char unknown[96];
	size_t i;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		rs_error_set(err, RS_EIO, "%s: cannot stat: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return rs_sharded_open(path, err);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		rs_error_set(err, RS_EIO, "%s: not a weight file rankscope reads: looks "
		             "like %s (not a regular file); rankscope reads %s", path,
		             "a device or pipe",
		             rs_model_formats());
		return NULL;
	}
	head = rs_xmalloc(PROBE_LEN);
	got = pread(fd, head, PROBE_LEN, 0);
	if (got < 0) {
		rs_error_set(err, RS_EIO, "%s: cannot read: %s", path, strerror(errno));
		free(head);
		close(fd);
		return NULL;
	}
	p.head = head;
	p.n = (size_t)got;
	p.size = (uint64_t)st.st_size;
	if (starts(&p, 0, "PK", 2))
		probe_zip(fd, &p);
	close(fd);

	for (i = 0; i < NREADERS; i++)
		if (readers[i].sniff(&p)) {
			free(head);
			return readers[i].open(path, err);
		}
	for (i = 0; i < NLOOKALIKES && what == NULL; i++)
		if (lookalikes[i].match(&p))
			what = lookalikes[i].what;
	/* Binary data in no known format whose first 8 bytes still read as a
	 * sane safetensors header length is most likely a damaged safetensors
	 * file (truncated, say): its reader's diagnosis says more than
	 * "unknown". */
	if (what == NULL && (p.n < 8 || rs_read_le(p.head, 8) <= RS_SAFETENSORS_MAX_HEADER)) {
		free(head);
		return rs_safetensors_open(path, err);
	}
	if (what == NULL) {
		describe_bytes(&p, unknown, sizeof unknown);
		what = unknown;
	}
	rs_error_set(err, RS_EFORMAT, "%s: not a weight file rankscope reads: looks like "
	             "%s; rankscope reads %s", path, what, rs_model_formats());
	free(head);
	return NULL;
}
