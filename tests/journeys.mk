# tests/journeys.mk — the workbench walked menu to menu, and the key storm.
#
# tests/tui-journeys.sh crosses from every menu, form and prompt into every
# other on the MLP and CNN samples; tests/tui-storm.sh sends a seeded storm
# of keys, clicks and resizes (STORM_SEED, STORM_KEYS; a failure prints
# the command that replays it).  make check runs both; `make fuzz-storm`
# runs the storm long, with several seeds, in the same environment.
SCRIPT_TESTS += tests/tui-journeys.sh tests/tui-storm.sh

STORM_LONG_KEYS = 50000
STORM_LONG_SEEDS = 1 2 3 4 5

.PHONY: fuzz-storm
fuzz-storm: rankscope$(EXEEXT)
	@$(AM_TESTS_ENVIRONMENT) \
	for seed in $(STORM_LONG_SEEDS); do \
	  echo "fuzz-storm: seed $$seed, $(STORM_LONG_KEYS) keys"; \
	  STORM_SEED=$$seed STORM_KEYS=$(STORM_LONG_KEYS) $(SHELL) $(srcdir)/tests/tui-storm.sh; \
	  st=$$?; \
	  if [ $$st -eq 77 ]; then echo "fuzz-storm: skipped (no tmux)"; exit 0; fi; \
	  if [ $$st -ne 0 ]; then exit $$st; fi; \
	done
