# tests/fuzz: the device fuzzes blimp (host side, libFuzzer).
#
# Each harness registers itself in tests/fuzz/host/<name>.mk:
#     FUZZ_TARGETS += name
#     FUZZ_SRCS_name := tests/fuzz/host/fuzz_name.c <the kernel sources it drives>
# and keeps its seed corpus in tests/fuzz/corpus/<name>/ (committed).
# Harnesses are built with clang's libFuzzer under ASan and UBSan, from the
# same sources as the kernel (-DBLIMP_HOST=1).
#
#   make fuzz            every harness for FUZZ_SECONDS (default 60) each; new
#                        inputs go to build/fuzz/corpus/<name>, crashes to
#                        build/fuzz/findings/<name>/ (replay: binary FILE)
#   make fuzz-smoke      replay every committed corpus, then FUZZ_SMOKE_SECONDS
#                        (default 3) of fuzzing each; part of `make test`
#   make fuzz-<name>     one harness, FUZZ_SECONDS long
#   make fuzz-device     blimp fuzzes the balloon device in QEMU for
#                        FUZZ_DEVICE_SECONDS (default 600) over every QEMU
#                        configuration (tools/fuzz_device.py); findings in
#                        build/fuzz/device-findings/

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_TARGETS :=
include $(sort $(wildcard tests/fuzz/host/*.mk))
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-command-line-argument \
	-I. -DBLIMP_HOST=1 -DBLIMP_FUZZ=1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))

FUZZ_DEVICE_SECONDS ?= 600
FUZZ_DEVICE_ARGS ?=

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-device

# Each harness compiles to its own objects (its flags may differ) with -MMD -MP,
# so a change to any header it includes, arch/ too, rebuilds it. The ignore
# lists named in its flags are read by the compiler but not listed in .d files.
fuzz_ignorelists = $(foreach f,$(filter -fsanitize%ignorelist=%,$(FUZZ_CFLAGS_$(1))),$(lastword $(subst =, ,$(f))))
define fuzz_rule
FUZZ_OBJS_$(1) := $$(patsubst %.c,$(BUILD)/fuzz/obj/$(1)/%.o,$$(FUZZ_SRCS_$(1)))
$$(FUZZ_OBJS_$(1)): $(BUILD)/fuzz/obj/$(1)/%.o: %.c $$(call fuzz_ignorelists,$(1)) | $(BUILD)/.deps
	$$(Q)mkdir -p $$(dir $$@)
	$$(Q)$$(FUZZ_CC) $$(FUZZ_CFLAGS) $$(FUZZ_CFLAGS_$(1)) -MMD -MP -c $$< -o $$@
$(BUILD)/fuzz/fuzz_$(1): $$(FUZZ_OBJS_$(1))
	$$(Q)$$(FUZZ_CC) $$(FUZZ_CFLAGS) $$(FUZZ_CFLAGS_$(1)) -o $$@ $$^
-include $$(FUZZ_OBJS_$(1):.o=.d)

.PHONY: fuzz-$(1)
fuzz-$(1): $(BUILD)/fuzz/fuzz_$(1)
	$$(Q)mkdir -p $(BUILD)/fuzz/corpus/$(1) $(BUILD)/fuzz/findings/$(1)
	@echo "== fuzz_$(1): $(FUZZ_SECONDS) s"
	$$(Q)$(BUILD)/fuzz/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/findings/$(1)/ \
	    $(BUILD)/fuzz/corpus/$(1) tests/fuzz/corpus/$(1) >$(BUILD)/fuzz/fuzz_$(1).log 2>&1; \
	    rc=$$$$?; grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|SUMMARY)' \
	        $(BUILD)/fuzz/fuzz_$(1).log; \
	    if [ $$$$rc -ne 0 ]; then tail -40 $(BUILD)/fuzz/fuzz_$(1).log; \
	        echo "fuzz_$(1): finding saved in $(BUILD)/fuzz/findings/$(1)/ (replay: $(BUILD)/fuzz/fuzz_$(1) FILE)"; fi; \
	    exit $$$$rc
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))

fuzz-build: $(FUZZ_BINS)

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

# Replay the committed corpus (every input must pass), then a short run.
fuzz-smoke: $(FUZZ_BINS)
	$(Q)fail=0; for t in $(FUZZ_TARGETS); do \
	    bin=$(BUILD)/fuzz/fuzz_$$t; corpus=tests/fuzz/corpus/$$t; \
	    mkdir -p $(BUILD)/fuzz/smoke/$$t; \
	    n=$$(ls $$corpus 2>/dev/null | wc -l); \
	    if $$bin -runs=0 -artifact_prefix=$(BUILD)/fuzz/smoke/$$t/ $$corpus >$(BUILD)/fuzz/smoke/$$t.replay.log 2>&1 && \
	       $$bin -max_total_time=$(FUZZ_SMOKE_SECONDS) -artifact_prefix=$(BUILD)/fuzz/smoke/$$t/ \
	           $(BUILD)/fuzz/smoke/$$t $$corpus >$(BUILD)/fuzz/smoke/$$t.log 2>&1; then \
	        echo "fuzz_$$t: corpus of $$n replayed, $$(grep -o '#[0-9]*[[:space:]]*DONE' $(BUILD)/fuzz/smoke/$$t.log | grep -o '[0-9]*') execs in $(FUZZ_SMOKE_SECONDS) s: ok"; \
	    else \
	        echo "fuzz_$$t: FAILED (logs in $(BUILD)/fuzz/smoke/$$t*.log)"; \
	        tail -30 $(BUILD)/fuzz/smoke/$$t.replay.log $(BUILD)/fuzz/smoke/$$t.log 2>/dev/null; fail=1; \
	    fi; done; exit $$fail

fuzz-device: all
	$(Q)$(PYTHON) tools/fuzz_device.py campaign --seconds $(FUZZ_DEVICE_SECONDS) $(FUZZ_DEVICE_ARGS)
