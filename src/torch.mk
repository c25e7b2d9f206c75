# src/torch.mk — the torch reader (src/io-torch.c), its tests and its fuzz target.
librankscope_a_SOURCES += src/io-torch.c
