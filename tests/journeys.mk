# tests/journeys.mk — the workbench walked menu to menu, and the key storm.
.PHONY: fuzz-storm
fuzz-storm:
