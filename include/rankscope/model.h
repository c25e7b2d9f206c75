/*
 * model.h — a weight file opened read-only by mmap.
 *
 * The model owns the mapping and every string and array below; tensor data
 * pointers point into the mapping, so nothing is copied — except where the
 * format makes that impossible (a deflated .npz entry is inflated, a
 * Fortran-order array is put in C order), and then into `buffers`, which
 * the model also owns.  All of it stays valid until rs_model_close.
 *
 * rs_model_open (model-open.c) recognises the format from the file's
 * content and hands the file to that format's reader (io-safetensors.c,
 * io-npy.c, io-torch.c, io-onnx.c, io-gguf.c, io-sharded.c); every reader
 * fills the same rs_model.
 */
#ifndef RANKSCOPE_MODEL_H
#define RANKSCOPE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/dtype.h"
#include "rankscope/error.h"
#include "rankscope/sha256.h"

/*
 * How a 2-D weight is stored.  PyTorch, safetensors and GGUF (in its ne[]
 * order reversed) keep a linear layer's weight as out x in; ONNX MatMul
 * and Gemm with transB=0, Paddle and tfjs keep it in x out.  A reader
 * that knows sets it; the user's --layout overrides it (layer.c).
 */
typedef enum rs_tensor_layout {
	RS_LAYOUT_OUT_IN = 0,        /* rows = outputs: the default */
	RS_LAYOUT_IN_OUT             /* stored transposed */
} rs_tensor_layout;

/*
 * What the network does with a tensor, when the file says (ONNX: the op
 * consuming it) or the user does; RS_ROLE_UNKNOWN leaves it to the shape
 * and name rules of layer.c.
 */
typedef enum rs_tensor_role {
	RS_ROLE_UNKNOWN = 0,
	RS_ROLE_LINEAR,              /* multiplies activations: MatMul, Gemm */
	RS_ROLE_CONV,                /* a convolution kernel (groups below) */
	RS_ROLE_EMBEDDING,           /* rows looked up by index: Gather */
	RS_ROLE_OTHER                /* consumed some other way: not a layer */
} rs_tensor_role;

/* The tensor a view stands for (role.h: split parts, stacked experts),
 * as the file has it: its views, in order, are its rows back to back. */
typedef struct rs_tensor_whole {
	char *name;
	size_t ndim;
	size_t *shape;
} rs_tensor_whole;

typedef struct rs_tensor {
	char *name;
	rs_dtype dtype;
	size_t ndim;
	size_t *shape;               /* ndim entries (NULL when ndim == 0) */
	size_t count;                /* number of elements: product of shape */
	uint64_t offset;             /* byte offset of the data within the file */
	size_t nbytes;
	const unsigned char *data;   /* into the mapping or a buffer; unaligned in general;
	                                always in C (row-major) element order */
	rs_tensor_layout layout;     /* filled by readers that know; else OUT_IN */
	rs_tensor_role role;         /* filled by readers that know; else UNKNOWN */
	size_t groups;               /* a convolution's group count; 0 = not known */
	const rs_tensor_whole *whole; /* a view: the tensor it is a part of (the
	                                model owns it); NULL for a file's tensor */
} rs_tensor;

typedef struct rs_metadata_entry {
	char *key;
	char *value;
} rs_metadata_entry;

/* A read-only mapping a model owns besides its main one: an ONNX model's
 * external data file, a shard of a sharded checkpoint.  munmap'd on close. */
typedef struct rs_model_map {
	void *addr;
	size_t len;
} rs_model_map;

typedef struct rs_model {
	char *path;
	const char *format;          /* the reader's name: "safetensors", "npy", "npz",
	                                "torch", "onnx", "gguf", "sharded" */
	uint64_t file_size;
	const unsigned char *map;
	size_t map_len;
	bool owns_map;               /* true when opened from a file (munmap on close) */
	uint64_t header_len;         /* the header's length in bytes (npy/npz: see io-npy.c) */
	uint8_t header_sha256[RS_SHA256_LEN];  /* digest of the header bytes */
	size_t ntensors;
	rs_tensor *tensors;          /* in the network's order (see network_order) */
	bool network_order;          /* the reader put tensors in the network's order
	                                (ONNX graph, state_dict insertion, GGUF, index);
	                                otherwise rs_model_open sorts them by name in
	                                natural order, "layers.9" before "layers.10" */
	size_t nmetadata;
	rs_metadata_entry *metadata;
	size_t nbuffers;
	void **buffers;              /* allocations tensor data points into; freed on close */
	size_t nmaps;
	rs_model_map *maps;          /* further mappings tensor data points into */
	size_t nsplits;
	char **splits;               /* the --split rules applied (role.h), as given;
	                                a plan records them */
	size_t nwholes;
	rs_tensor_whole **wholes;    /* the tensors views stand for; freed on close */
	size_t nparts;
	struct rs_model **parts;     /* the shards of a sharded checkpoint: tensor
	                                data points into them; closed on close */
} rs_model;

/* Safetensors header length limit, as in the reference implementation. */
#define RS_SAFETENSORS_MAX_HEADER 100000000u

