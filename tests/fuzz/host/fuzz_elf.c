/*
 * fuzz_elf: the UEFI loader's ELF checks (boot/efi/elf.c) fed whole files.
 *
 * Input: an ELF file. The harness does what boot/efi/loader.c does: hands
 * the first 64 bytes (fewer if the file is shorter) to efi_elf_check_header,
 * then the program header table it names to efi_elf_check_segments, each in
 * a heap buffer of exactly that size, so a read past them is an ASan error.
 *
 * A refusal must be a sentence, and name a program header that exists (or
 * -1). An accepted file must be what elf.h promises: ELF64, little-endian,
 * ET_EXEC, x86-64; every PT_LOAD with bytes in memory listed once, as its
 * program header says, with p_vaddr == p_paddr, its file bytes inside the
 * file, p_filesz <= p_memsz, no wrapping address (page-rounded end
 * included); load[] sorted by address and not overlapping; no PT_INTERP;
 * e_entry inside the file bytes of an executable segment.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/efi/elf.h"
#include "kernel/le.h"
#include "tests/fuzz/host/fuzz_util.h"

static void check_accepted(const uint8_t *file, uint64_t size, const struct efi_elf_image *img)
{
	if (memcmp(file, "\x7f" "ELF\x02\x01\x01", 7) || le_read(file + 16, 2) != 2 || le_read(file + 18, 2) != 62 ||
	    le_read(file + 20, 4) != 1)
		fh_fail("accepted a file that is not an x86-64 ELF64 LSB executable");
	uint64_t phoff = le_read(file + 32, 8), phnum = le_read(file + 56, 2);
	if (img->phoff != phoff || img->phnum != phnum || img->entry != le_read(file + 24, 8) ||
	    img->file_size != size)
		fh_fail("image header fields differ from the file");
	if (phnum == 0 || phoff > size || phnum * EFI_ELF_PHDR_SIZE > size - phoff)
		fh_fail("program headers %llu x 56 at %llu outside a file of %llu bytes",
			(unsigned long long)phnum, (unsigned long long)phoff, (unsigned long long)size);
	if (img->nload == 0 || img->nload > EFI_ELF_MAX_LOAD)
		fh_fail("accepted with %u load segments", img->nload);

	uint32_t loads = 0;
	for (uint32_t i = 0; i < phnum; i++) {
		const uint8_t *ph = file + phoff + (uint64_t)i * EFI_ELF_PHDR_SIZE;
		uint32_t type = (uint32_t)le_read(ph, 4);
		if (type == 3)
			fh_fail("accepted a file with PT_INTERP (program header %u)", i);
		if (type != 1 || le_read(ph + 40, 8) == 0)
			continue;
		loads++;
		const struct efi_elf_load *l = NULL;
		for (uint32_t j = 0; j < img->nload; j++)
			if (img->load[j].index == i) {
				if (l)
					fh_fail("program header %u listed twice", i);
				l = &img->load[j];
			}
		if (!l)
			fh_fail("PT_LOAD %u with memsz %llu missing from load[]", i,
				(unsigned long long)le_read(ph + 40, 8));
		if (l->offset != le_read(ph + 8, 8) || l->paddr != le_read(ph + 24, 8) || le_read(ph + 16, 8) != l->paddr ||
		    l->filesz != le_read(ph + 32, 8) || l->memsz != le_read(ph + 40, 8) || l->flags != le_read(ph + 4, 4))
			fh_fail("load segment of header %u differs from the file (or vaddr != paddr)", i);
	}
	if (loads != img->nload)
		fh_fail("%u PT_LOAD headers with bytes in memory, %u in load[]", loads, img->nload);

	bool entry_ok = false;
	for (uint32_t j = 0; j < img->nload; j++) {
		const struct efi_elf_load *l = &img->load[j];
		if (l->filesz > l->memsz || l->offset > size || l->filesz > size - l->offset)
			fh_fail("segment %u: file bytes %llu+%llu outside %llu, or filesz > memsz %llu", l->index,
				(unsigned long long)l->offset, (unsigned long long)l->filesz,
				(unsigned long long)size, (unsigned long long)l->memsz);
		if (l->memsz == 0 || l->paddr > UINT64_MAX - l->memsz ||
		    l->paddr + l->memsz > UINT64_MAX - (EFI_ELF_PAGE - 1))
			fh_fail("segment %u: paddr %#llx memsz %#llx wraps", l->index,
				(unsigned long long)l->paddr, (unsigned long long)l->memsz);
		uint64_t ps = efi_elf_page_start(l), pe = efi_elf_page_end(l);
		if (ps > l->paddr || pe < l->paddr + l->memsz || (ps | pe) & (EFI_ELF_PAGE - 1) ||
		    pe - ps - l->memsz >= 2 * EFI_ELF_PAGE)
			fh_fail("segment %u: pages %#llx-%#llx do not cover %#llx+%#llx", l->index,
				(unsigned long long)ps, (unsigned long long)pe, (unsigned long long)l->paddr,
				(unsigned long long)l->memsz);
		if (j > 0 && img->load[j - 1].paddr + img->load[j - 1].memsz > l->paddr)
			fh_fail("load[%u] and load[%u] unsorted or overlapping", j - 1, j);
		if ((l->flags & EFI_ELF_PF_X) && img->entry >= l->paddr && img->entry - l->paddr < l->filesz)
			entry_ok = true;
	}
	if (!entry_ok)
		fh_fail("entry %#llx not inside the file bytes of an executable segment",
			(unsigned long long)img->entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size < EFI_ELF_EHDR_SIZE ? size : EFI_ELF_EHDR_SIZE;
	uint8_t *ehdr = malloc(n ? n : 1);
	memcpy(ehdr, data, n);
	struct efi_elf_image img;
	memset(&img, 0xa5, sizeof(img)); /* whatever the caller's stack held */
	const char *why = efi_elf_check_header(ehdr, size, &img);
	free(ehdr);
	if (why) {
		if (!why[0])
			fh_fail("header refused with an empty reason");
		return 0;
	}
	if (img.phnum == 0 || img.phoff > size || (uint64_t)img.phnum * EFI_ELF_PHDR_SIZE > size - img.phoff)
		fh_fail("header accepted with program headers outside the file");
	size_t bytes = (size_t)img.phnum * EFI_ELF_PHDR_SIZE;
	uint8_t *phdrs = malloc(bytes);
	memcpy(phdrs, data + img.phoff, bytes);
	int bad = -2;
	why = efi_elf_check_segments(phdrs, &img, &bad);
	free(phdrs);
	if (why) {
		if (!why[0])
			fh_fail("segments refused with an empty reason");
		if (bad < -1 || bad >= (int)img.phnum)
			fh_fail("refusal '%s' names program header %d of %u", why, bad, img.phnum);
		return 0;
	}
	check_accepted(data, size, &img);
	return 0;
}
