# src/gguf.mk — the gguf reader (src/io-gguf.c), its tests and its fuzz target.
librankscope_a_SOURCES += src/io-gguf.c
