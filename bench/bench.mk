# bench/: blimp against a Linux guest on the same QEMU, and against the host's limit.
#   make bench         the full tables, squeeze included (median of BENCH_RUNS runs; about 3 minutes a run on 2 cores)
#   make bench-quick   one run, small sizes: the harness end to end (make test runs it)
#   make bench-bigmem  only the "any size of guest" group: blimp at 2 GiB to 1 TiB (issue 17)
# The Linux guest is built from Debian's packages by bench/linux/build_guest.py.
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -I.
BENCH_RUNS ?= 5
BENCH_ARGS ?=

# Objects with -MMD -MP, as everywhere: a change to any header they include rebuilds.
PFA_BENCH_SRCS := bench/pfa_bench.c kernel/pfa.c kernel/pfa_check.c
PFA_BENCH_OBJS := $(patsubst %.c,$(BUILD)/bench/obj/%.o,$(PFA_BENCH_SRCS))
$(PFA_BENCH_OBJS): $(BUILD)/bench/obj/%.o: %.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/bench/pfa_bench: $(PFA_BENCH_OBJS)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -o $@ $^

# The host build of kernel/replace.c, as tests/unit/replace.mk compiles it
# (BLIMP_HOST), without the sanitizers: the same simulator the tests check.
REPLACE_BENCH_SRCS := bench/replace_bench.c kernel/replace.c
REPLACE_BENCH_OBJS := $(patsubst %.c,$(BUILD)/bench/obj/%.o,$(REPLACE_BENCH_SRCS))
$(REPLACE_BENCH_OBJS): $(BUILD)/bench/obj/%.o: %.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -DBLIMP_HOST=1 -MMD -MP -c $< -o $@
$(BUILD)/bench/replace_bench: $(REPLACE_BENCH_OBJS)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -o $@ $^

$(BUILD)/bench/host_limit: bench/host_limit.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -MMD -MP -o $@ $<

$(BUILD)/bench/swap_ceiling: bench/swap_ceiling.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(BENCH_CFLAGS) -MMD -MP -o $@ $<

# QEMU's floor for boot: a PVH kernel that writes its line and exits at once
# (-N and the note placed by hand: nothing lands outside a small guest's RAM);
# pvh_blocks.elf runs PVH_BLOCKS blocks of straight-line code first, about
# what blimp's boot translates (bench/boot_blocks.py), to price translation.
PVH_BLOCKS := 1650
$(BUILD)/bench/pvh_floor.elf: bench/pvh_floor.S | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)as --32 -o $(BUILD)/bench/pvh_floor.o $<
	$(Q)ld -m elf_i386 --no-warn-rwx-segments -N -Ttext=0x100000 --section-start=.note.Xen=0x100100 -e _start -o $@ $(BUILD)/bench/pvh_floor.o

$(BUILD)/bench/pvh_blocks.elf: bench/pvh_floor.S bench/bench.mk | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)as --32 --defsym BLOCKS=$(PVH_BLOCKS) -o $(BUILD)/bench/pvh_blocks.o $<
	$(Q)ld -m elf_i386 --no-warn-rwx-segments -N -Ttext=0x100000 --section-start=.note.Xen=0x140000 -e _start -o $@ $(BUILD)/bench/pvh_blocks.o

-include $(PFA_BENCH_OBJS:.o=.d) $(REPLACE_BENCH_OBJS:.o=.d) $(BUILD)/bench/host_limit.d \
	$(BUILD)/bench/swap_ceiling.d

# Always run: the script itself decides from its stamp whether to rebuild.
bench-linux: $(BUILD)/.deps
	$(Q)$(PYTHON) bench/linux/build_guest.py --out $(BUILD)/bench/linux

BENCH_HOST_PROGS := $(BUILD)/bench/pfa_bench $(BUILD)/bench/host_limit $(BUILD)/bench/replace_bench \
	$(BUILD)/bench/swap_ceiling $(BUILD)/bench/pvh_floor.elf $(BUILD)/bench/pvh_blocks.elf
BENCH_DEPS := $(BENCH_HOST_PROGS) all bench-linux

bench: $(BENCH_DEPS)
	$(Q)$(PYTHON) bench/bench.py --runs $(BENCH_RUNS) --out $(BUILD)/bench $(BENCH_ARGS)

bench-quick: $(BENCH_DEPS)
	$(Q)$(PYTHON) bench/bench.py --quick --out $(BUILD)/bench/quick $(BENCH_ARGS)

# Any size of guest (bench/bigmem.py, issue 17): blimp alone, no Linux guest
# and no host programs; about a minute and a half on today's kernel.
# BIGMEM_SIZES takes GiB, "flat" for RAM in one piece (e.g. 2,64,1024flat).
BIGMEM_SIZES ?= 2,64,256,1024,1024flat
BIGMEM_BOOTS ?= 3
bench-bigmem: all
	$(Q)$(PYTHON) bench/bench.py --bigmem-only --bigmem-sizes $(BIGMEM_SIZES) \
		--bigmem-boots $(BIGMEM_BOOTS) --out $(BUILD)/bench/bigmem

.PHONY: bench bench-quick bench-bigmem bench-linux bench-policy

# make test runs the quick bench (tests/qemu/test_bench.py): it needs these too.
# Not bench-linux: the tests that need the Linux guest build it themselves and
# skip, saying why, when Debian's mirror cannot be reached, so the other QEMU
# tests still run offline.
qemu-test: $(BENCH_HOST_PROGS)

# The multi-guest policy experiment (issue 16, bench/policy.py): two blimp
# guests and the Linux one under one budget, each policy in turn and host
# swapping alone (hostswap: root only, else skipped), about 75 s each a run;
# POLICY_RUNS=3 for medians.
POLICIES ?= static,reporting,mom,window,ws,hostswap
POLICY_RUNS ?= 1
bench-policy: all
	$(Q)PYTHONPATH=tools $(PYTHON) bench/policy.py --policies $(POLICIES) --runs $(POLICY_RUNS) $(BENCH_POLICY_ARGS)

# make experiment: host swapping against the balloon under the same host
# memory budget (issue 16, bench/hostswap.py, docs/hostswap.md): two
# scenarios, five cases each, both guests, one table; about 14 minutes a run (EXPERIMENT_RUNS=3
# for medians). Needs root, a v1 memory cgroup and loop devices; it says so and
# stops otherwise.
EXPERIMENT_ARGS ?=
EXPERIMENT_RUNS ?= 1
experiment: all
	$(Q)PYTHONPATH=tools $(PYTHON) bench/hostswap.py --out $(BUILD)/hostswap --runs $(EXPERIMENT_RUNS) $(EXPERIMENT_ARGS)

.PHONY: experiment
