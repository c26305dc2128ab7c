FUZZ_TARGETS += acpi_devices
FUZZ_SRCS_acpi_devices := tests/fuzz/host/fuzz_acpi_devices.c kernel/acpi_devices.c
