# blimp — the one entry point.
#
#   make          build the kernel (build/blimp.elf) and the UEFI tree (build/esp/)
#   make run      boot blimp in QEMU and show ballooning, narrated, with a picture
#   make shell    boot into blimp's shell, QEMU monitor on the same terminal (Ctrl-A C)
#   make test     every test: host unit tests (C and Python), then QEMU integration tests
#                 (all on the system's QEMU 7.2, a subset on QEMU 10.0: make qemu10-subset)
#   make qemu10   fetch QEMU 10.0 into build/qemu10 (beside 7.2; BLIMP_QEMU selects it)
#   make test-qemu10  the whole QEMU suite on QEMU 10.0
#   make debug    boot with QEMU's gdb stub waiting; prints the gdb command
#   make pictures draw docs/*.png again from their scenarios
#   make bench    blimp against a Linux guest and the host's limit (bench/, about 7 min)
#   make bench-quick  the same once, small (make test runs it)
#   make sims     the seeded buddy and paging simulators (build/sim/, docs/exercises.md)
#   make bench-policy  several guests under one budget, each host policy (bench/policy.py, about 7 min)
#   make clean    remove build/
#
# Missing Debian packages are installed first (tools/install-deps.sh).

PYTHON ?= /usr/bin/python3
# BLIMP_QEMU selects the QEMU for make's own runs as for every tool and test.
QEMU ?= $(or $(BLIMP_QEMU),qemu-system-x86_64)
BUILD := build
HOST_CC ?= gcc
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

.DEFAULT_GOAL := all
.PHONY: all deps run shell test unit host-test qemu-test debug bench clean pictures sims qemu10 test-qemu10 qemu10-subset

# ---------------------------------------------------------------- packages
# A stamp keyed on the script, so the check runs once per change of the list.
$(BUILD)/.deps: tools/install-deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)sh tools/install-deps.sh
	$(Q)touch $@
deps: $(BUILD)/.deps

# ---------------------------------------------------------------- newlib
# The kernel's C library, built once from Debian's newlib-source with the host
# gcc (about 2 minutes on 2 cores) and kept in build/ while present.
NEWLIB_TARBALL = $(firstword $(wildcard /usr/src/newlib/newlib-*.tar.*))
# The directory name carries the configuration: a change of flags rebuilds.
NEWLIB_DIR := $(BUILD)/newlib-c99
NEWLIB_PREFIX := $(abspath $(NEWLIB_DIR)/install)
NEWLIB_LIBC := $(NEWLIB_PREFIX)/x86_64-elf/lib/libc.a
NEWLIB_INC := $(NEWLIB_PREFIX)/x86_64-elf/include

$(NEWLIB_LIBC): | $(BUILD)/.deps
	@echo "building newlib for x86_64-elf (once, about 2 minutes)..."
	$(Q)rm -rf $(NEWLIB_DIR) && mkdir -p $(NEWLIB_DIR)/obj
	$(Q)tar -C $(NEWLIB_DIR) -xf $(NEWLIB_TARBALL)
	$(Q)cd $(NEWLIB_DIR)/obj && ../newlib-*/configure --target=x86_64-elf \
	    --prefix=$(NEWLIB_PREFIX) --disable-multilib --disable-newlib-supplied-syscalls \
	    --enable-newlib-io-c99-formats --enable-newlib-io-long-long \
	    CC_FOR_TARGET=gcc AR_FOR_TARGET=ar RANLIB_FOR_TARGET=ranlib AS_FOR_TARGET=as \
	    LD_FOR_TARGET=ld NM_FOR_TARGET=nm \
	    CFLAGS_FOR_TARGET="-O2 -g -ffreestanding -mno-red-zone -fno-stack-protector -fno-pic" \
	    > ../configure.log 2>&1 || { tail -20 ../configure.log; exit 1; }
	$(Q)$(MAKE) -C $(NEWLIB_DIR)/obj -j$$(nproc) all-target-newlib > $(NEWLIB_DIR)/build.log 2>&1 \
	    || { tail -30 $(NEWLIB_DIR)/build.log; exit 1; }
	$(Q)$(MAKE) -C $(NEWLIB_DIR)/obj install-target-newlib > $(NEWLIB_DIR)/install.log 2>&1 \
	    || { tail -30 $(NEWLIB_DIR)/install.log; exit 1; }
	$(Q)rm -rf $(NEWLIB_DIR)/obj $(NEWLIB_DIR)/newlib-*/
	@echo "newlib ready in $(NEWLIB_PREFIX)"

# ---------------------------------------------------------------- kernel
# Every .c and .S under the kernel's folders goes into the one kernel ELF.
KERNEL_DIRS := arch/x86_64 boot boot/pvh kernel drivers/uart drivers/pci drivers/virtio fuzz
KERNEL_SRCS := $(sort $(foreach d,$(KERNEL_DIRS),$(wildcard $(d)/*.c $(d)/*.S)))
KERNEL_OBJS := $(patsubst %,$(BUILD)/kernel/%.o,$(KERNEL_SRCS))
GCC_INC := $(shell gcc -print-file-name=include)

KERNEL_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror \
	-ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-omit-frame-pointer \
	-mno-red-zone -mcmodel=small -fno-builtin-malloc \
	-nostdinc -isystem $(GCC_INC) -isystem $(NEWLIB_INC) -I. -DBLIMP_KERNEL=1 -MMD -MP
KERNEL_LDFLAGS := -nostdlib -static -no-pie -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--build-id=none -T linker/kernel.ld

$(BUILD)/kernel/%.c.o: %.c $(NEWLIB_LIBC)
	$(Q)mkdir -p $(dir $@)
	$(Q)gcc $(KERNEL_CFLAGS) -c $< -o $@
$(BUILD)/kernel/%.S.o: %.S $(NEWLIB_LIBC)
	$(Q)mkdir -p $(dir $@)
	$(Q)gcc $(KERNEL_CFLAGS) -D__ASSEMBLY__ -c $< -o $@

$(BUILD)/blimp.elf: $(KERNEL_OBJS) linker/kernel.ld $(NEWLIB_LIBC)
	$(Q)gcc $(KERNEL_LDFLAGS) -o $@ $(KERNEL_OBJS) \
	    $(NEWLIB_PREFIX)/x86_64-elf/lib/libc.a $(NEWLIB_PREFIX)/x86_64-elf/lib/libm.a -lgcc
	@echo "built $@"

-include $(KERNEL_OBJS:.o=.d)

# ---------------------------------------------------------------- UEFI
# boot/efi/efi.mk builds $(BUILD)/esp/EFI/BOOT/BOOTX64.EFI and copies the kernel.
include boot/efi/efi.mk

all: $(BUILD)/blimp.elf $(ESP_TARGETS)

# ---------------------------------------------------------------- unit tests
# Each tests/unit/*.mk adds a test:  UNIT_TESTS += name ; UNIT_SRCS_name := files...
# A test is built for the host with cmocka under ASan and UBSan and run by `make unit`.
UNIT_TESTS :=
include $(sort $(wildcard tests/unit/*.mk))
UNIT_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -I. -DBLIMP_HOST=1 \
	-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
UNIT_BINS := $(patsubst %,$(BUILD)/unit/test_%,$(UNIT_TESTS))

# Each test compiles to its own objects (its flags may differ) with -MMD -MP,
# so a change to any header it includes, wherever it lives, rebuilds it.
define unit_rule
UNIT_OBJS_$(1) := $$(patsubst %.c,$(BUILD)/unit/obj/$(1)/%.o,$$(UNIT_SRCS_$(1)))
$$(UNIT_OBJS_$(1)): $(BUILD)/unit/obj/$(1)/%.o: %.c | $(BUILD)/.deps
	$$(Q)mkdir -p $$(dir $$@)
	$$(Q)$$(HOST_CC) $$(UNIT_CFLAGS) $$(UNIT_CFLAGS_$(1)) -MMD -MP -c $$< -o $$@
$(BUILD)/unit/test_$(1): $$(UNIT_OBJS_$(1))
	$$(Q)$$(HOST_CC) $$(UNIT_CFLAGS) $$(UNIT_CFLAGS_$(1)) -o $$@ $$^ -lcmocka
-include $$(UNIT_OBJS_$(1):.o=.d)
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

unit: $(UNIT_BINS)
	$(Q)fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# ---------------------------------------------------------------- fuzzing
# tests/fuzz/fuzz.mk: libFuzzer harnesses (make fuzz, make fuzz-smoke).
include tests/fuzz/fuzz.mk

# ---------------------------------------------------------------- simulators
# tools/sim/sim.mk: make sims (the exercises' simulators; tests/host runs them).
include tools/sim/sim.mk

# ---------------------------------------------------------------- host and QEMU tests
# tests/host: Python, no QEMU, a few seconds (the docs against the code, the
# policy tool on synthetic guests, the simulators' answers).
host-test: $(BUILD)/.deps sims
	$(Q)$(PYTHON) -m pytest -q -p no:cacheprovider tests/host

# The slowest tests are listed at the end: the suite must stay well under 20 minutes.
PYTEST_ARGS ?=
qemu-test: all
	$(Q)$(PYTHON) -m pytest -q -p no:cacheprovider --durations=12 tests/qemu $(PYTEST_ARGS)

test: $(BUILD)/.deps
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory host-test
	$(Q)$(MAKE) --no-print-directory fuzz-smoke
	$(Q)$(MAKE) --no-print-directory qemu-test
	$(Q)$(MAKE) --no-print-directory qemu10-subset

# ---------------------------------------------------------------- QEMU 10
# QEMU 10.0 from Debian bookworm-backports, unpacked into build/qemu10 beside the
# system's 7.2 (tools/fetch-qemu10.sh: no install, no change to the system's apt
# state, no root needed). BLIMP_QEMU selects the QEMU for every tool and test.
QEMU10 := $(BUILD)/qemu10/qemu-system-x86_64
$(BUILD)/qemu10/VERSION: tools/fetch-qemu10.sh
	$(Q)sh tools/fetch-qemu10.sh $(BUILD)/qemu10
qemu10: $(BUILD)/qemu10/VERSION

# The QEMU suite (or PYTEST_ARGS' part of it) on QEMU 10.
test-qemu10: all qemu10
	$(Q)BLIMP_QEMU=$(abspath $(QEMU10)) $(PYTHON) -m pytest -q -p no:cacheprovider --durations=12 \
	    tests/qemu $(PYTEST_ARGS)

# What `make test` runs on QEMU 10 besides the whole suite on 7.2 (about 4
# minutes more): the balloon, PCI and the virtio transports (MSI-X there;
# legacy PCI, packed rings, virtio-mmio on microvm), the clock on every
# machine, free page hinting (known good only there), boot, the kept
# QEMU-1 reproducer, blimp under libvirt 9.0 (about 30 s, root only), the
# device fuzzer's packed and mmio shapes and the QEMU-3..6 reproducers
# (12 s). Fetching QEMU 10 is part of it: with no network it fails.
QEMU10_SUBSET := tests/qemu/test_balloon.py tests/qemu/test_pci_virtio.py tests/qemu/test_hint.py \
	tests/qemu/test_legacy.py tests/qemu/test_packed.py tests/qemu/test_mmio.py tests/qemu/test_clock.py \
	tests/qemu/test_boot.py::test_boots_to_ready_and_powers_off \
	tests/qemu/test_boot.py::test_qemu_stderr_is_kept_apart_from_the_serial_console \
	tests/qemu/test_fuzz_device.py::test_kept_qemu_1_reproducer_still_reproduces \
	tests/qemu/test_libvirt.py \
	tests/qemu/test_fuzz_device.py::test_each_shape_is_fuzzed_cleanly_and_a_seed_gives_the_same_ops \
	tests/qemu/test_fuzz_device.py::test_a_shape_log_replays_exactly \
	tests/qemu/test_fuzz_device.py::test_packed_buffers_complete_through_several_wraps_of_a_small_ring \
	tests/qemu/test_fuzz_device.py::test_mmio_register_writes_that_would_misplace_a_ring_are_refused \
	tests/qemu/test_fuzz_device.py::test_legacy_mmio_ring_placement_is_checked_before_it_is_written \
	tests/qemu/test_fuzz_device.py::test_kept_shape_reproducers_do_what_findings_md_says_on_this_qemu
qemu10-subset: all qemu10
	$(Q)BLIMP_QEMU=$(abspath $(QEMU10)) $(PYTHON) -m pytest -q -p no:cacheprovider --durations=5 \
	    $(QEMU10_SUBSET)

# ---------------------------------------------------------------- benchmarks
include bench/bench.mk

# ---------------------------------------------------------------- running
QEMU_BASE := $(QEMU) -machine q35 -nodefaults -display none -no-reboot \
	-device isa-debug-exit,iobase=0xf4,iosize=4 -m 512M
APPEND ?=
# The balloon `make run`'s tour boots with (tools/scenarios/tour.scn): reporting and
# deflate-on-OOM, so every event the README shows can happen in `make shell` too.
BALLOON_DEV := -device virtio-balloon-pci,id=bal0,free-page-reporting=on,deflate-on-oom=on

shell: all
	@echo "blimp shell on this terminal; Ctrl-A C switches to the QEMU monitor and back, Ctrl-A X quits."
	$(Q)$(QEMU_BASE) $(BALLOON_DEV) -chardev stdio,id=con,mux=on,signal=off \
	    -serial chardev:con -mon chardev=con,mode=readline \
	    -kernel $(BUILD)/blimp.elf -append "$(APPEND)" || test $$? -eq 33

# The narrated tour: boots blimp, drives the balloon from the host, prints
# each step and a summary, and draws build/run/timeline.png.
run: all
	$(Q)$(PYTHON) tools/scenario.py tools/scenarios/tour.scn --plot $(BUILD)/run/timeline.png

# The pictures in docs/: the teaching figures (tools/figures.py), and each
# scenario's picture drawn by running it (about 5 minutes). tests/host/
# test_pictures.py fails when one no longer matches its code or scenario.
PICTURES := timeline:tour working-set:working-set thrashing:thrashing pff:pff swap-storm:swap-storm
pictures: all
	$(Q)$(PYTHON) tools/figures.py docs
	$(Q)for p in $(PICTURES); do \
	    $(PYTHON) tools/scenario.py tools/scenarios/$${p#*:}.scn --plot docs/$${p%%:*}.png || exit 1; \
	done

debug: all
	@echo "QEMU is waiting for gdb. In another terminal:"
	@echo "  gdb $(BUILD)/blimp.elf -ex 'target remote :1234' -ex 'hbreak kernel_main' -ex continue"
	$(Q)$(QEMU_BASE) $(BALLOON_DEV) -serial stdio -s -S -kernel $(BUILD)/blimp.elf -append "$(APPEND)" || true

clean:
	rm -rf $(BUILD)
