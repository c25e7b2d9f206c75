# src/sharded.mk — Hugging Face sharded checkpoints (src/io-sharded.c).
