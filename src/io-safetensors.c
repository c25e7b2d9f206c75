/*
 * io-safetensors.c — opening and validating safetensors files.
 *
 * Layout: 8-byte little-endian header length N, N bytes of a UTF-8 JSON
 * object, then the data buffer.  The checks follow the reference
 * implementation: header length bounded, header starts with '{' and is
 * valid JSON with no duplicate keys, every tensor has a known dtype, a shape
 * of non-negative integers and two data offsets, the byte length equals
 * elements x dtype size (overflow checked), and the tensors tile the data
 * buffer exactly: contiguous, no gap, no overlap, nothing left over.
 * __metadata__ must map strings to strings.
 *
 * The file is mapped read-only and never copied: tensors point into the map.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/guard.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define NAME_SHOWN 160

static void
free_tensors(rs_tensor *tensors, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(tensors[i].name);
		free(tensors[i].shape);
	}
	free(tensors);
}

static void
free_model_tables(rs_model *m)
{
	size_t i;

	free_tensors(m->tensors, m->ntensors);
	for (i = 0; i < m->nmetadata; i++) {
		free(m->metadata[i].key);
		free(m->metadata[i].value);
	}
	free(m->metadata);
	for (i = 0; i < m->nbuffers; i++)
		free(m->buffers[i]);
	free(m->buffers);
	for (i = 0; i < m->nmaps; i++)
		munmap(m->maps[i].addr, m->maps[i].len);
	free(m->maps);
	for (i = 0; i < m->nsplits; i++)
		free(m->splits[i]);
	free(m->splits);
	for (i = 0; i < m->nwholes; i++) {
		free(m->wholes[i]->name);
		free(m->wholes[i]->shape);
		free(m->wholes[i]);
	}
	free(m->wholes);
	for (i = 0; i < m->nparts; i++)
		rs_model_close(m->parts[i]);
	free(m->parts);
	free(m->path);
	free(m);
}

/* A JSON value that must be an integer >= 0 and fit in size_t. */
static bool
json_to_size(const json_t *v, size_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return false;
	i = json_integer_value(v);
	if (i < 0 || (unsigned long long)i > SIZE_MAX)
		return false;
	*out = (size_t)i;
	return true;
}

static rs_status
parse_metadata(rs_model *m, json_t *obj, rs_error *err)
{
	const char *key;
	json_t *value;
	char shown[NAME_SHOWN];

	if (!json_is_object(obj))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: __metadata__ must be an object of strings", m->path);
	m->metadata = rs_xcalloc(json_object_size(obj), sizeof *m->metadata);
	json_object_foreach(obj, key, value) {
		if (!json_is_string(value))
			return rs_error_set(err, RS_EFORMAT,
			    "%s: __metadata__ entry '%s' must be a string",
			    m->path, rs_printable(shown, sizeof shown, key));
		m->metadata[m->nmetadata].key = rs_xstrdup(key);
		m->metadata[m->nmetadata].value = rs_xstrdup(json_string_value(value));
		m->nmetadata++;
	}
	return RS_OK;
}

/* Fills t from a header entry; everything except the tiling checks. */
static rs_status
parse_tensor(const char *path, const char *name, json_t *info, rs_tensor *t,
             rs_error *err)
{
	json_t *dtype, *shape, *offsets, *dim;
	size_t i, begin, end, bits;
	char shown[NAME_SHOWN];
	const char *sn = rs_printable(shown, sizeof shown, name);

	t->name = rs_xstrdup(name);
	if (!json_is_object(info))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': entry must be an object with dtype, shape "
		    "and data_offsets", path, sn);
	dtype = json_object_get(info, "dtype");
	shape = json_object_get(info, "shape");
	offsets = json_object_get(info, "data_offsets");
	if (dtype == NULL || shape == NULL || offsets == NULL)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': missing '%s'", path, sn,
		    dtype == NULL ? "dtype" : shape == NULL ? "shape" : "data_offsets");
	if (!json_is_string(dtype))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': dtype must be a string", path, sn);
	if (!rs_dtype_parse(json_string_value(dtype), &t->dtype)) {
		char dshown[64];
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': unknown dtype '%s'", path, sn,
		    rs_printable(dshown, sizeof dshown, json_string_value(dtype)));
	}
	if (!json_is_array(shape))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': shape must be an array of non-negative integers",
		    path, sn);
	t->ndim = json_array_size(shape);
	t->shape = t->ndim ? rs_xcalloc(t->ndim, sizeof *t->shape) : NULL;
	t->count = 1;
	json_array_foreach(shape, i, dim) {
		if (!json_to_size(dim, &t->shape[i]))
			return rs_error_set(err, RS_EFORMAT,
			    "%s: tensor '%s': shape[%zu] must be a non-negative integer",
			    path, sn, i);
		if (rs_mul_overflows(t->count, t->shape[i], &t->count))
			return rs_error_set(err, RS_EFORMAT,
			    "%s: tensor '%s': element count overflows", path, sn);
	}
	if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
	    !json_to_size(json_array_get(offsets, 0), &begin) ||
	    !json_to_size(json_array_get(offsets, 1), &end))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': data_offsets must be two non-negative integers "
		    "[begin, end]", path, sn);
	if (end < begin)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': data_offsets end %zu is before begin %zu",
		    path, sn, end, begin);
	bits = rs_dtype_get(t->dtype)->bits;
	if (rs_mul_overflows(t->count, bits, &t->nbytes))
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': byte size overflows", path, sn);
	if (t->nbytes % 8 != 0)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': %zu elements of %zu-bit %s do not fill whole bytes",
		    path, sn, t->count, bits, rs_dtype_get(t->dtype)->name);
	t->nbytes /= 8;
	if (end - begin != t->nbytes)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: tensor '%s': data_offsets span %zu bytes but %zu elements of "
		    "%s need %zu", path, sn, end - begin, t->count,
		    rs_dtype_get(t->dtype)->name, t->nbytes);
	t->offset = begin;
	return RS_OK;
}

