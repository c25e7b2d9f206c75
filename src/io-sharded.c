/*
 * io-sharded.c — a Hugging Face sharded checkpoint as one model.
 *
 * save_pretrained splits a large model into shards (model-00001-of-00003
 * .safetensors, or pytorch_model-00001-of-00003.bin) and writes an index,
 * {"metadata": {...}, "weight_map": {TENSOR: SHARD, ...}}.  The index file,
 * or the directory holding it, opens here: every shard the map names is
 * opened by its own reader (through rs_model_read, so a shard is validated
 * as any file is), and the model's tensors point into the shards, which it
 * keeps open (model->parts).  Nothing is copied.
 *
 * The index is trusted for nothing: a shard name must be a plain file name
 * in the index's directory (no '/', not "." or ".."), every tensor the map
 * names must be in its shard, and every tensor of a shard must be in the
 * map, or the open fails naming the tensor and the shard.
 *
 * Order: the index lists tensors sorted as text (save_pretrained writes it
 * with sorted keys), so "layers.10" comes before "layers.9" there; the
 * model takes the natural order of names instead, as for safetensors.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rankscope/file.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

/* An index is a small JSON file; a few MiB covers the largest models. */
#define INDEX_MAX_BYTES ((size_t)64 << 20)
#define MAX_SHARDS 100000

static const char *const index_names[] = {
	"model.safetensors.index.json", "pytorch_model.bin.index.json",
};
static const char *const single_names[] = {"model.safetensors", "pytorch_model.bin"};

bool
rs_shard_name(const char *path, unsigned *shard, unsigned *count)
{
	const char *base = strrchr(path, '/'), *p;
	unsigned a, b;
	int end = 0;

	base = base ? base + 1 : path;
	for (p = base; (p = strchr(p, '-')) != NULL; p++)
		if (sscanf(p, "-%5u-of-%5u.%*[a-z]%n", &a, &b, &end) == 2 && end > 0 &&
		    p[end] == '\0' && a >= 1 && a <= b && b >= 2) {
			*shard = a;
			*count = b;
			return true;
		}
	return false;
}

static bool
file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The index of a directory, or its single weight file; NULL when none. */
static char *
directory_target(const char *dir, bool *is_index)
{
	size_t i;

	for (i = 0; i < sizeof index_names / sizeof index_names[0]; i++) {
		char *p = rs_xasprintf("%s/%s", dir, index_names[i]);
		if (file_exists(p)) {
			*is_index = true;
			return p;
		}
		free(p);
	}
	for (i = 0; i < sizeof single_names / sizeof single_names[0]; i++) {
		char *p = rs_xasprintf("%s/%s", dir, single_names[i]);
		if (file_exists(p)) {
			*is_index = false;
			return p;
		}
		free(p);
	}
	return NULL;
}

/* A file name in the index's directory, of printable characters: the
 * name reaches messages and paths, and came from the file. */
static bool
plain_file_name(const char *name)
{
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

/* The shard index of `file` in the list, adding it when new. */
static size_t
shard_slot(char ***files, size_t *n, const char *file)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*files)[i], file) == 0)
			return i;
	*files = rs_xrealloc(*files, (*n + 1) * sizeof **files);
	(*files)[*n] = rs_xstrdup(file);
	return (*n)++;
}

static rs_status
copy_tensor(rs_tensor *dst, const rs_tensor *src)
{
	*dst = *src;
	dst->name = rs_xstrdup(src->name);
	dst->shape = NULL;
	if (src->ndim > 0) {
		dst->shape = rs_xcalloc(src->ndim, sizeof *dst->shape);
		memcpy(dst->shape, src->shape, src->ndim * sizeof *dst->shape);
	}
	return RS_OK;
}

