/*
 * fuzzlib.h — what the fuzz targets share (fuzzlib.c): the checks every
 * reader's messages must pass, a private scratch directory for the readers
 * that take a path, and the tiny model the plan and Lua targets run on.
 *
 * Each target is one LLVMFuzzerTestOneInput (and an LLVMFuzzerInitialize
 * for its set-up); it returns 0 whatever the input, and aborts (a crash to
 * libFuzzer and to replay.c) when an invariant of the reader breaks.
 */
#ifndef RANKSCOPE_FUZZLIB_H
#define RANKSCOPE_FUZZLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/analysis.h"
#include "rankscope/compose.h"
#include "rankscope/engine.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with `what` and the reason unless cond holds. */
#define FUZZ_ASSERT(cond, what) \
	((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond, (what)))
void fuzz_fail(const char *file, int line, const char *cond, const char *what)
	__attribute__((noreturn));

/*
 * A refusal: a status other than RS_OK and a message that is complete on
 * its own (not empty) and holds no raw control byte but the newlines and
 * tabs of a layout, since names from files reach terminals (HACKING.md,
 * conventions; error.c).
 */
void fuzz_check_refusal(rs_status st, const rs_error *err);
/* Whether s holds a control byte (newline and tab allowed if layout_ok). */
bool fuzz_has_control_byte(const char *s, bool layout_ok);

/*
 * What every reader's model must hold for each tensor: its count is its
 * shape's product (no overflow), its bytes what its dtype needs for that
 * count, and both of its ends can be read (ASan catches a pointer past a
 * buffer).
 */
void fuzz_check_tensor(const rs_tensor *t);
/* Every layer of the model (fold 0) loaded by rs_layer_load, or refused
 * cleanly; layers above FUZZ_MAX_LAYER_ELEMENTS elements are skipped. */
#define FUZZ_MAX_LAYER_ELEMENTS (1u << 20)
void fuzz_load_layers(const rs_model *m, const char *path);

/* A scratch directory of this process, removed at exit. */
const char *fuzz_scratch_dir(void);
/* Writes a whole file (aborts on failure: the harness's own I/O). */
void fuzz_write_file(const char *path, const void *data, size_t len);

/*
 * The model of the plan and Lua targets, in memory:
 *   conv1.weight  F32 4x2x3x3     conv1.bias F32 4
 *   fc.weight     F16 6x8         head.weight F64 3x6
 *   lora.0.weight F32 2x8         lora.1.weight BF16 5x2
 *   steps         I64 1           metadata {"format": "pt"}
 * with conv kernels folded by `fold` and, when `composed`, the lora
 * factors declared as one layer (compose pattern FUZZ_COMPOSE_PATTERN),
 * every spectrum and statistic computed (one engine thread, no cache).
 */
#define FUZZ_MODEL_PATH "fuzz-model.safetensors"
#define FUZZ_COMPOSE_PATTERN "lora.#.weight"

typedef struct fuzz_session {
	unsigned char *bytes;
	size_t len;
	rs_model *model;
	rs_compose_set *compose;
	rs_layer *layers;
	size_t nlayers;
	rs_engine *engine;
	rs_layer_analysis *analyses;
} fuzz_session;

void fuzz_session_open(fuzz_session *s, int fold, bool composed);
void fuzz_session_close(fuzz_session *s);

#endif