static int
compare_offsets(const void *a, const void *b)
{
	const rs_tensor *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* The tensors, sorted by offset, must tile [0, data_len) exactly. */
static rs_status
check_tiling(rs_model *m, uint64_t data_start, uint64_t data_len, rs_error *err)
{
	uint64_t expected = 0;
	size_t i;
	char shown[NAME_SHOWN];

	qsort(m->tensors, m->ntensors, sizeof *m->tensors, compare_offsets);
	for (i = 0; i < m->ntensors; i++) {
		rs_tensor *t = &m->tensors[i];
		const char *sn = rs_printable(shown, sizeof shown, t->name);

		if (t->offset > expected)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: tensor '%s': gap of %llu bytes before its data "
			    "(offset %llu, previous tensor ends at %llu)", m->path, sn,
			    (unsigned long long)(t->offset - expected),
			    (unsigned long long)t->offset, (unsigned long long)expected);
		if (t->offset < expected)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: tensor '%s': data overlaps the previous tensor "
			    "(begins at %llu, previous ends at %llu)", m->path, sn,
			    (unsigned long long)t->offset, (unsigned long long)expected);
		if (t->nbytes > data_len - expected)
			return rs_error_set(err, RS_EFORMAT,
			    "%s: tensor '%s': data ends at byte %llu of the data buffer "
			    "but the file holds only %llu (truncated file?)", m->path, sn,
			    (unsigned long long)(t->offset + t->nbytes),
			    (unsigned long long)data_len);
		expected += t->nbytes;
		t->offset += data_start;
		t->data = m->map ? m->map + t->offset : NULL;
	}
	if (expected != data_len)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: %llu bytes after the last tensor's data are not covered by "
		    "any tensor", m->path, (unsigned long long)(data_len - expected));
	return RS_OK;
}

static rs_status
parse_header(rs_model *m, const unsigned char *bytes, size_t len, rs_error *err)
{
	json_error_t jerr;
	json_t *root, *value;
	const char *key;
	const unsigned char *nul;
	char shown[4 * JSON_ERROR_TEXT_LENGTH];
	uint64_t n;
	rs_status st = RS_OK;

	if (len < 8)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: file is %zu bytes, too short for the 8-byte header length",
		    m->path, len);
	n = rs_read_le(bytes, 8);
	if (n > RS_SAFETENSORS_MAX_HEADER)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: header length %llu exceeds the limit of %u bytes", m->path,
		    (unsigned long long)n, RS_SAFETENSORS_MAX_HEADER);
	if (n > len - 8)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: header length %llu runs past the end of the file (%zu bytes; "
		    "truncated file?)", m->path, (unsigned long long)n, len);
	if (n == 0 || bytes[8] != '{')
		return rs_error_set(err, RS_EFORMAT,
		    "%s: header does not start with '{'", m->path);
	/* JSON text never holds a raw NUL, but jansson skips one that follows
	 * a number or literal, so {"a":1<NUL>} would parse */
	nul = memchr(bytes + 8, '\0', (size_t)n);
	if (nul != NULL)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: header is not valid JSON: NUL byte at byte %zu of the header",
		    m->path, (size_t)(nul - bytes - 8));
	m->header_len = n;
	rs_sha256(bytes + 8, (size_t)n, m->header_sha256);

	root = json_loadb((const char *)bytes + 8, (size_t)n,
	                  JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return rs_error_set(err, RS_EFORMAT,
		    "%s: header is not valid JSON: %s (line %d, column %d)", m->path,
		    rs_escape_controls(shown, sizeof shown, jerr.text), jerr.line,
		    jerr.column);
	if (!json_is_object(root)) {
		json_decref(root);
		return rs_error_set(err, RS_EFORMAT,
		    "%s: header must be a JSON object", m->path);
	}
	m->tensors = rs_xcalloc(json_object_size(root), sizeof *m->tensors);
	json_object_foreach(root, key, value) {
		if (strcmp(key, "__metadata__") == 0)
			st = parse_metadata(m, value, err);
		else
			st = parse_tensor(m->path, key, value,
			                  &m->tensors[m->ntensors++], err);
		if (st != RS_OK)
			break;
	}
	json_decref(root);
	if (st != RS_OK)
		return st;
	return check_tiling(m, 8 + n, len - 8 - n, err);
}

