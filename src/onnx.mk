# src/onnx.mk — the onnx reader (src/io-onnx.c), its tests and its fuzz target.
librankscope_a_SOURCES += src/io-onnx.c
