/*
 * cache.h — the on-disk spectrum cache (io-cache.c).
 *
 * An entry is keyed by the SHA-256 of everything that determines the
 * spectrum: tensor bytes, dtype, shape, fold scheme and SVD method.  A
 * changed file therefore can never be served a stale spectrum, and identical
 * layers in different files share an entry.  Entries carry their own
 * checksum; a corrupt or foreign entry is ignored (and later overwritten).
 *
 * Location: $XDG_CACHE_HOME/rankscope/spectra, or ~/.cache/rankscope/spectra.
 */
#ifndef RANKSCOPE_CACHE_H
#define RANKSCOPE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/sha256.h"
#include "rankscope/svd.h"

typedef struct rs_cache_key {
	uint8_t digest[RS_SHA256_LEN];
} rs_cache_key;

/* Default directory (newly allocated), or NULL when neither XDG_CACHE_HOME
 * nor HOME is set. */
char *rs_cache_default_dir(void);

/* Hashes the layer's bytes directly, unguarded: for a mapped model pass a
 * snapshot (rs_layer_snapshot_take), as the engine does, so that the key
 * describes exactly the bytes the spectrum is computed from. */
void rs_cache_key_for(const rs_layer *layer, rs_svd_method method,
                      rs_cache_key *key);

/*
 * Looks an entry up.  On a hit returns true with *sigma (malloc'd, k values)
 * filled.  A missing, unreadable, corrupt or mismatching entry is a miss.
 */
bool rs_cache_load(const char *dir, const rs_cache_key *key, size_t rows,
                   size_t cols, double **sigma);

/* Stores an entry atomically (temporary file + rename), creating `dir`. */
rs_status rs_cache_store(const char *dir, const rs_cache_key *key, size_t rows,
                         size_t cols, const double *sigma, rs_error *err);

/* The entry's file name (for tests that damage it); caller frees. */
/* Tables of n finite doubles for a rows x cols layer under a key of the
 * caller's making (the whitened truncation's, keyed by W and G): as
 * spectra, a damaged entry is a miss. */
bool rs_cache_load_table(const char *dir, const rs_cache_key *key, size_t rows, size_t cols,
                         size_t n, double **out);
rs_status rs_cache_store_table(const char *dir, const rs_cache_key *key, size_t rows,
                               size_t cols, const double *v, size_t n, rs_error *err);
char *rs_cache_entry_path(const char *dir, const rs_cache_key *key);

#endif
