# bench/: benchmarks, printed side by side with their baselines.
#   make bench    every benchmark below (more land with the balloon driver)
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -I.

$(BUILD)/bench/pfa_bench: bench/pfa_bench.c kernel/pfa.c kernel/pfa_check.c kernel/pfa.h | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -o $@ bench/pfa_bench.c kernel/pfa.c kernel/pfa_check.c

$(BUILD)/bench/host_limit: bench/host_limit.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -o $@ $<

bench: $(BUILD)/bench/pfa_bench $(BUILD)/bench/host_limit all
	@echo "== page-frame allocator (host build, 8 GiB of frames; median of 5)"
	$(Q)$(BUILD)/bench/pfa_bench | tee $(BUILD)/bench/pfa.json
	@echo "== host discard ceilings (1.5 GiB, 5 runs alternated; MiB/s)"
	$(Q)$(BUILD)/bench/host_limit 1536 5 | tee $(BUILD)/bench/host_limit.json
	@echo "== balloon under QEMU (PVH, q35, 2 GiB; 1.5 GiB moved; median of 5)"
	$(Q)$(PYTHON) bench/balloon_bench.py --runs 5 --json $(BUILD)/bench/balloon.json
