# src/onnx.mk — the onnx reader (src/io-onnx.c), its tests and its fuzz target.
#
# The protobuf-c code for onnx.proto is generated at build time, in the
# build tree (nothing generated lands in the source tree, so VPATH builds
# and distcheck work): $(ONNX_PROTO) is copied to src/onnx-proto/onnx.proto
# (protoc-c names its output after the file and wants the file's directory
# as --proto_path) and compiled to src/onnx.pb-c.c and src/onnx.pb-c.h.
# The generated C is not ours: it is compiled in a convenience library of
# its own with warnings off (our -Werror and -Wmissing-prototypes are for
# our code; protoc-c's output varies with its version), and its object is
# added to librankscope.a, so every program that links the library has it.
librankscope_a_SOURCES += src/io-onnx.c
AM_CPPFLAGS += -I$(top_builddir)/src

ONNX_PB_GENERATED = src/onnx.pb-c.c src/onnx.pb-c.h
BUILT_SOURCES = $(ONNX_PB_GENERATED)
CLEANFILES += $(ONNX_PB_GENERATED) src/onnx-proto/onnx.proto

noinst_LIBRARIES += src/libonnxpb.a
src_libonnxpb_a_SOURCES =
nodist_src_libonnxpb_a_SOURCES = $(ONNX_PB_GENERATED)
src_libonnxpb_a_CFLAGS = $(AM_CFLAGS) -w
librankscope_a_LIBADD = $(src_libonnxpb_a_OBJECTS)
librankscope_a_DEPENDENCIES = $(src_libonnxpb_a_OBJECTS)

src/onnx.pb-c.c: $(ONNX_PROTO)
	$(AM_V_GEN)$(MKDIR_P) src/onnx-proto && \
	cp "$(ONNX_PROTO)" src/onnx-proto/onnx.proto && \
	$(PROTOC_C) --proto_path=src/onnx-proto --c_out=src src/onnx-proto/onnx.proto
# One run of protoc-c writes both files; the header is remade with the .c.
src/onnx.pb-c.h: src/onnx.pb-c.c
	@test -f $@ || { rm -f src/onnx.pb-c.c; $(MAKE) $(AM_MAKEFLAGS) src/onnx.pb-c.c; }
src/io-onnx.$(OBJEXT): src/onnx.pb-c.h

# ---- tests: the reader on models encoded field by field (test-onnx), and
# models written by onnx itself through the binary (cli-onnx.sh) ----
check_PROGRAMS += tests/test-onnx
tests_test_onnx_LDADD = tests/libtest.a $(TEST_LIBS)
TESTS += tests/test-onnx tests/cli-onnx.sh
EXTRA_DIST += tests/cli-onnx.sh tests/make-onnx.py

# ---- fuzz-onnx: the ONNX reader (rs_onnx_parse) ----
FUZZ_TARGETS += onnx
check_PROGRAMS += tests/fuzz/replay-onnx
tests_fuzz_replay_onnx_SOURCES = tests/fuzz/fuzz-onnx.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_onnx_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/onnx.dict
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-onnx
tests_fuzz_fuzz_onnx_SOURCES = tests/fuzz/fuzz-onnx.c $(FUZZ_COMMON)
tests_fuzz_fuzz_onnx_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_onnx_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
endif
