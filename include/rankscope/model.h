/*
 * model.h — a weight file opened read-only by mmap.
 *
 * The model owns the mapping and every string and array below; tensor data
 * pointers point into the mapping, so nothing is copied.  All of it stays
 * valid until rs_model_close.
 */
#ifndef RANKSCOPE_MODEL_H
#define RANKSCOPE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/dtype.h"
#include "rankscope/error.h"
#include "rankscope/sha256.h"

typedef struct rs_tensor {
	char *name;
	rs_dtype dtype;
	size_t ndim;
	size_t *shape;               /* ndim entries (NULL when ndim == 0) */
	size_t count;                /* number of elements: product of shape */
	uint64_t offset;             /* byte offset of the data within the file */
	size_t nbytes;
	const unsigned char *data;   /* into the mapping; unaligned in general */
} rs_tensor;

typedef struct rs_metadata_entry {
	char *key;
	char *value;
} rs_metadata_entry;

typedef struct rs_model {
	char *path;
	uint64_t file_size;
	const unsigned char *map;
	size_t map_len;
	bool owns_map;               /* true when opened from a file (munmap on close) */
	uint64_t header_len;         /* the JSON header's length in bytes */
	uint8_t header_sha256[RS_SHA256_LEN];  /* digest of the JSON header bytes */
	size_t ntensors;
	rs_tensor *tensors;          /* in file (data offset) order */
	size_t nmetadata;
	rs_metadata_entry *metadata;
} rs_model;

/* Safetensors header length limit, as in the reference implementation. */
#define RS_SAFETENSORS_MAX_HEADER 100000000u

/*
 * Opens and validates a safetensors file.  On failure returns NULL and fills
 * err with a message naming the file and, where one is at fault, the tensor.
 */
rs_model *rs_model_open(const char *path, rs_error *err);

/*
 * Validates a safetensors image already in memory (used by rs_model_open and
 * by tests).  `path` is only used in messages.  The model borrows `bytes`.
 */
rs_model *rs_safetensors_parse(const char *path, const unsigned char *bytes,
                               size_t len, rs_error *err);

void rs_model_close(rs_model *model);

const rs_tensor *rs_model_find(const rs_model *model, const char *name);
const char *rs_model_metadata(const rs_model *model, const char *key);
/* Total elements of all floating-point tensors (the "params" of a model). */
size_t rs_model_param_count(const rs_model *model);

#endif