/* A model over the image `bytes` of len bytes, whose header is read from
 * `header` (the image itself, or a private copy of its start). */
static rs_model *
parse_image(const char *path, const unsigned char *bytes, const unsigned char *header,
            size_t len, rs_error *err)
{
	rs_model *m = rs_xcalloc(1, sizeof *m);

	m->path = rs_xstrdup(path);
	m->format = "safetensors";
	m->map = bytes;
	m->map_len = len;
	m->file_size = len;
	if (parse_header(m, header, len, err) != RS_OK) {
		free_model_tables(m);
		return NULL;
	}
	return m;
}

rs_model *
rs_safetensors_parse(const char *path, const unsigned char *bytes, size_t len,
                     rs_error *err)
{
	return parse_image(path, bytes, bytes, len, err);
}

/*
 * A private copy of the part of a mapped image parse_header reads: the
 * length and, when that is plausible, the JSON.  Copied under the SIGBUS
 * guard, so a file shrinking while it is opened is an error, and the
 * parser (which allocates, and so must not be cut short) reads only
 * memory of ours.
 */
static unsigned char *
copy_header(const char *path, const unsigned char *map, size_t len, rs_error *err)
{
	size_t n = len < 8 ? len : 8;
	unsigned char *copy = rs_xmalloc(n + 1), *bigger;
	uint64_t hlen;

	if (rs_guard_copy(copy, map, n, path, NULL, err) != RS_OK)
		goto fail;
	if (len < 8)
		return copy;
	hlen = rs_read_le(copy, 8);
	if (hlen > RS_SAFETENSORS_MAX_HEADER || hlen > len - 8)
		return copy;          /* parse_header refuses it from 8 bytes */
	bigger = realloc(copy, 8 + (size_t)hlen);
	if (bigger == NULL) {
		rs_error_set(err, RS_ENOMEM, "%s: out of memory for its %llu-byte header",
		             path, (unsigned long long)hlen);
		goto fail;
	}
	copy = bigger;
	if (rs_guard_copy(copy + 8, map + 8, (size_t)hlen, path, NULL, err) != RS_OK)
		goto fail;
	return copy;
fail:
	free(copy);
	return NULL;
}

rs_model *
rs_safetensors_open(const char *path, rs_error *err)
{
	rs_mapped_file f;
	unsigned char *header;
	rs_model *m;

	if (!rs_file_map(path, &f, err))
		return NULL;
	if (f.map == NULL) {
		m = rs_safetensors_parse(path, (const void *)"", 0, err);
	} else {
		/* the header is parsed from a private copy taken under the guard */
		header = copy_header(path, f.map, (size_t)f.size, err);
		m = header ? parse_image(path, f.map, header, (size_t)f.size, err) : NULL;
		free(header);
	}
	return rs_file_map_adopt(path, &f, m, err);
}

void
rs_model_close(rs_model *model)
{
	if (model == NULL)
		return;
	/* Only models opened from a file own a mapping; those parsed from
	 * memory borrow their bytes.  Every reader's model ends here. */
	if (model->owns_map)
		munmap((void *)model->map, model->map_len);
	free_model_tables(model);
}

const rs_tensor *
rs_model_find(const rs_model *model, const char *name)
{
	size_t i;

	for (i = 0; i < model->ntensors; i++)
		if (strcmp(model->tensors[i].name, name) == 0)
			return &model->tensors[i];
	return NULL;
}

const char *
rs_model_metadata(const rs_model *model, const char *key)
{
	size_t i;

	for (i = 0; i < model->nmetadata; i++)
		if (strcmp(model->metadata[i].key, key) == 0)
			return model->metadata[i].value;
	return NULL;
}

size_t
rs_model_param_count(const rs_model *model)
{
	size_t i, total = 0;

	for (i = 0; i < model->ntensors; i++)
		if (rs_dtype_get(model->tensors[i].dtype)->is_float)
			total += model->tensors[i].count;
	return total;
}
