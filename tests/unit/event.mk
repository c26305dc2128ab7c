UNIT_TESTS += event
UNIT_SRCS_event := tests/unit/test_event.c kernel/event.c
