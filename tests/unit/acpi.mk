UNIT_TESTS += acpi
UNIT_SRCS_acpi := tests/unit/test_acpi.c kernel/acpi_parse.c
