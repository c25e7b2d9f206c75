# tests/faults.mk — faults: files changing under a map, full and read-only disks, kill -9.
#
# tests/test-guard maps files and shrinks and rewrites them under the map;
# tests/cli-faults.sh drives the binary into full, read-only and vanishing
# files, kills it at random points and races two processes on one cache.
# Its file system faults come from tests/faultfs.so, an LD_PRELOAD shim
# built here without the sanitizers (it is loaded into sanitized and plain
# binaries alike).
C_TESTS += tests/test-guard
tests_test_guard_LDADD = tests/libtest.a $(TEST_LIBS)

check_DATA = tests/faultfs.so
tests/faultfs.so: $(srcdir)/tests/faultfs.c
	@$(MKDIR_P) tests
	$(AM_V_CC)$(CC) -shared -fPIC -O2 -Wall -o $@ $(srcdir)/tests/faultfs.c -ldl

SCRIPT_TESTS += tests/cli-faults.sh
AM_TESTS_ENVIRONMENT += FAULTFS=$(abs_top_builddir)/tests/faultfs.so; export FAULTFS;
CLEANFILES += tests/faultfs.so
EXTRA_DIST += tests/faultfs.c
