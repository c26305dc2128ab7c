UNIT_TESTS += memmap
UNIT_SRCS_memmap := tests/unit/test_memmap.c kernel/memmap.c kernel/parse.c
