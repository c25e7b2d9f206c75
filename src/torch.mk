# src/torch.mk — the torch reader (src/io-torch.c), its tests and its fuzz target.
#
# io-zip.c holds what the zip-based readers share (zipentry.h): where a
# stored entry's bytes are in the map, and reading one that is deflated
# under the inflation limits.
librankscope_a_SOURCES += src/io-torch.c src/io-zip.c
noinst_HEADERS += include/rankscope/zipentry.h

# test-torch: the unpickler and the archive rules on hand-made images;
# cli-torch.sh: checkpoints written by torch.save (tests/make-torch.py)
# through the binary, against their safetensors twin.
check_PROGRAMS += tests/test-torch
tests_test_torch_LDADD = tests/libtest.a $(TEST_LIBS)
TESTS += tests/test-torch tests/cli-torch.sh
EXTRA_DIST += tests/cli-torch.sh tests/make-torch.py

# ---- fuzz-torch: the PyTorch reader (io-torch.c: libzip, the unpickler,
# views against storages, inflation) ----
FUZZ_TARGETS += torch
check_PROGRAMS += tests/fuzz/replay-torch
tests_fuzz_replay_torch_SOURCES = tests/fuzz/fuzz-torch.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_torch_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/torch.dict
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-torch
tests_fuzz_fuzz_torch_SOURCES = tests/fuzz/fuzz-torch.c $(FUZZ_COMMON)
tests_fuzz_fuzz_torch_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_torch_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
endif
