# tests/fuzz/fuzz.mk — fuzz targets of every reader; corpora replayed by make check.
.PHONY: fuzz-readers
fuzz-readers:
