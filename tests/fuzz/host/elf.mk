FUZZ_TARGETS += elf
FUZZ_SRCS_elf := tests/fuzz/host/fuzz_elf.c boot/efi/elf.c
