# tests/fuzz/fuzz.mk — fuzz targets of every reader; corpora replayed by make check.
#
# One target per reader (tests/fuzz/README): fuzz-TARGET.c holds its
# LLVMFuzzerTestOneInput.  Every build links each target with replay.c into
# tests/fuzz/replay-TARGET, and make check runs tests/fuzz/replay.sh, which
# feeds it the committed corpus tests/fuzz/corpus/TARGET.  A build
# configured with --enable-fuzzing (clang) also links each target with
# libFuzzer into tests/fuzz/fuzz-TARGET, and `make fuzz-readers` runs them
# one after another for FUZZ_SECONDS each.
.PHONY: fuzz-readers
FUZZ_TARGETS = safetensors plan cache lua-args
FUZZ_COMMON = tests/fuzz/fuzzlib.c tests/fuzz/fuzzlib.h tests/testlib.c
FUZZ_LIBS = librankscope.a $(CORE_LIBS)

check_PROGRAMS += tests/fuzz/replay-safetensors tests/fuzz/replay-plan \
	tests/fuzz/replay-cache tests/fuzz/replay-lua-args
tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz-safetensors.c \
	tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_safetensors_LDADD = $(FUZZ_LIBS)
tests_fuzz_replay_plan_SOURCES = tests/fuzz/fuzz-plan.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_plan_LDADD = $(FUZZ_LIBS)
tests_fuzz_replay_cache_SOURCES = tests/fuzz/fuzz-cache.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_cache_LDADD = $(FUZZ_LIBS)
tests_fuzz_replay_lua_args_SOURCES = tests/fuzz/fuzz-lua-args.c tests/fuzz/replay.c \
	$(FUZZ_COMMON)
tests_fuzz_replay_lua_args_LDADD = $(FUZZ_LIBS)

TESTS += tests/fuzz/replay.sh
EXTRA_DIST += tests/fuzz/README tests/fuzz/replay.sh tests/fuzz/make-seeds.py \
	tests/fuzz/corpus tests/fuzz/safetensors.dict tests/fuzz/plan.dict \
	tests/fuzz/cache.dict tests/fuzz/lua-args.dict

# ---- the libFuzzer programs (clang, --enable-fuzzing) ----
# Time per target, and the limits every run gets: -timeout per input (s),
# -rss_limit_mb for the process; -max_len per target in the rule below.
FUZZ_SECONDS = 300
FUZZ_TIMEOUT = 10
FUZZ_RSS_MB = 2048
FUZZ_FLAGS =

if FUZZING
noinst_PROGRAMS = tests/fuzz/fuzz-safetensors tests/fuzz/fuzz-plan \
	tests/fuzz/fuzz-cache tests/fuzz/fuzz-lua-args
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz-safetensors.c $(FUZZ_COMMON)
tests_fuzz_fuzz_safetensors_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_plan_SOURCES = tests/fuzz/fuzz-plan.c $(FUZZ_COMMON)
tests_fuzz_fuzz_plan_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_plan_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_cache_SOURCES = tests/fuzz/fuzz-cache.c $(FUZZ_COMMON)
tests_fuzz_fuzz_cache_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_cache_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_lua_args_SOURCES = tests/fuzz/fuzz-lua-args.c $(FUZZ_COMMON)
tests_fuzz_fuzz_lua_args_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_lua_args_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)

# New inputs go to tests/fuzz/work/TARGET (the committed corpus is read
# only), crashes to tests/fuzz/artifacts/; the first crash stops the run.
fuzz-readers: $(noinst_PROGRAMS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  case $$t in \
	  safetensors) len=4096 ;; plan) len=8192 ;; cache) len=2048 ;; npz|onnx|gguf|imatrix) len=8192 ;; sharded) len=1024 ;; \
	  torch) len=16384 ;; *) len=512 ;; \
	  esac; \
	  mkdir -p tests/fuzz/work/$$t tests/fuzz/artifacts; \
	  echo "fuzz-readers: fuzz-$$t for $(FUZZ_SECONDS) s"; \
	  ./tests/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$len \
	    -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1 \
	    -dict=$(srcdir)/tests/fuzz/$$t.dict \
	    -artifact_prefix=tests/fuzz/artifacts/$$t- $(FUZZ_FLAGS) \
	    tests/fuzz/work/$$t $(srcdir)/tests/fuzz/corpus/$$t; \
	done
else
fuzz-readers:
	@echo "fuzz-readers: the libFuzzer targets need a clang build configured for them:"; \
	echo "  mkdir build-fuzz && cd build-fuzz && ../configure CC=clang --enable-fuzzing && make fuzz-readers"; \
	echo "This build replays the committed corpora in make check (tests/fuzz/replay.sh)."
endif

# ---- fuzz-npz: the NumPy readers (io-npy.c: .npz through libzip, .npy) ----
FUZZ_TARGETS += npz
check_PROGRAMS += tests/fuzz/replay-npz
tests_fuzz_replay_npz_SOURCES = tests/fuzz/fuzz-npz.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_npz_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/npz.dict
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-npz
tests_fuzz_fuzz_npz_SOURCES = tests/fuzz/fuzz-npz.c $(FUZZ_COMMON)
tests_fuzz_fuzz_npz_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_npz_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
endif

# ---- fuzz-sharded: a Hugging Face index over two real shards (io-sharded.c) ----
FUZZ_TARGETS += sharded
check_PROGRAMS += tests/fuzz/replay-sharded
tests_fuzz_replay_sharded_SOURCES = tests/fuzz/fuzz-sharded.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_sharded_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/sharded.dict
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-sharded
tests_fuzz_fuzz_sharded_SOURCES = tests/fuzz/fuzz-sharded.c $(FUZZ_COMMON)
tests_fuzz_fuzz_sharded_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_sharded_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
endif
