/*
 * imatrix.h — llama.cpp's legacy importance matrix file (imatrix.dat, as
 * llama-imatrix wrote it before its GGUF format, and still writes it with
 * --output-format dat), read as calibration statistics (io-imatrix.c).
 *
 * The GGUF importance matrix needs no reader of its own: it is a GGUF file
 * (rs_model_open) whose tensors NAME.in_sum2 and NAME.counts calib.c
 * understands.  The legacy file is not a weight file, so rs_model_open
 * refuses it; rs_calib_open then asks rs_imatrix_looks_like and opens it
 * with rs_imatrix_open.
 *
 * The model it gives holds one tensor per entry, NAME.diag (F32, the
 * entry's nval values as the file stores them), NAME being the weight's
 * full name ("blk.0.attn_q.weight"), and metadata "imatrix.chunk_count"
 * and "imatrix.datasets" when the file ends with them.  There is no
 * NAME.count: the file does not record how many vectors were summed
 * (io-imatrix.c says what it records instead).
 */
#ifndef RANKSCOPE_IMATRIX_H
#define RANKSCOPE_IMATRIX_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"
#include "rankscope/model.h"

/* The longest entry name accepted (ggml's own limit is 63 bytes). */
#define RS_IMATRIX_MAX_NAME 4096

/* Whether the first n bytes of a file start like a legacy imatrix: an
 * entry count >= 1, a name length in 1..RS_IMATRIX_MAX_NAME, a name
 * starting with a visible ASCII character and no control character but
 * NUL in its first 8 bytes.  Looser than the reader, so a damaged file
 * still reaches its messages; text never matches (its "length" would be
 * at least 0x20202020). */
bool rs_imatrix_sniff(const unsigned char *head, size_t n);

/* rs_imatrix_sniff on the start of the file at path (false when it cannot
 * be read). */
bool rs_imatrix_looks_like(const char *path);

/*
 * Validates a legacy imatrix image in memory; the model borrows `bytes`
 * (its tensors point into them).  Every field is checked: counts and
 * lengths against the bytes left, names without NUL and unique, values
 * finite and >= 0, call counts >= 1, and nothing after the optional
 * trailer.  Errors name `path`, the entry (number and name) and the field.
 */
rs_model *rs_imatrix_parse(const char *path, const unsigned char *bytes, size_t len,
                           rs_error *err);

/* Reads the file into memory the model owns, then rs_imatrix_parse. */
rs_model *rs_imatrix_open(const char *path, rs_error *err);

#endif