static rs_model *
open_index(const char *path, rs_error *err)
{
	unsigned char *bytes = NULL;
	size_t len = 0, nfiles = 0, i, k, ntensors, done = 0;
	char **files = NULL, *dir, *slash, name[128], shard[128];
	json_error_t jerr;
	json_t *root, *map, *meta, *v;
	const char *key;
	rs_model *m = NULL;
	size_t *slot_of;
	rs_status st = RS_OK;

	if (rs_file_read_all(path, INDEX_MAX_BYTES, &bytes, &len, err) != RS_OK)
		return NULL;
	root = json_loadb((const char *)bytes, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		char shown[2 * JSON_ERROR_TEXT_LENGTH];
		rs_error_set(err, RS_EFORMAT, "%s: not a sharded-checkpoint index: %s (line %d)",
		             path, rs_escape_controls(shown, sizeof shown, jerr.text), jerr.line);
		free(bytes);
		return NULL;
	}
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map) || json_object_size(map) == 0) {
		rs_error_set(err, RS_EFORMAT, "%s: a sharded-checkpoint index needs a non-empty "
		             "\"weight_map\" object of tensor names and shard files", path);
		goto out;
	}
	ntensors = json_object_size(map);
	slot_of = rs_xcalloc(ntensors, sizeof *slot_of);
	i = 0;
	json_object_foreach(map, key, v) {
		rs_printable(name, sizeof name, key);
		if (!json_is_string(v) || !plain_file_name(json_string_value(v))) {
			rs_error_set(err, RS_EFORMAT, "%s: tensor '%s': its shard must be a file name "
			             "in the index's directory, of printable characters", path, name);
			free(slot_of);
			goto out;
		}
		slot_of[i++] = shard_slot(&files, &nfiles, json_string_value(v));
		if (nfiles > MAX_SHARDS) {
			rs_error_set(err, RS_EFORMAT, "%s: more than %d shards", path, MAX_SHARDS);
			free(slot_of);
			goto out;
		}
	}
	dir = rs_xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	m = rs_xcalloc(1, sizeof *m);
	m->path = rs_xstrdup(path);
	m->format = "sharded";
	m->parts = rs_xcalloc(nfiles, sizeof *m->parts);
	m->tensors = rs_xcalloc(ntensors, sizeof *m->tensors);
	for (k = 0; k < nfiles && st == RS_OK; k++) {
		char *sp = slash ? rs_xasprintf("%s/%s", dir, files[k]) : rs_xstrdup(files[k]);
		rs_error sub;

		m->parts[k] = rs_model_read(sp, &sub);
		if (m->parts[k] == NULL) {
			st = rs_error_set(err, sub.code, "%s: shard %zu of %zu: %s", path, k + 1,
			                  nfiles, sub.msg);
		} else {
			m->nparts = k + 1;
			m->file_size += m->parts[k]->file_size;
		}
		free(sp);
	}
	/* every mapped tensor from its shard, in the map's order */
	i = 0;
	json_object_foreach(map, key, v) {
		const rs_tensor *t;

		if (st != RS_OK)
			break;
		t = rs_model_find(m->parts[slot_of[i]], key);
		if (t == NULL) {
			rs_printable(name, sizeof name, key);
			rs_printable(shard, sizeof shard, files[slot_of[i]]);
			st = rs_error_set(err, RS_EFORMAT, "%s: tensor '%s' is not in its shard %s",
			                  path, name, shard);
			break;
		}
		copy_tensor(&m->tensors[done++], t);
		m->ntensors = done;
		i++;
	}
	/* and nothing in a shard the map does not list */
	for (k = 0; k < m->nparts && st == RS_OK; k++)
		for (i = 0; i < m->parts[k]->ntensors && st == RS_OK; i++) {
			const char *tn = m->parts[k]->tensors[i].name;
			json_t *where = json_object_get(map, tn);

			if (where == NULL || strcmp(json_string_value(where), files[k]) != 0) {
				rs_printable(name, sizeof name, tn);
				rs_printable(shard, sizeof shard, files[k]);
				st = rs_error_set(err, RS_EFORMAT, "%s: shard %s holds tensor '%s', which "
				                  "the index %s", path, shard, name, where ?
				                  "places in another shard" : "does not list");
			}
		}
	free(slot_of);
	free(dir);
	if (st != RS_OK) {
		rs_model_close(m);
		m = NULL;
		goto out;
	}
	meta = json_object_get(root, "metadata");
	if (json_is_object(meta)) {
		m->metadata = rs_xcalloc(json_object_size(meta) + 1, sizeof *m->metadata);
		json_object_foreach(meta, key, v) {
			char *text = json_is_string(v) ? rs_xstrdup(json_string_value(v)) :
			             json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			m->metadata[m->nmetadata].key = rs_xstrdup(key);
			m->metadata[m->nmetadata++].value = text ? text : rs_xstrdup("");
		}
	}
	m->header_len = len;
	rs_sha256(bytes, len, m->header_sha256);
out:
	for (k = 0; k < nfiles; k++)
		free(files[k]);
	free(files);
	json_decref(root);
	free(bytes);
	return m;
}

rs_model *
rs_sharded_open(const char *path, rs_error *err)
{
	struct stat st;
	bool is_index = true;
	char *target;
	rs_model *m;

	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return open_index(path, err);
	target = directory_target(path, &is_index);
	if (target == NULL) {
		rs_error_set(err, RS_EFORMAT, "%s: a directory without %s, %s, %s or %s; open a "
		             "weight file in it", path, index_names[0], index_names[1],
		             single_names[0], single_names[1]);
		return NULL;
	}
	m = is_index ? open_index(target, err) : rs_model_read(target, err);
	free(target);
	return m;
}
