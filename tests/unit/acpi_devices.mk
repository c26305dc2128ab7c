UNIT_TESTS += acpi_devices
UNIT_SRCS_acpi_devices := tests/unit/test_acpi_devices.c kernel/acpi_devices.c