/* NumPy header limit: numpy's own reader refuses more than 10,000 bytes by
 * default; this allows a hundred times that and still bounds the parse. */
#define RS_NPY_MAX_HEADER (1u << 20)
/* The most bytes an .npz or torch checkpoint may inflate into memory in
 * all (deflated entries cannot be mapped), so a zip bomb fails before it
 * allocates. */
#define RS_NPZ_MAX_INFLATED ((uint64_t)16 << 30)
/* Deflate's best ratio is 1032:1; an entry declaring more is lying. */
#define RS_NPZ_MAX_RATIO 1100u

/*
 * Opens and validates a weight file of any format rankscope reads, which it
 * recognises from the content (model-open.c).  On failure returns NULL and
 * fills err with a message naming the file and, where one is at fault, the
 * tensor; a file in no format it reads is RS_EFORMAT "PATH: not a weight
 * file rankscope reads: looks like WHAT; ..." with the formats it reads.
 */
rs_model *rs_model_open(const char *path, rs_error *err);

/* What rs_model_open does before it orders the tensors, splits stacked
 * experts and infers roles: the reader's model as the file has it (the
 * shards of a sharded checkpoint are read so, then finished as one). */
rs_model *rs_model_read(const char *path, rs_error *err);

/* Natural order of names ("layers.9" before "layers.10"): <0, 0, >0. */
int rs_name_natural_compare(const char *a, const char *b);

/* The formats rs_model_open reads, for messages: "safetensors, ...". */
const char *rs_model_formats(void);

/* The readers behind rs_model_open; each validates only its own format. */
rs_model *rs_safetensors_open(const char *path, rs_error *err);
rs_model *rs_npy_open(const char *path, rs_error *err);
rs_model *rs_npz_open(const char *path, rs_error *err);
rs_model *rs_torch_open(const char *path, rs_error *err);   /* io-torch.c */
rs_model *rs_onnx_open(const char *path, rs_error *err);    /* io-onnx.c */
rs_model *rs_gguf_open(const char *path, rs_error *err);    /* io-gguf.c */
/* A Hugging Face sharded checkpoint (io-sharded.c): its index file
 * (model.safetensors.index.json, pytorch_model.bin.index.json), or the
 * directory holding it, opened as one model across its shards. */
rs_model *rs_sharded_open(const char *path, rs_error *err);
/* For a file named like one shard ("model-00002-of-00005.safetensors"):
 * true, with its number and the count. */
bool rs_shard_name(const char *path, unsigned *shard, unsigned *count);

/* Images already in memory (tests, fuzzing); the model borrows `bytes`
 * (a torch zip's deflated entries are inflated into buffers; an ONNX
 * image's external data files are looked up next to `path`). */
rs_model *rs_torch_parse(const char *path, const unsigned char *bytes, size_t len,
                         rs_error *err);
rs_model *rs_onnx_parse(const char *path, const unsigned char *bytes, size_t len,
                        rs_error *err);
rs_model *rs_gguf_parse(const char *path, const unsigned char *bytes, size_t len,
                        rs_error *err);

/* .npy / .npz images already in memory (tests, fuzzing); borrow `bytes`. */
rs_model *rs_npy_parse(const char *path, const unsigned char *bytes, size_t len,
                       rs_error *err);
rs_model *rs_npz_parse(const char *path, const unsigned char *bytes, size_t len,
                       rs_error *err);

/*
 * Validates a safetensors image already in memory (used by
 * rs_safetensors_open and by tests).  `path` is only used in messages.  The model borrows `bytes`.
 */
rs_model *rs_safetensors_parse(const char *path, const unsigned char *bytes,
                               size_t len, rs_error *err);

void rs_model_close(rs_model *model);

/* A weight file mapped read-only for its reader (io-file.c): the readers'
 * one way to open a file. */
typedef struct rs_mapped_file {
	int fd;
	uint64_t size;
	void *map;                   /* NULL for an empty file */
} rs_mapped_file;

/* Opens and maps a regular file; RS_EIO naming the file otherwise. */
bool rs_file_map(const char *path, rs_mapped_file *f, rs_error *err);
/* The map's bytes (an empty string for an empty file). */
const unsigned char *rs_file_map_bytes(const rs_mapped_file *f);
/*
 * Gives the map to m (which then owns it), or unmaps it when m is NULL, and
 * closes the descriptor.  A file whose size changed since rs_file_map is
 * RS_EIO "changed size while it was being opened" whatever m is: a cut
 * inside a mapped page reads as zeros, not as a fault, and would otherwise
 * be reported as whatever it broke.
 */
rs_model *rs_file_map_adopt(const char *path, rs_mapped_file *f, rs_model *m,
                            rs_error *err);

/* "out,in" / "in,out"; "unknown", "linear", "conv", "embedding", "other". */
const char *rs_tensor_layout_name(rs_tensor_layout layout);
const char *rs_tensor_role_name(rs_tensor_role role);

const rs_tensor *rs_model_find(const rs_model *model, const char *name);
const char *rs_model_metadata(const rs_model *model, const char *key);
/* Total elements of all floating-point tensors (the "params" of a model). */
size_t rs_model_param_count(const rs_model *model);

#endif
