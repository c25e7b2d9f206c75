# src/gguf.mk — the gguf reader (src/io-gguf.c), its tests and its fuzz target.
librankscope_a_SOURCES += src/io-gguf.c

# test-gguf: hand-built images (valid, hostile, truncated, corrupted);
# cli-gguf.sh: files written by llama.cpp's ggml (tests/gguf-check.py)
# against ggml's own dequantisation and a safetensors twin.
check_PROGRAMS += tests/test-gguf
tests_test_gguf_LDADD = tests/libtest.a $(TEST_LIBS)
TESTS += tests/test-gguf tests/cli-gguf.sh
EXTRA_DIST += tests/cli-gguf.sh tests/gguf-check.py

# ---- fuzz-gguf: rs_gguf_parse on arbitrary bytes ----
FUZZ_TARGETS += gguf
check_PROGRAMS += tests/fuzz/replay-gguf
tests_fuzz_replay_gguf_SOURCES = tests/fuzz/fuzz-gguf.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_gguf_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/gguf.dict
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-gguf
tests_fuzz_fuzz_gguf_SOURCES = tests/fuzz/fuzz-gguf.c $(FUZZ_COMMON)
tests_fuzz_fuzz_gguf_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_gguf_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
endif
