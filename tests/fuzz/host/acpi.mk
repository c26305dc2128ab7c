FUZZ_TARGETS += acpi
FUZZ_SRCS_acpi := tests/fuzz/host/fuzz_acpi.c kernel/acpi_parse.c
