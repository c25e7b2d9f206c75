# tests/fuzz/imatrix.mk — fuzz-imatrix: rs_imatrix_parse (src/io-imatrix.c,
# llama.cpp's legacy imatrix.dat) on arbitrary bytes; replayed by make
# check (tests/fuzz/replay.sh) from tests/fuzz/corpus/imatrix.  Also the
# checker cli-imatrix.sh runs.
EXTRA_DIST += tests/imatrixcheck.py tests/fuzz/imatrix.dict

FUZZ_TARGETS += imatrix
check_PROGRAMS += tests/fuzz/replay-imatrix
tests_fuzz_replay_imatrix_SOURCES = tests/fuzz/fuzz-imatrix.c tests/fuzz/replay.c \
	$(FUZZ_COMMON)
tests_fuzz_replay_imatrix_LDADD = $(FUZZ_LIBS)
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-imatrix
tests_fuzz_fuzz_imatrix_SOURCES = tests/fuzz/fuzz-imatrix.c $(FUZZ_COMMON)
tests_fuzz_fuzz_imatrix_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_imatrix_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
endif
