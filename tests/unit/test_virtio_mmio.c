/*
 * Host tests for drivers/virtio/virtio_mmio_parse.c: the
 * `virtio_mmio.device=<size>@<base>:<irq>[:<id>]` words, as QEMU 7.2's
 * microvm writes them (seen on its command line with acpi=off) and as
 * Firecracker does, and every way such a word can be wrong — each refusal
 * with its own reason. Every string is a heap copy of exactly its length,
 * so a read past the end is an ASan error.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/virtio/virtio_mmio.h"

static int parse(const char *s, struct virtio_mmio_desc *d, const char **why)
{
	char *copy = strdup(s);
	assert_non_null(copy);
	*why = NULL;
	int rc = virtio_mmio_parse_device(copy, d, why);
	free(copy);
	return rc;
}

static void accepted(const char *s, uint64_t size, uint64_t base, uint32_t irq, uint32_t id)
{
	struct virtio_mmio_desc d;
	const char *why;
	int rc = parse(s, &d, &why);
	if (rc != 0)
		fail_msg("'%s' refused: %s", s, why);
	if (d.size != size || d.base != base || d.irq != irq || d.id != id)
		fail_msg("'%s': expected %#lx@%#lx:%u:%u, got %#lx@%#lx:%u:%u", s, (unsigned long)size,
			 (unsigned long)base, irq, id, (unsigned long)d.size, (unsigned long)d.base, d.irq, d.id);
}

static void refused(const char *s, const char *reason_part)
{
	struct virtio_mmio_desc d = { .base = 0x1234, .size = 0x5678, .irq = 9, .id = 7 };
	const char *why;
	int rc = parse(s, &d, &why);
	if (rc != -EINVAL)
		fail_msg("'%s' accepted (rc %d): %#lx@%#lx:%u", s, rc, (unsigned long)d.size, (unsigned long)d.base, d.irq);
	if (!why || !strstr(why, reason_part))
		fail_msg("'%s' refused for '%s', expected a reason with '%s'", s, why ? why : "(none)", reason_part);
	if (d.base != 0x1234 || d.size != 0x5678 || d.irq != 9 || d.id != 7)
		fail_msg("'%s' refused but the output was written", s);
}

static void qemu_microvm_words_are_read(void **state)
{
	(void)state;
	/* QEMU 7.2, -M microvm,acpi=off: the last transport of 8, GSI 5 + 7 */
	accepted("512@0xfeb00e00:12", 512, 0xfeb00e00, 12, 0);
	accepted("512@0xfeb00c00:11", 512, 0xfeb00c00, 11, 0);
	/* with ACPI's second IOAPIC the 24 transports sit on GSI 24..47 */
	accepted("512@0xfeb02e00:47", 512, 0xfeb02e00, 47, 0);
}

static void firecracker_and_linux_forms_are_read(void **state)
{
	(void)state;
	accepted("4K@0xd0000000:5", 4096, 0xd0000000, 5, 0);
	accepted("0x1000@0xd0001000:6:3", 4096, 0xd0001000, 6, 3);
	accepted("1k@3489660928:255", 1024, 3489660928u, 255, 0);
	accepted("256@0x100:0", 256, 0x100, 0, 0);
}

static void malformed_words_are_refused_with_a_reason(void **state)
{
	(void)state;
	refused("", "'@'");
	refused("512", "'@'");
	refused("512@0xfeb00e00", "':'");
	refused("@0xfeb00e00:12", "size");
	refused("512@:12", "base");
	refused("512@0xfeb00e00:", "irq");
	refused("512@0xfeb00e00:256", "irq");
	refused("512@0xfeb00e00:12x", "irq");
	refused("512@0xfeb00e00:-1", "irq");
	refused("512@0xfeb00e00:12:", "device id");
	refused("512@0xfeb00e00:12:4294967296", "device id");
	refused("512@0xfeb00e00:12:1:2", "device id");
	refused("5x@0xfeb00e00:12", "size");
	refused("512@zz:12", "base");
	refused("255@0xfeb00e00:12", "0x100");
	refused("0@0xfeb00e00:12", "0x100");
	refused("512@0xfeb00e02:12", "aligned");
	refused("512@0xfffffffffffffe00:12", "2^52");
	refused("0x10000000000000@0x1000:5", "2^52");
	refused("512@0x99999999999999999999:12", "base");
	char longword[200];
	memset(longword, '1', sizeof(longword) - 1);
	longword[sizeof(longword) - 1] = 0;
	refused(longword, "longer");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(qemu_microvm_words_are_read),
		cmocka_unit_test(firecracker_and_linux_forms_are_read),
		cmocka_unit_test(malformed_words_are_refused_with_a_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
